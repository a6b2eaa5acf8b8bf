// Unit tests of verbatimAnswer (server/write/bulk-writer.ts): CouchDB's
// _bulk_docs answer is passed on as it came only when it is exactly what
// serialising matchResults would give; anything else falls back. Also the
// text scan of parse-body.ts (tooDeepAt) against a character-at-a-time
// reference.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { matchResults, verbatimAnswer } from '../../../../server/write/bulk-writer.js';
import { tooDeepAt } from '../../../../server/write/parse-body.js';

const docs = (...ids: string[]) => ids.map((_id) => ({ _id }));
const ok = (id: string, rev = `1-${id.length}abc`) => ({ ok: true, id, rev });

/** What the ingress answered before: matchResults, serialised. */
const serialised = (d: Array<{ _id: string }>, text: string) => JSON.stringify(matchResults(d, JSON.parse(text)));

/** verbatimAnswer never gives anything but the serialised results. */
function check(d: Array<{ _id: string }>, text: string): string | null {
  const got = verbatimAnswer(d, JSON.parse(text), text);
  if (got !== null) assert.equal(got, serialised(d, text), `passed on: ${JSON.stringify(text)}`);
  return got;
}

describe('verbatimAnswer', () => {
  test('the usual answer (PouchDB Server and CouchDB end it with a newline) is passed on without the newline', () => {
    const d = docs('a', 'bb', '01a23b16288e702a88c607b38eb7969a');
    const text = JSON.stringify(d.map((x) => ok(x._id)));
    assert.equal(check(d, `${text}\n`), text);
    assert.equal(check(d, text), text);
  });

  test('falls back on anything that is not exactly the serialised results', () => {
    const d = docs('a', 'b');
    const cases = [
      '[{"ok":true,"id":"a","rev":"1-x"}, {"ok":true,"id":"b","rev":"1-y"}]', // space
      '[{"ok":true,"id":"a","rev":"1-x"},{"ok":true,"id":"b","rev":"1-y"}]\n\n',
      ' [{"ok":true,"id":"a","rev":"1-x"},{"ok":true,"id":"b","rev":"1-y"}]',
      '[{"id":"a","ok":true,"rev":"1-x"},{"ok":true,"id":"b","rev":"1-y"}]', // member order
      '[{"ok":true,"rev":"1-x","id":"a"},{"ok":true,"id":"b","rev":"1-y"}]',
      '[{"ok":true,"id":"a","rev":"1-x"},{"rev":"1-y","ok":true,"id":"b"}]',
      '[{"ok":true,"id":"a","rev":"1-x","x":1},{"ok":true,"id":"b","rev":"1-y"}]', // extra member
      '[{"ok":true,"ok":true,"id":"a","rev":"1-x"},{"ok":true,"id":"b","rev":"1-y"}]', // repeated member
      '[{"ok":true,"id":"\\u0061","rev":"1-x"},{"ok":true,"id":"b","rev":"1-y"}]', // escaped id
      '[{"ok":true,"id":"a","rev":"1-\\u0078"},{"ok":true,"id":"b","rev":"1-y"}]', // escaped rev
      '[{"ok":true,"id":"b","rev":"1-y"},{"ok":true,"id":"a","rev":"1-x"}]', // order
      '[{"ok":true,"id":"a","rev":"1-x"}]', // missing result
      '[{"ok":true,"id":"a","rev":"1-x"},{"ok":true,"id":"b","rev":"1-y"},{"ok":true,"id":"c","rev":"1-z"}]',
      '[{"ok":true,"id":"a","rev":"1-x"},{"id":"b","error":"conflict","reason":"Document update conflict"}]',
      '[{"ok":true,"id":"a","rev":"1-x"},{"id":"b","rev":"1-y"}]', // no ok: still ok for matchResults
      '[{"ok":true,"id":"a","rev":"1-x"},{"ok":1,"id":"b","rev":"1-y"}]',
      '[{"ok":true,"id":"a","rev":"1-x"},{"ok":true,"id":"b","rev":2}]',
      '{"ok":true}',
    ];
    for (const text of cases) assert.equal(check(d, text), null, text);
  });

  test('ids that JSON must escape are never passed on (the answer holds the escape)', () => {
    for (const id of ['a"b', 'a\\b', 'a\nb', 'a\u0001b', 'x\ud800y']) {
      const d = docs(id, 'z');
      const text = `${JSON.stringify(d.map((x) => ok(x._id)))}\n`;
      assert.equal(check(d, text), null, JSON.stringify(id));
    }
    // Characters JSON.stringify writes as they are may be passed on.
    const d = docs('é€😀', '\u2028', '\u007f');
    const text = JSON.stringify(d.map((x) => ok(x._id)));
    assert.equal(check(d, text), text);
  });

  test('random answers: whatever is passed on equals the serialised results', () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const pieces = ['a', 'b', '"', '\\', ' ', 'é', '\n', '1'];
    let passed = 0;
    for (let t = 0; t < 3000; t++) {
      const ids = Array.from({ length: 1 + rnd(4) }, (_, i) => `${i}${Array.from({ length: rnd(3) }, () => pieces[rnd(pieces.length)]).join('')}`);
      const d = docs(...ids);
      const results: Array<Record<string, unknown>> = d.map((x) => ok(x._id));
      const mutate = rnd(8);
      if (mutate === 1) results.reverse();
      if (mutate === 2) results[0] = { id: results[0]!.id, ok: true, rev: results[0]!.rev };
      if (mutate === 3) results[0] = { ...results[0], extra: rnd(2) };
      if (mutate === 4) results[0] = { id: results[0]!.id, error: 'conflict', reason: 'x' };
      let text = JSON.stringify(results, null, mutate === 5 ? 1 : undefined);
      if (mutate === 6) text = text.replace(/"id":"0/, '"id":"\\u0030');
      if (rnd(2) === 0) text += '\n';
      if (check(d, text) !== null) passed++;
    }
    assert.ok(passed > 300, `${passed} answers passed on`);
  });
});

/** The scan as it was: a character at a time. */
function tooDeepAtReference(text: string, maxDepth: number, from = 0, to = text.length): number {
  let depth = 0;
  let inString = false;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) return i;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return -1;
}

test('tooDeepAt skips strings as a character-at-a-time scan does', () => {
  let seed = 11;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const alphabet = ['"', '\\', '[', ']', '{', '}', 'a', ',', ':', '"', '\\'];
  for (let t = 0; t < 50_000; t++) {
    const len = rnd(30);
    let s = '';
    for (let i = 0; i < len; i++) s += alphabet[rnd(alphabet.length)];
    const depth = rnd(4);
    const from = rnd(3) === 0 ? rnd(len + 1) : 0;
    const to = rnd(3) === 0 ? from + rnd(len - from + 1) : len;
    assert.equal(tooDeepAt(s, depth, from, to), tooDeepAtReference(s, depth, from, to), `${JSON.stringify(s)} ${depth} ${from} ${to}`);
  }
});
