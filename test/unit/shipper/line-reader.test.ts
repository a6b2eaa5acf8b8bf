// readLines (shipper/line-reader.ts): whatever the chunking, the lines and
// their byte offsets are those of the whole input; a line over the limit is
// given once, marked tooLong, with only its beginning kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readLines, TOO_LONG_KEPT, type RawLine } from '../../../shipper/line-reader.js';
import { mulberry32 } from '../../../bench/prng.js';

async function all(chunks: Buffer[], includeUnterminated: boolean, max?: number): Promise<RawLine[]> {
  const out: RawLine[] = [];
  for await (const lines of readLines(chunks, 100, includeUnterminated, max)) out.push(...lines);
  return out;
}

/** The input cut at random places (chunks of 0 to 40 bytes). */
function chunked(input: Buffer, rnd: () => number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < input.length;) {
    const n = Math.floor(rnd() * 41);
    chunks.push(input.subarray(at, at + n));
    at += n;
  }
  return chunks;
}

/** The reference: split the whole input at once. */
function reference(input: Buffer, includeUnterminated: boolean, max: number): RawLine[] {
  const out: RawLine[] = [];
  let pos = 0;
  for (let nl = input.indexOf(10); nl !== -1; nl = input.indexOf(10, pos)) {
    out.push(ref(input.subarray(pos, nl), 100 + pos, 100 + nl + 1, max));
    pos = nl + 1;
  }
  if (pos < input.length && includeUnterminated) out.push(ref(input.subarray(pos), 100 + pos, 100 + input.length, max));
  return out;
}

function ref(bytes: Buffer, offset: number, end: number, max: number): RawLine {
  if (bytes.length <= max) return { text: bytes.toString('utf8'), offset, end };
  return { text: bytes.subarray(0, TOO_LONG_KEPT).toString('utf8'), offset, end, tooLong: true };
}

test('200 seeded inputs cut at random places give the lines and offsets of the whole input', async () => {
  for (let seed = 1; seed <= 200; seed++) {
    const rnd = mulberry32(seed);
    const parts: string[] = [];
    const n = Math.floor(rnd() * 30);
    for (let i = 0; i < n; i++) parts.push(rnd() < 0.1 ? '' : 'é€x'.repeat(Math.floor(rnd() * 20)) + (rnd() < 0.05 ? 'y'.repeat(6000) : ''));
    const input = Buffer.from(parts.join('\n') + (rnd() < 0.5 ? '\n' : ''));
    const max = rnd() < 0.5 ? Infinity : 5000;
    for (const includeUnterminated of [false, true]) {
      assert.deepEqual(await all(chunked(input, rnd), includeUnterminated, max), reference(input, includeUnterminated, max), `seed ${seed}`);
    }
  }
});

test('a line over the limit, within one chunk or across many: given once, tooLong, its beginning kept; the next lines intact', async () => {
  const long = Buffer.alloc(3 * 1024 * 1024, 'z');
  const input = Buffer.concat([Buffer.from('before\n'), long, Buffer.from('\nafter\n')]);
  for (const size of [input.length, 256 * 1024, 1000]) {
    const chunks = Array.from({ length: Math.ceil(input.length / size) }, (_, i) => input.subarray(i * size, (i + 1) * size));
    const lines = await all(chunks, false, 1024 * 1024);
    assert.deepEqual(
      lines.map((l) => [l.text.length, l.offset, l.end, l.tooLong ?? false]),
      [
        [6, 100, 107, false],
        [TOO_LONG_KEPT, 107, 107 + long.length + 1, true],
        [5, 108 + long.length, 114 + long.length, false],
      ],
      `chunks of ${size}`,
    );
  }
});

test('an unterminated line over the limit at the end: not given unless asked for, then once', async () => {
  const chunks = Array.from({ length: 64 }, () => Buffer.alloc(256 * 1024, 'q')); // 16 MiB, no "\n"
  assert.deepEqual(await all(chunks, false, 8 * 1024 * 1024), []);
  const [only, ...rest] = await all(chunks, true, 8 * 1024 * 1024);
  assert.deepEqual(rest, []);
  assert.deepEqual([only!.offset, only!.end, only!.tooLong, only!.text.length], [100, 100 + 16 * 1024 * 1024, true, TOO_LONG_KEPT]);
});
