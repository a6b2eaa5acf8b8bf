// Unit tests of server/write/parse-body.ts: bodies are UTF-8 or refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { utf8Text } from '../../../../server/write/parse-body.js';
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
