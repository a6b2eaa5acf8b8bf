// Unit tests of server/write/parse-body.ts: bodies are UTF-8 or refused, numbers out of range are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseJson, unsafeNumberIn, utf8Text } from '../../../../server/write/parse-body.js';
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
