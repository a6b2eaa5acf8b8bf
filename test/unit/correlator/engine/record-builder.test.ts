// Unit tests of correlator/engine/record-builder.ts: whichever path builds a
// record (the slow one, a compiled shape, past the bounds), it has exactly
// the own fields, order and values that assignments to a plain object give
// (a repeated name keeps its first place and last value), hostile names
// included (quotes, backslashes, line separators, `__proto__`, numeric
// names, code-looking names), and a field named `__proto__` stays a field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { RecordBuilder } from '../../../../correlator/engine/record-builder.js';
import { correlatedRecord, orphanRecord } from '../../../../correlator/engine/merge-record.js';
import type { InputEvent, Side } from '../../../../correlator/engine/types.js';
import { mulberry32 } from '../../../../bench/prng.js';

/** What the builder must equal: own data properties defined one by one, as assignment would (but `__proto__` as a field). */
function reference(fields: ReadonlyArray<readonly [string, unknown]>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of fields) {
    if (Object.prototype.hasOwnProperty.call(out, name)) out[name] = value;
    else Object.defineProperty(out, name, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function build(b: RecordBuilder, fields: ReadonlyArray<readonly [string, unknown]>): Record<string, unknown> {
  b.begin();
  for (const [name, value] of fields) b.add(name, value);
  return b.finish();
}

function assertSame(actual: Record<string, unknown>, expected: Record<string, unknown>, what: string): void {
  assert.equal(Object.getPrototypeOf(actual), Object.prototype, `${what}: prototype`);
  assert.deepEqual(Reflect.ownKeys(actual), Reflect.ownKeys(expected), `${what}: keys`);
  for (const k of Object.keys(expected)) assert.equal(actual[k], expected[k], `${what}: ${k}`);
  assert.equal(JSON.stringify(actual), JSON.stringify(expected), `${what}: JSON`);
}

const HOSTILE = [
  '__proto__',
  'constructor',
  'toString',
  '"',
  "'",
  '\\',
  '\u2028',
  '\u2029',
  '}; process.exit(1); ({',
  '0',
  '1',
  '01',
  '4294967295',
  '-1',
  '',
  ' ',
  'a b',
  '${x}',
  '`',
];

function randomShape(rnd: () => number, pool: readonly string[]): Array<[string, unknown]> {
  const n = 1 + Math.floor(rnd() * 45);
  const out: Array<[string, unknown]> = [];
  for (let i = 0; i < n; i++) {
    const name = rnd() < 0.15 ? HOSTILE[Math.floor(rnd() * HOSTILE.length)]! : pool[Math.floor(rnd() * pool.length)]!;
    out.push([name, rnd() < 0.2 ? { nested: i } : rnd() < 0.5 ? `v${i}` : i]);
  }
  return out;
}

test('seeded random shapes, each built many times (slow, then compiled): the same record as plain assignments', () => {
  for (let seed = 1; seed <= 40; seed++) {
    const rnd = mulberry32(seed);
    const b = new RecordBuilder();
    const pool = Array.from({ length: 30 }, (_, i) => `field_${i}`);
    const shapes = Array.from({ length: 8 }, () => randomShape(rnd, pool));
    for (let round = 0; round < 6; round++) {
      for (const [i, shape] of shapes.entries()) {
        // New values each round: a compiled shape must take the values, not remember them.
        const fields = shape.map(([name], k) => [name, `${seed}-${round}-${k}`] as const);
        assertSame(build(b, fields), reference(fields), `seed ${seed}, shape ${i}, round ${round}`);
      }
    }
    assert.ok(b.compiled > 0, `seed ${seed}: some shape was compiled`);
  }
});

test('a field named __proto__ is an own field, never the prototype, whatever its value', () => {
  const b = new RecordBuilder();
  for (let round = 0; round < 5; round++) {
    const fields = [
      ['a', 1],
      ['__proto__', { polluted: true }],
      ['b', 2],
    ] as const;
    const r = build(b, fields);
    assert.equal(Object.getPrototypeOf(r), Object.prototype);
    assert.equal((r as { polluted?: unknown }).polluted, undefined);
    assert.equal(JSON.stringify(r), '{"a":1,"__proto__":{"polluted":true},"b":2}');
  }
});

test('past its bounds (thousands of random names, as a hostile client could send) records stay exact', () => {
  const b = new RecordBuilder();
  const rnd = mulberry32(7);
  for (let i = 0; i < 3_000; i++) {
    const fields = Array.from({ length: 12 }, (_, k) => [`n${Math.floor(rnd() * 1e9)}_${k}`, k] as const);
    // Each shape three times: enough to be compiled while the bounds allow.
    for (let r = 0; r < 3; r++) assertSame(build(b, fields), reference(fields), `shape ${i}`);
  }
  assert.ok(b.compiled <= 256, `compiled shapes are bounded: ${b.compiled}`);
  const known = [
    ['x', 1],
    ['y', 2],
  ] as const;
  for (let r = 0; r < 4; r++) assertSame(build(b, known), reference(known), 'a shape after the bounds');
});

function ev(side: Side, id: string, doc: Record<string, unknown>): InputEvent {
  return { side, index: 0, id, key: '203.0.113.42:52341', time: Date.UTC(2024, 0, 1, 12), doc: { src_ip: '203.0.113.42', src_port: 52341, ...doc } };
}

test('merged records keep document fields named __proto__, constructor, toString (lost or renamed after a function before)', () => {
  const a = JSON.parse('{"dst_port": 443, "__proto__": {"x": 1}, "method": "GET", "constructor": "c", "toString": 5}') as Record<string, unknown>;
  const bDoc = JSON.parse('{"dst_port": 443, "__proto__": "sensor", "ja4": "t13d"}') as Record<string, unknown>;
  for (let round = 0; round < 4; round++) {
    const c = correlatedRecord(ev('A', 'a1', a), ev('B', 'b1', bDoc), 1);
    assert.equal(Object.getPrototypeOf(c), Object.prototype);
    assert.deepEqual(JSON.parse(JSON.stringify(c)).a___proto__, { x: 1 });
    assert.equal(JSON.parse(JSON.stringify(c)).b___proto__, 'sensor');
    const o = orphanRecord(ev('A', 'a2', a));
    assert.equal(Object.getPrototypeOf(o), Object.prototype);
    assert.deepEqual(Object.getOwnPropertyDescriptor(o, '__proto__')?.value, { x: 1 });
    assert.deepEqual(Object.keys(o).slice(-4), ['__proto__', 'method', 'constructor', 'toString']);
    assert.equal(o.constructor, 'c');
    assert.equal(o.toString, 5);
    assert.equal(c.constructor, 'c');
  }
});

test('huge field names are never remembered (a hostile client cannot make the builder hold gigabytes)', () => {
  const b = new RecordBuilder();
  for (let i = 0; i < 500; i++) {
    const fields = [
      ['timestamp', i],
      [`${'n'.repeat(10_000)}${i}`, i],
      ['after', i],
    ] as const;
    assertSame(build(b, fields), reference(fields), `record ${i}`);
  }
  assert.ok(b.prefixes <= 2, `${b.prefixes} prefixes remembered`);
});

test('where code generation is disallowed (node --disallow-code-generation-from-strings), records are still exact', () => {
  const script = `
    import { RecordBuilder } from ${JSON.stringify(new URL('../../../../correlator/engine/record-builder.js', import.meta.url).href)};
    const b = new RecordBuilder();
    const out = [];
    for (let i = 0; i < 6; i++) { b.begin(); b.add('a', i); b.add('1', 'x'); b.add('a', -i); out.push(JSON.stringify(b.finish())); }
    console.log(JSON.stringify({ out, compiled: b.compiled }));
  `;
  const r = spawnSync(process.execPath, ['--disallow-code-generation-from-strings', '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const { out, compiled } = JSON.parse(r.stdout) as { out: string[]; compiled: number };
  assert.equal(compiled, 0);
  assert.deepEqual(
    out,
    Array.from({ length: 6 }, (_, i) => JSON.stringify({ 1: 'x', a: -i })),
  );
});
