// The lookup view of the correlator's input databases must key a document
// exactly as the correlator does (normalize.ts), or a late event would not
// find its partners. Its map function is connKeyOf's own source, evaluated
// here as CouchDB would (a fresh function from the stored text, with an
// `emit`), and compared with toEvent on thousands of generated documents:
// every address spelling, port type and time format the correlator reads.
// canonicalIp (ES5, conn-key.ts) is checked against ipaddr.js as an oracle.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'acorn';
import ipaddr from 'ipaddr.js';
import { lookupBucket, lookupDesignDoc, lookupHourDesignDoc, lookupMapSource } from '../../../design-docs/correlator-lookup.js';
import { toEvent } from '../../../correlator/engine/normalize.js';
import { canonicalIp, IpFilter } from '../../../correlator/engine/ip-filter.js';
import { mulberry32 } from '../../../bench/prng.js';

type Emitted = Array<[unknown, unknown]>;

function viewKeys(doc: Record<string, unknown>, byHour = false): Emitted {
  const out: Emitted = [];
  const map = new Function('emit', `return (${lookupMapSource(byHour)});`)((k: unknown, v: unknown) => out.push([k, v])) as (d: unknown) => void;
  map(doc);
  return out;
}

const RULES = { exclude: new IpFilter([]), includePorts: new Set<number>(), where: null };

function randomDoc(rnd: () => number): Record<string, unknown> {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const octet = () => pick([0, 1, 9, 10, 99, 100, 199, 200, 249, 250, 255, 256, Math.floor(rnd() * 256)]);
  const v4 = () => `${octet()}.${octet()}.${octet()}.${octet()}`;
  const hex = () => pick(['0', '00', '0000', 'ffff', 'FFFF', 'db8', '2001', 'abc', '1', Math.floor(rnd() * 65536).toString(16)]);
  const v6 = () => {
    const groups = Array.from({ length: 8 }, hex);
    const r = rnd();
    if (r < 0.3) return groups.join(':');
    const at = Math.floor(rnd() * 7);
    const len = 1 + Math.floor(rnd() * (8 - at - 1));
    return `${groups.slice(0, at).join(':')}::${groups.slice(at + len).join(':')}`;
  };
  const ip = pick([
    v4, v4, () => `::ffff:${v4()}`, () => `::FFFF:${v4()}`, v6, v6, () => `[${v6()}]`, () => ` ${v4()} `,
    () => `${v6()}%eth0`, () => `0${v4()}`, () => '1.2.3', () => `::${v4()}`, () => `1::2::3`, () => 'not-an-ip', () => '',
  ])();
  const ms = Date.UTC(2026, 10, 27) + Math.floor(rnd() * 86_400_000);
  const time = pick([
    () => ({ timestamp: ms }), () => ({ timestamp: ms / 1000 }), () => ({ timestamp: ms * 1000 + 7 }), () => ({ timestamp: ms * 1e6 + 999_999 }),
    () => ({ time: new Date(ms).toISOString() }), () => ({ time: new Date(ms).toISOString().replace('Z', '+02:00') }),
    () => ({ time: new Date(ms).toISOString().replace('T', ' ').replace('Z', '') }), () => ({ time: '2026-02-30T00:00:00Z' }),
    () => ({ time: 'yesterday', received_at: new Date(ms).toISOString() }), () => ({ received_at: new Date(ms).toISOString() }),
    () => ({ timestamp: -1 }), () => ({ timestamp: '1700000000' }), () => ({}),
  ])();
  const port = pick([1, 443, 65535, 0, 65536, '8080', ' 8080 ', '08080', 'x', 1.5, null, Math.floor(rnd() * 65536)]);
  return { src_ip: ip, src_port: port, ...time };
}

describe('the lookup view keys documents as the correlator does', () => {
  test('the map function is ES5 (parsed with acorn, ecmaVersion 5)', () => {
    assert.doesNotThrow(() => parse(`(${lookupMapSource()})`, { ecmaVersion: 5 }));
    assert.doesNotThrow(() => parse(`(${lookupMapSource(true)})`, { ecmaVersion: 5 }));
    assert.equal(lookupDesignDoc()._id, '_design/correlator');
    // Apart: adding it left by_conn's index as it was (an upgrade does not rebuild it under a running correlator).
    assert.equal(lookupHourDesignDoc()._id, '_design/correlator_hour');
    assert.deepEqual(Object.keys(lookupDesignDoc().views ?? {}), ['by_conn']);
  });

  test('5,000 generated documents: the view key equals toEvent\'s key and time, and documents without one emit nothing', () => {
    const rnd = mulberry32(20261128);
    let keyed = 0;
    for (let i = 0; i < 5000; i++) {
      const doc = { _id: `d${i}`, ...randomDoc(rnd) };
      const ev = toEvent({ id: doc._id, doc }, 'A', 0, RULES);
      const emitted = viewKeys(doc);
      if ('skip' in ev) {
        assert.deepEqual(emitted, [], `${JSON.stringify(doc)} is skipped (${ev.skip}) but the view emits ${JSON.stringify(emitted)}`);
        assert.deepEqual(viewKeys(doc, true), [], `${JSON.stringify(doc)} is skipped (${ev.skip}) but by_conn_hour emits`);
        continue;
      }
      keyed++;
      assert.equal(emitted.length, 1, JSON.stringify(doc));
      const [ip, port] = emitted[0]![0] as [string, number];
      const time = emitted[0]![1] as number;
      assert.equal(ev.key, ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`, JSON.stringify(doc));
      assert.equal(ev.time, time, JSON.stringify(doc));
      // by_conn_hour: the same key and value, and the hour the lookup asks for is the one it files the document under.
      assert.deepEqual(viewKeys(doc, true), [[[ip, port, lookupBucket(ev.time)], time]], JSON.stringify(doc));
    }
    assert.ok(keyed > 700 && keyed < 4500, `a mix of keyed and skipped documents (${keyed} keyed)`);
  });

  test('design documents emit nothing', () => {
    assert.deepEqual(viewKeys({ _id: '_design/x', src_ip: '1.2.3.4', src_port: 1, timestamp: 1 }), []);
  });
});

describe('canonicalIp agrees with ipaddr.js', () => {
  test('20,000 generated addresses: same canonical text, or both refuse', () => {
    const rnd = mulberry32(7);
    for (let i = 0; i < 20_000; i++) {
      const text = String(randomDoc(rnd).src_ip);
      const trimmed = text.trim().replace(/^\[(.*)\]$/, '$1');
      // ipaddr.js reads the deprecated IPv4-compatible spelling ::a.b.c.d as
      // IPv4-mapped, yet ::c800:909 (the same address) as IPv6; conn-key.ts
      // keeps both IPv6, one address one key. Only that spelling differs.
      if (/^::\d+\.\d+\.\d+\.\d+$/.test(trimmed)) {
        const q = trimmed.slice(2).split('.').map(Number);
        const validV4 = ipaddr.IPv4.isValidFourPartDecimal(trimmed.slice(2));
        const same = validV4 ? canonicalIp(`0:0:0:0:0:0:${(q[0]! * 256 + q[1]!).toString(16)}:${(q[2]! * 256 + q[3]!).toString(16)}`) : null;
        assert.equal(canonicalIp(text), same, text);
        continue;
      }
      let want: string | null = null;
      if (ipaddr.isValid(trimmed) && !trimmed.includes('%')) {
        const four = ipaddr.IPv4.isValidFourPartDecimal(trimmed);
        if (trimmed.includes(':') || four) want = ipaddr.process(trimmed).toString();
        if (want !== null && !trimmed.includes(':') && !four) want = null;
      }
      assert.equal(canonicalIp(text), want, JSON.stringify(text));
    }
  });
});
