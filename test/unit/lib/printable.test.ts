// lib/printable.ts: what reaches a terminal cannot drive it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { printable, printableCsv } from '../../../lib/printable.js';
import { mulberry32 } from '../../../bench/prng.js';

test('control characters and bidi overrides are shown as escapes; printable text is left alone', () => {
  assert.equal(printable('esc\u001b]0;PWNED\u0007\u001b[31mRED'), 'esc\\x1b]0;PWNED\\x07\\x1b[31mRED');
  assert.equal(printable('1.2.3.9\r\u001b[2Kfake'), '1.2.3.9\\r\\x1b[2Kfake');
  assert.equal(printable('a\nb\tc\u007f\u009b'), 'a\\nb\\tc\\x7f\\x9b');
  assert.equal(printable('\u202eevil\u202c'), '\\u202eevil\\u202c');
  const plain = 'sshd 185.220.101.4 ünïcødé 日本 🙂 "quoted" \\ back';
  assert.equal(printable(plain), plain);
});

test('property: no character that acts on a terminal survives, and nothing else changes', () => {
  const rnd = mulberry32(7);
  for (let round = 0; round < 2000; round++) {
    const chars = Array.from({ length: Math.floor(rnd() * 20) }, () => String.fromCharCode(Math.floor(rnd() * (rnd() < 0.5 ? 0xa0 : 0x2100))));
    const text = chars.join('');
    const out = printable(text);
    assert.doesNotMatch(out, /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/, JSON.stringify(text));
    // Escapes only add characters; with the escapes taken out again, the text is what it was.
    const back = out.replace(/\\(x[0-9a-f]{2}|u[0-9a-f]{4}|n|r|t)/g, (m, e: string) =>
      e === 'n' ? '\n' : e === 'r' ? '\r' : e === 't' ? '\t' : String.fromCharCode(parseInt(e.slice(1), 16)),
    );
    if (!text.includes('\\')) assert.equal(back, text);
  }
});

test('for CSV, tab and line breaks are data (quoted cells) and stay; escape sequences and bidi controls do not', () => {
  assert.equal(printableCsv('a\nb\r\n\tc'), 'a\nb\r\n\tc');
  assert.equal(printableCsv('x\u001b[2K\u0007\u202e'), 'x\\x1b[2K\\x07\\u202e');
});
