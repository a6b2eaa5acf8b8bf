// Unit tests of server/write/parse-body.ts: bodies are UTF-8 or refused, numbers are stored exactly or refused.
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

test('unsafeNumberIn: integers beyond ±2^53 and numbers out of range, outside strings only', () => {
  // Found by a black-box test: 9007199254740993 was stored as ...992 and 1e400 as null, answered 201.
  assert.equal(unsafeNumberIn('{"n":9007199254740993}'), '9007199254740993');
  assert.equal(unsafeNumberIn('{"n":-123456789012345678901234567890}'), '-123456789012345678901234567890');
  assert.equal(unsafeNumberIn('[1,2,{"a":[1e400]}]'), '1e400');
  assert.equal(unsafeNumberIn('{"n":-1.5E+308,"m":2e308}'), '2e308');
  for (const safe of [
    '{"n":9007199254740991,"m":-9007199254740991}',
    '{"f":0.12345678901234567890123,"g":1.5e300,"h":1e-400}',
    '{"s":"12345678901234567890","t":"1e400","u":"\\"99999999999999999999"}',
    '{"id":"x","n":1234567890123456.5}',
  ])
    assert.equal(unsafeNumberIn(safe), null, safe);
});

test('parseJson refuses an unsafe number with INGRESS_UNSAFE_NUMBER, naming it', () => {
  assert.throws(
    () => parseJson('{"inode":18446744073709551615}', 'document 3'),
    (err) => err instanceof CouchlogError && err.code === 'INGRESS_UNSAFE_NUMBER' && /document 3 holds the number 18446744073709551615/.test(err.message),
  );
  assert.deepEqual(parseJson('{"n":"18446744073709551615"}'), { n: '18446744073709551615' });
});
