// Unit tests of server/write/parse-body.ts: bodies are UTF-8 or refused, numbers out of range are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linesIn, parseJson, parseNdjson, unsafeNumberIn, utf8Text, valuesAt } from '../../../../server/write/parse-body.js';
import { mulberry32 } from '../../../../bench/prng.js';
import { CouchlogError } from '../../../../lib/errors.js';

test('valid UTF-8 (any script, 4-byte characters) is decoded as it is', () => {
  const text = '{"m":"héllo wörld 日本 🙂"}';
  assert.equal(utf8Text(Buffer.from(text, 'utf8')), text);
});

test('bytes that are not UTF-8 are refused, never turned into U+FFFD', () => {
  // Found by a black-box test: "\xff\xfe" was stored as two U+FFFD, an id ending in \xc3 too.
  for (const bytes of [[0xff, 0xfe], [0xc3], [0xe9], [0xed, 0xa0, 0x80], [0xc0, 0xaf]]) {
    const raw = Buffer.concat([Buffer.from('{"m":"'), Buffer.from(bytes), Buffer.from('"}')]);
    assert.throws(
      () => utf8Text(raw),
      (err) => err instanceof CouchlogError && err.code === 'INGRESS_INVALID_JSON' && /UTF-8/.test(err.message),
      JSON.stringify(bytes),
    );
  }
});

test("unsafeNumberIn: numbers out of a double's range, outside strings only; big integers pass", () => {
  // Found by a black-box test: 1e400 was stored as null, answered 201 (CouchDB refuses it).
  assert.equal(unsafeNumberIn('[1,2,{"a":[1e400]}]'), '1e400');
  assert.equal(unsafeNumberIn('{"n":-1.5E+308,"m":-2e308}'), '-2e308');
  assert.equal(unsafeNumberIn(`{"n":${'9'.repeat(400)}}`), '9'.repeat(400));
  for (const safe of [
    // Nanosecond timestamps (the seed's HTTP logs) are integers beyond 2^53: they must pass.
    '{"timestamp":1704110400120000000,"n":9007199254740993}',
    '{"f":0.12345678901234567890123,"g":1.5e300,"h":1e-400}',
    '{"s":"1e400","t":"\\"1e999"}',
  ])
    assert.equal(unsafeNumberIn(safe), null, safe);
});

test('parseJson refuses a number out of range with INGRESS_UNSAFE_NUMBER, naming it', () => {
  assert.throws(
    () => parseJson('{"n":1e400}', 'document 3'),
    (err) =>
      err instanceof CouchlogError && err.code === 'INGRESS_UNSAFE_NUMBER' && /document 3 holds the number 1e400, which is out of range/.test(err.message),
  );
  assert.deepEqual(parseJson('{"n":"1e400"}'), { n: '1e400' });
});

test('valuesAt counts the values of the arrays at a level as JSON.parse would see them, and stops past the limit', () => {
  const rnd = mulberry32(11);
  const value = (depth: number): unknown => {
    const r = rnd();
    if (depth > 3 || r < 0.3) return r < 0.1 ? 'a "q" \\ ] , [ } {' : r < 0.2 ? 7 : null;
    if (r < 0.65) return Array.from({ length: Math.floor(rnd() * 4) }, () => value(depth + 1));
    return Object.fromEntries(Array.from({ length: Math.floor(rnd() * 4) }, (_, i) => [`k${i},]`, value(depth + 1)]));
  };
  for (let n = 0; n < 300; n++) {
    const docs = Array.from({ length: Math.floor(rnd() * 12) }, () => value(1));
    const text = JSON.stringify(docs, null, rnd() < 0.5 ? 1 : undefined);
    assert.equal(valuesAt(text, 1, Infinity), docs.length, text);
    assert.equal(valuesAt(JSON.stringify({ new_edits: true, docs }), 2, Infinity), docs.length, text);
    assert.equal(valuesAt(text, 1, 3), Math.min(docs.length, 4), 'stops once past the limit');
  }
  assert.equal(valuesAt('{"a":1}', 1, 10), 0, 'an object is not an array of documents');
  assert.equal(valuesAt('[]', 1, 10), 0);
  assert.equal(valuesAt('[ ]', 1, 10), 0);
});

test('linesIn counts non-blank lines and stops past the limit', () => {
  assert.equal(linesIn('{"a":1}\n\n  \r\n{"b":2}\n', 10), 2);
  assert.equal(linesIn('', 10), 0);
  assert.equal(linesIn('x\n'.repeat(1_000_000), 5), 6);
  // Blank as the parsers see it (trim()): form feeds, NBSP, BOM, line separators too.
  const blanks = ['\f', '\v', '\u00a0', '\ufeff', '\u2028', '\u3000', ' \t\r'];
  assert.equal(linesIn(`{}\n${blanks.join('\n')}\n{}\n`, 10), 2);
  assert.equal(parseNdjson(`{}\n${blanks.join('\n')}\n{}\n`, 64, 2).length, 2, 'at the limit with blank lines: parsed');
});

test('an NDJSON body of a million lines is refused for its count before any line is parsed', (t) => {
  const parse = t.mock.method(JSON, 'parse');
  assert.throws(
    () => parseNdjson('{"a":1}\n'.repeat(1_000_000), 64, 10_000),
    (err) => err instanceof CouchlogError && err.code === 'INGRESS_TOO_MANY_DOCS' && /more than 10000 documents/.test(err.message),
  );
  assert.equal(parse.mock.callCount(), 0);
  assert.equal(parseNdjson('{"a":1}\n{"b":2}\n', 64, 2).length, 2, 'at the limit: parsed');
});
