// The byte path of jsonformat (shipper/jsonformat/byte-formatter.ts) against
// the RegExp path (LineFormatter.format): over many generated and tricky
// lines, for many schemas, every line the byte path decides gives exactly
// the bytes format() gives, and it does decide the plain lines. The whole
// loop (format-stream.ts) with and without the byte path gives the same
// output, counts and reports, for any chunking, invalid UTF-8 included.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { SLACK } from '../../../../shipper/jsonformat/byte-formatter.js';
import { converterFactory } from '../../../../shipper/jsonformat/converter.js';
import { formatFd, formatStream, isBlank, type FormatStats } from '../../../../shipper/jsonformat/format-stream.js';
import { parseAssignments, parseTypes } from '../../../../shipper/jsonformat/field-options.js';
import { LineFormatter, type FormatterOptions } from '../../../../shipper/jsonformat/line-formatter.js';
import { compileSchema } from '../../../../shipper/jsonformat/schema.js';
import { PRESETS } from '../../../../shipper/jsonformat/presets.js';
// Deterministic, so a failure can be replayed.
import { mulberry32 as rng } from '../../../../bench/prng.js';

const SEED_SCHEMA = '$date $hour _ _ _ \\[$process\\] _ $ip';

interface Case {
  schema: string;
  fields?: string[];
  types?: string[];
}

const CASES: Case[] = [
  { schema: SEED_SCHEMA, fields: ['machine=server'] },
  { schema: SEED_SCHEMA },
  { schema: '$a' },
  { schema: '$a $b' },
  { schema: '_' },
  { schema: '_ _', fields: ['only=const'] },
  { schema: '$all...' },
  { schema: '_...' },
  { schema: '$host $msg...' },
  { schema: '_ $msg...' },
  { schema: '$a _...' },
  { schema: '\\[$p\\]: $x' },
  { schema: '\\[$p\\]' },
  { schema: 'x$a $b:' },
  { schema: ':$a: $b' },
  { schema: 'ab$a.ab _' },
  { schema: 'pid=$pid lit $a' },
  { schema: '\\"$a\\" \\\\$b' },
  { schema: '\\_ $a' },
  { schema: '"$q" [$b] $c' },
  { schema: '"_" [_] $c...' },
  { schema: '$ip "$request" $status', types: ['status=int'] },
  { schema: '$n $f $b', types: ['n=int,f=float,b=bool'] },
  { schema: '$a $rest...', types: ['rest=int'] },
  { schema: '[$t] $a', types: ['t=int'] },
  { schema: '"$q"', types: ['q=float'] },
  { schema: '$a $b', fields: ['machine=sérveur,quote="x\\,y"', 'n=3'], types: ['n=int'] },
  { schema: 'a.b*c+(d)?{e}|/$x' },
  ...Object.values(PRESETS).map((p) => ({ schema: p.schema, types: p.types ? [p.types] : [] })),
];

function formatter(c: Case): LineFormatter {
  const o: FormatterOptions = { schema: c.schema, fields: parseAssignments(c.fields ?? [], '--fields'), types: parseTypes(c.types ?? []) };
  return new LineFormatter(o);
}

/**
 * The byte path on one line (bytes without "\n"): the JSON line it writes
 * (as latin1: its bytes, not what they decode to), or null when it leaves
 * the line to format().
 */
function viaBytes(f: LineFormatter, line: Buffer, random: () => number): string | null {
  const bytes = f.bytes!;
  // Garbage after the "\n" and in the output: the byte path must not depend on it.
  const src = Buffer.alloc(line.length + 1 + SLACK + 3, 'A');
  const offset = Math.floor(random() * 3);
  line.copy(src, offset);
  src[offset + line.length] = 10;
  const out = Buffer.alloc(line.length + bytes.maxGrowth + 5, 'Z');
  const at = Math.floor(random() * 5);
  const pos = bytes.format(src, new DataView(src.buffer, src.byteOffset, src.length), offset, out, new DataView(out.buffer, out.byteOffset, out.length), at);
  if (pos < 0) return null;
  assert.equal(bytes.lineEnd, offset + line.length, 'lineEnd is the line\'s "\\n"');
  return out.toString('latin1', at, pos);
}

/** What format() gives, as the bytes the loop writes (see viaBytes). */
function expectedBytes(json: string | null): string {
  return Buffer.from(`${json}\n`).toString('latin1');
}

// Pieces of generated lines: mostly plain, some of everything the byte path must leave alone.
const PLAIN_WORDS = [
  'a',
  'sshd',
  '10.0.0.1',
  '2017-06-14',
  '17:16:12,329',
  'x:y',
  '[1112]:',
  'GET',
  '/index.html?q=a%20b',
  '-',
  '42',
  '-7',
  '007',
  '2.5e3',
  '1e300',
  'on',
  'true',
  'NaN',
  '{}',
  '()',
  '*',
  'DEL\x7f',
  "it's",
];
const TRICKY_WORDS = [
  '"',
  '\\',
  'a"b',
  'a\\b',
  '\\"',
  '\x01',
  '\x1b[0m',
  'a\rb',
  '\r',
  'é',
  '€uro',
  '😀',
  '\u2028',
  '\u2029',
  '\u00a0',
  '\ufeff',
  '\v',
  '\f',
  '[',
  ']',
  '[]',
  '""',
  '"\\"',
  '[a b]',
  '"a b"',
  '"a \\" b"',
];
const INVALID = [Buffer.from([0xff]), Buffer.from([0xc3]), Buffer.from([0xe2, 0x80]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf0, 0x9f, 0x98])];
const SEPARATORS = [' ', ' ', ' ', '  ', '\t', ' \t ', '        '];

function pick<T>(random: () => number, xs: readonly T[]): T {
  return xs[Math.floor(random() * xs.length)]!;
}

function word(random: () => number, tricky: number): Buffer {
  const r = random();
  if (r < tricky * 0.15) return INVALID[Math.floor(random() * INVALID.length)]!;
  if (r < tricky) return Buffer.from(pick(random, TRICKY_WORDS) + (random() < 0.5 ? pick(random, PLAIN_WORDS) : ''));
  return Buffer.from(pick(random, PLAIN_WORDS));
}

/** Content for "..." or [...]: words and spaces, sometimes escapes and the closing character. */
function inner(random: () => number, tricky: number): Buffer {
  const parts: Buffer[] = [];
  const n = Math.floor(random() * 4);
  for (let i = 0; i < n; i++) parts.push(word(random, tricky), Buffer.from(tricky > 0 && random() < 0.2 ? '\t' : ' '));
  return Buffer.concat(parts);
}

/** A line shaped like the schema (each token generated from its schema token), or random tokens. */
function lineFor(schema: string, random: () => number): Buffer {
  const tricky = random() < 0.5 ? 0 : random() * 0.5;
  const tokens: Buffer[] = [];
  if (random() < 0.15) {
    const n = Math.floor(random() * 10);
    for (let i = 0; i < n; i++) tokens.push(word(random, tricky));
  } else {
    for (const tok of schema.split(/\s+/).filter(Boolean)) {
      if (random() < 0.03) continue; // too few tokens
      let out = '';
      const parts: Buffer[] = [];
      const flush = () => {
        if (out) parts.push(Buffer.from(out));
        out = '';
      };
      for (let i = 0; i < tok.length; i++) {
        const ch = tok[i]!;
        if (ch === '\\') out += tok[++i] ?? '';
        else if (ch === '"' || ch === '[') {
          const close = ch === '"' ? '"' : ']';
          i = tok.indexOf(close, i + 1);
          flush();
          parts.push(Buffer.from(ch), inner(random, tricky), Buffer.from(close));
        } else if (ch === '$' || (ch === '_' && (i + 1 === tok.length || tok[i + 1] === '.'))) {
          let j = i + 1;
          while (j < tok.length && /[A-Za-z0-9_]/.test(tok[j]!)) j++;
          flush();
          if (tok.startsWith('...', j)) {
            const n = Math.floor(random() * 5);
            for (let k = 0; k < n; k++) parts.push(word(random, tricky), Buffer.from(pick(random, SEPARATORS)));
            j += 3;
          } else {
            parts.push(word(random, tricky));
          }
          i = j - 1;
        } else {
          out += ch;
        }
      }
      flush();
      let token = Buffer.concat(parts);
      if (random() < 0.03) token = Buffer.concat([token, word(random, tricky)]); // a literal that does not match
      tokens.push(token);
    }
    if (random() < 0.05) tokens.push(word(random, tricky)); // too many tokens
  }
  const pieces: Buffer[] = [];
  if (random() < 0.1) pieces.push(Buffer.from(pick(random, SEPARATORS)));
  tokens.forEach((t, i) => {
    if (i > 0) pieces.push(Buffer.from(pick(random, SEPARATORS)));
    pieces.push(t);
  });
  const r = random();
  if (r < 0.1) pieces.push(Buffer.from(pick(random, SEPARATORS)));
  else if (r < 0.25) pieces.push(Buffer.from('\r'));
  else if (r < 0.28) pieces.push(Buffer.from(' \r'));
  else if (r < 0.3) pieces.push(Buffer.from('\r\r'));
  return Buffer.concat(pieces);
}

const HANDWRITTEN = [
  '2017-06-14 17:16:12,329 fail2ban.actions        [1112]: NOTICE  [sshd] Ban 59.45.175.88',
  '2017-06-14 17:16:12,329 fail2ban.actions        [1112]: NOTICE  [sshd] Ban 59.45.175.88\r',
  '\t2017-06-14 17:16:12,329 fail2ban.actions [1112]: NOTICE [sshd] Ban 59.45.175.88 \t ',
  '2017-06-14 17:16:12,329 fail2ban.actions [1112]: NOTICE [ssh"d] Ban 59.45.175.88',
  '2017-06-14 17:16:12,329 fail2ban.actions [1112]: NOTICE [sshé] Ban 59.45.175.88',
  '2017-06-14 17:16:12,329 fail2ban.actions [1112]: NOTICE [sshd] Ban',
  '2017-06-14 17:16:12,329 fail2ban.actions [1112]: NOTICE [sshd] Ban 1.2.3.4 extra',
  '2017-06-14 17:16:12,329 fail2ban.actions [1112]: NOTICE sshd Ban 1.2.3.4',
  '2017-06-14 17:16:12,329 fail2ban.actions [1112]: NOTICE [a]b] Ban 1.2.3.4',
  '2017-06-14 17:16:12,329 \x01 [1112]: NOTICE [] Ban 1.2.3.4\r',
  'a',
  'a\r',
  'a\r\r',
  'a \r',
  'a\rb',
  'a\tb',
  'a  b  ',
  '"a b" [c d] e',
  '"a \\" b" [c] d',
  '"a\\\\" [] e',
  '"" [] ""',
  '"a\\\rb" [c] d',
  '"x" [y]z w',
  '"x"y [z] w',
  '[a] b',
  'x y z',
  ': x',
  ':: x',
  ':x: y',
  'ab.ab x',
  'ab x',
  'abab x',
  'ab.a x',
  'pid=42 lit q',
  'pid=42 lix q',
  'pid= lit q',
  '""',
  '"',
  '"abc',
  '\\"a\\" \\\\b',
  '_ x',
  'y x',
  'web1 Failed password for root  from 1.2.3.4  ',
  'web1',
  'web1 ',
  'web1 \t',
  'web1\tmsg\twith tabs',
  'web1 msg "quoted" and \\ slash',
  'web1 naïve message',
  'web1 a\u2028b',
  'web1 - 42',
  '1 2 3',
  '- - -',
  '007 2.5e3 yes',
  'x 1e300 on',
  'a.b*c+(d)?{e}|/1',
  'aXb*c+(d)?{e}|/1',
  '10.0.0.1 "GET / HTTP/1.1" 200',
  '10.0.0.1 "GET / HTTP/1.1" 2x0',
  '[12] a',
  '[] a',
  '[1 2] a',
  ...Object.values(PRESETS).map((p) => p.sample),
];

describe('the byte path of jsonformat', () => {
  test('schemas with only simple tokens have a byte path; others have the RegExp only', () => {
    for (const schema of [SEED_SCHEMA, '$a', '$all...', '_...', '"$q" [$b] $c', '"_" [_] $c...', '\\[$p\\]:', 'x$a $b:', PRESETS['nginx-combined']!.schema]) {
      assert.ok(compileSchema(schema).simple, schema);
    }
    for (const schema of ['$host:$port', 'a\\ b $x', 'é$a', '"$a"x', 'x[$a]', '$a:"$b"']) {
      assert.equal(compileSchema(schema).simple, null, schema);
    }
  });

  test('decides the plain lines, and gives exactly what format() gives', () => {
    const f = formatter(CASES[0]!);
    const random = rng(1);
    const line = Buffer.from(HANDWRITTEN[0]!);
    assert.equal(viaBytes(f, line, random), expectedBytes(f.format(line.toString())));
    assert.equal(viaBytes(f, Buffer.from(`${HANDWRITTEN[0]!}\r`), random), expectedBytes(f.format(line.toString())), 'CRLF');
    for (const p of Object.values(PRESETS)) {
      const pf = formatter({ schema: p.schema, types: p.types ? [p.types] : [] });
      assert.equal(viaBytes(pf, Buffer.from(p.sample), random), expectedBytes(p.output), p.schema);
    }
  });

  test('agrees with format() on every line it decides, over many generated and tricky lines', () => {
    for (const [i, c] of CASES.entries()) {
      const f = formatter(c);
      assert.ok(f.bytes, `${c.schema} has a byte path`);
      const random = rng(1000 + i);
      const lines = [...HANDWRITTEN.map((l) => Buffer.from(l)), ...Array.from({ length: 4000 }, () => lineFor(c.schema, random))];
      let decided = 0;
      let matched = 0;
      for (const line of lines) {
        const text = line.toString('utf8');
        if (line.includes(10) || isBlank(text)) continue;
        const expected = f.format(text);
        if (expected !== null) matched++;
        const got = viaBytes(f, line, random);
        if (got === null) continue;
        decided++;
        assert.equal(got, expectedBytes(expected), `${c.schema}: ${JSON.stringify(text)}`);
      }
      // The generator makes plenty of plain lines: the byte path must take most of those.
      assert.ok(decided >= matched / 4, `${c.schema}: decided ${decided} of ${matched} matching lines`);
    }
  });
});

describe('the jsonformat loop with and without the byte path', () => {
  async function run(input: Buffer, c: Case, chunkSizes: number[], bytePath: boolean, strict = false) {
    const chunks: Buffer[] = [];
    for (let i = 0, k = 0; i < input.length; k++) {
      const size = chunkSizes[k % chunkSizes.length]!;
      chunks.push(input.subarray(i, i + size));
      i += size;
    }
    const parts: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        parts.push(Buffer.from(chunk));
        done();
      },
    });
    const reports: string[] = [];
    const make = converterFactory({ schema: c.schema, fields: c.fields, types: c.types }, 'schema');
    let stats: FormatStats | null = null;
    let error = '';
    try {
      stats = await formatStream(Readable.from(chunks), sink, (m) => reports.push(m), make, { strict, reportLimit: 5, bytePath });
    } catch (err) {
      error = (err as Error).message;
    }
    return { output: Buffer.concat(parts).toString('latin1'), reports, stats, error };
  }

  function input(c: Case, seed: number, lines: number): Buffer {
    const random = rng(seed);
    const out: Buffer[] = [];
    for (let i = 0; i < lines; i++) {
      const r = random();
      if (r < 0.05) out.push(Buffer.from(pick(random, ['', ' ', '\t', '\r', ' \r', '\u00a0', ' \u00a0', '\ufeff', ' \v', ' x'])));
      else out.push(lineFor(c.schema, random));
    }
    const text = Buffer.concat(out.flatMap((l) => [l, Buffer.from('\n')]));
    return random() < 0.5 ? text.subarray(0, text.length - 1) : text;
  }

  test('same output, counts and reports for any chunking (invalid UTF-8, CRLF, blank lines included)', async () => {
    for (const [i, c] of CASES.entries()) {
      const data = input(c, 50 + i, 400);
      const reference = await run(data, c, [data.length], false);
      for (const sizes of [[data.length], [1], [3, 7], [64, 1000, 5], [4096]]) {
        const got = await run(data, c, sizes, true);
        assert.deepEqual(got, reference, `${c.schema}, chunks of ${sizes.join(',')}`);
      }
    }
  });

  test('--strict stops at the same line with the same output', async () => {
    const c = CASES[0]!;
    const data = input(c, 7, 300);
    const reference = await run(data, c, [100], false, true);
    assert.match(reference.error, /--strict/);
    assert.deepEqual(await run(data, c, [100], true, true), reference);
  });

  test('formatFd: lines longer than its buffer and a last line without "\\n"', () => {
    const dir = mkdtempSync(join(tmpdir(), 'couchlog-bytepath-'));
    try {
      const long = `${'x'.repeat(700_000)} y`;
      const lines = [HANDWRITTEN[0]!, 'a b', 'a b"', 'garbage', '', HANDWRITTEN[2]!, 'é\u2028 z'];
      const all = Array.from({ length: 3000 }, (_, i) => lines[i % lines.length]!);
      all[1000] = long;
      all[2001] = `${long}"`;
      const data = `${all.join('\n')}\n${HANDWRITTEN[0]!}`;
      writeFileSync(join(dir, 'in'), data);
      const outputs: string[] = [];
      for (const bytePath of [true, false]) {
        const inFd = openSync(join(dir, 'in'), 'r');
        const outFd = openSync(join(dir, 'out'), 'w');
        const reports: string[] = [];
        let stats: FormatStats;
        try {
          stats = formatFd(inFd, outFd, (m) => reports.push(m), converterFactory({ schema: '$a $b' }, 'schema'), { strict: false, reportLimit: 3, bytePath });
        } finally {
          closeSync(inFd);
          closeSync(outFd);
        }
        assert.deepEqual(stats, { lines: 3001, blank: 428, documents: 1286, unmatched: 1287 });
        outputs.push(`${readFileSync(join(dir, 'out'), 'latin1')}${JSON.stringify(reports)}`);
      }
      assert.equal(outputs[0], outputs[1]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
