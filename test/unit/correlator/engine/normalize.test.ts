// Unit tests of correlator/engine/normalize.ts (a CouchDB change -> an engine
// event, or why it is skipped) and correlator/engine/ip-filter.ts (canonical
// addresses for keys; exclude_source_ips as addresses and CIDRs, v4 and v6).
// The key must not depend on how a shipper spelled the address, or the A and
// B of one connection would never meet.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalIp, IpFilter } from '../../../../correlator/engine/ip-filter.js';
import { connectionKey, epochMs, eventTime, keyHash, toEvent, toPort, type Change, type NormalizeRules } from '../../../../correlator/engine/normalize.js';
import type { InputEvent } from '../../../../correlator/engine/types.js';

const NOON = Date.UTC(2024, 0, 1, 12);

function rules(over: { exclude?: string[]; ports?: number[]; where?: NormalizeRules['where']; shard?: NormalizeRules['shard'] } = {}): NormalizeRules {
  return { exclude: new IpFilter(over.exclude ?? []), includePorts: new Set(over.ports ?? []), where: over.where ?? null, shard: over.shard };
}

const doc = (over: Record<string, unknown> = {}) => ({
  _id: 'd1',
  _rev: '1-abc',
  src_ip: '203.0.113.7',
  src_port: 52341,
  dst_ip: '192.0.2.1',
  dst_port: 443,
  timestamp: NOON,
  method: 'GET',
  ...over,
});
const change = (over: Record<string, unknown> = {}, id = 'd1'): Change => ({ id, doc: doc(over) });

function event(r: ReturnType<typeof toEvent>): InputEvent {
  assert.ok(!('skip' in r), `expected an event, got skip: ${'skip' in r ? r.skip : ''}`);
  return r;
}
const keyOf = (c: Change, r = rules()) => event(toEvent(c, 'A', 0, r)).key;

describe('canonicalIp', () => {
  const cases: [string, string | null][] = [
    ['203.0.113.7', '203.0.113.7'],
    [' 203.0.113.7 ', '203.0.113.7'],
    ['::ffff:203.0.113.7', '203.0.113.7'],
    ['::FFFF:203.0.113.7', '203.0.113.7'],
    ['::ffff:cb00:7107', '203.0.113.7'], // the mapped address in hex groups
    ['2001:DB8:0:0::1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['[2001:db8::1]', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // RFC 5952: the first longest zero run
    ['::1', '::1'],
    // Legacy IPv4 spellings are not what a log line means: rejected rather than guessed.
    ['010.0.0.1', null],
    ['127.1', null],
    ['0x7f.0.0.1', null],
    ['1', null],
    ['1.2.3.256', null],
    ['fe80::1%eth0', null],
    ['203.0.113.7/32', null],
    ['', null],
    ['not-an-ip', null],
  ];
  for (const [input, want] of cases) {
    test(`${JSON.stringify(input)} -> ${JSON.stringify(want)}`, () => assert.equal(canonicalIp(input), want));
  }

  test('the dotted-quad shortcut agrees with full parsing (a leading space forces the parser)', () => {
    const parts = ['0', '00', '01', '7', '09', '10', '99', '100', '199', '200', '249', '250', '255', '256', '260', '300', '999', '1000', ''];
    let n = 0;
    for (const a of parts)
      for (const b of ['0', '255', '01'])
        for (const c of parts)
          for (const d of parts) {
            const ip = `${a}.${b}.${c}.${d}`;
            assert.equal(canonicalIp(ip), canonicalIp(` ${ip}`), ip);
            assert.equal(canonicalIp(`::ffff:${ip}`), canonicalIp(` ::FFFF:${ip}`), `::ffff:${ip}`);
            n++;
          }
    assert.ok(n > 3000);
  });
});

describe('IpFilter (exclude_source_ips)', () => {
  const filter = new IpFilter(['10.0.0.0/8', '192.168.1.5', '2001:db8::/32', '::ffff:172.16.0.0/108', 'fe80::1']);
  const cases: [string, boolean][] = [
    ['10.1.2.3', true],
    ['10.255.255.255', true],
    ['11.0.0.1', false],
    ['9.255.255.255', false],
    ['192.168.1.5', true],
    ['192.168.1.6', false],
    ['2001:db8:ffff::1', true],
    ['2001:db9::1', false],
    ['fe80::1', true],
    ['fe80::2', false],
    // A mapped CIDR in the config applies to plain IPv4 addresses (keys are IPv4 after canonicalIp).
    ['172.16.3.4', true],
    ['172.31.255.255', true],
    ['172.32.0.1', false],
  ];
  for (const [ip, excluded] of cases) {
    test(`${ip} is ${excluded ? '' : 'not '}excluded`, () => assert.equal(filter.matches(canonicalIp(ip)!), excluded));
  }

  test('an IPv4 range does not match IPv6 addresses and vice versa', () => {
    const v4 = new IpFilter(['0.0.0.0/0']);
    const v6 = new IpFilter(['::/0']);
    assert.equal(v4.matches('2001:db8::1'), false);
    assert.equal(v6.matches('1.2.3.4'), false);
    assert.equal(v4.matches('1.2.3.4'), true);
    assert.equal(v6.matches('2001:db8::1'), true);
  });

  test('an empty filter matches nothing', () => {
    const f = new IpFilter([]);
    assert.equal(f.empty, true);
    assert.equal(f.matches('10.0.0.1'), false);
  });

  for (const bad of ['nope', '10.0.0.0/33', '2001:db8::/129', '1.2.3.4/', '']) {
    test(`config entry ${JSON.stringify(bad)} is refused, naming it`, () => {
      assert.throws(
        () => new IpFilter(['10.0.0.0/8', bad]),
        (e: Error) => e.message.includes(`"${bad}"`),
      );
    });
  }
});

describe('epochMs and eventTime', () => {
  const units: [string, number, number][] = [
    ['seconds', 1704110400, NOON],
    ['seconds with a fraction', 1704110400.25, NOON + 250],
    ['milliseconds', 1704110400123, NOON + 123],
    ['microseconds, floored to the millisecond', 1704110400123999, NOON + 123],
    ['nanoseconds (the seed A format)', 1704110400000000000, NOON],
    ['nanoseconds with a sub-millisecond part', 1704110400123000000 + 512, NOON + 123],
  ];
  for (const [unit, n, ms] of units) test(`timestamp in ${unit}`, () => assert.equal(epochMs(n), ms));

  const docs: [string, Record<string, unknown>, number | null][] = [
    ['timestamp wins over time and received_at', { timestamp: 1704110400, time: '2024-01-01T13:00:00Z', received_at: '2024-01-01T14:00:00Z' }, NOON],
    ['time as RFC 3339 with an offset', { time: '2024-01-01T13:00:00.500+01:00' }, NOON + 500],
    ['time wins over received_at', { time: '2024-01-01T12:00:00Z', received_at: '2024-01-01T14:00:00Z' }, NOON],
    ['received_at when there is nothing else', { received_at: '2024-01-01T12:00:00.000Z' }, NOON],
    ['a string timestamp is not an epoch number: time is used', { timestamp: '1704110400', time: '2024-01-01T12:00:00Z' }, NOON],
    ['timestamp 0 is not a time', { timestamp: 0, received_at: '2024-01-01T12:00:00Z' }, NOON],
    ['an unparsable time falls through to received_at', { time: 'yesterday', received_at: '2024-01-01T12:00:00Z' }, NOON],
    ['no time at all', { method: 'GET' }, null],
  ];
  for (const [name, d, want] of docs) test(name, () => assert.equal(eventTime(d), want));
});

describe('toPort and connectionKey', () => {
  const ports: [unknown, number | null][] = [
    [443, 443],
    ['443', 443],
    [' 8443 ', 8443],
    [65535, 65535],
    [0, null],
    [65536, null],
    ['65536', null],
    [443.5, null],
    ['-1', null],
    ['443x', null],
    [true, null],
    [null, null],
  ];
  for (const [v, want] of ports) test(`port ${JSON.stringify(v)} -> ${want}`, () => assert.equal(toPort(v), want));

  test('IPv4 keys are ip:port, IPv6 keys bracket the address', () => {
    assert.equal(connectionKey('203.0.113.7', 52341), '203.0.113.7:52341');
    assert.equal(connectionKey('2001:db8::1', 443), '[2001:db8::1]:443');
  });
});

describe('toEvent', () => {
  test('an A document becomes an event: key, time, id, index, doc without _id/_rev, canonical src_ip/src_port', () => {
    const ev = event(toEvent(change({ src_ip: '::ffff:203.0.113.7', src_port: '52341' }), 'A', 17, rules()));
    assert.deepEqual(ev, {
      side: 'A',
      index: 17,
      id: 'd1',
      key: '203.0.113.7:52341',
      time: NOON,
      doc: { src_ip: '203.0.113.7', src_port: 52341, dst_ip: '192.0.2.1', dst_port: 443, timestamp: NOON, method: 'GET' },
    });
  });

  test('IPv4-mapped IPv6 and plain IPv4 give the same key', () => {
    assert.equal(keyOf(change({ src_ip: '::ffff:1.2.3.4' })), keyOf(change({ src_ip: '1.2.3.4' })));
    assert.equal(keyOf(change({ src_ip: '1.2.3.4', src_port: 52341 })), '1.2.3.4:52341');
  });

  test('every spelling of one IPv6 address gives the same key', () => {
    const keys = ['2001:DB8:0:0::1', '2001:db8::1', '2001:0db8:0000:0000:0000:0000:0000:0001', '[2001:db8::1]'].map((ip) => keyOf(change({ src_ip: ip })));
    assert.deepEqual(new Set(keys), new Set(['[2001:db8::1]:52341']));
  });

  const skips: [string, Change, NormalizeRules, string][] = [
    ['a deletion', { id: 'd1', deleted: true }, rules(), 'deleted'],
    ['a change without its doc', { id: 'd1', doc: null }, rules(), 'deleted'],
    ['a design document', { id: '_design/report', doc: doc() }, rules(), 'design_doc'],
    ['no src_ip', change({ src_ip: undefined }), rules(), 'no_key'],
    ['src_ip not an address', change({ src_ip: 'localhost' }), rules(), 'no_key'],
    ['src_ip a number', change({ src_ip: 3405803783 }), rules(), 'no_key'],
    ['no src_port', change({ src_port: undefined }), rules(), 'no_key'],
    ['src_port 0', change({ src_port: 0 }), rules(), 'no_key'],
    ['src_port out of range', change({ src_port: 70000 }), rules(), 'no_key'],
    ['no time', change({ timestamp: undefined }), rules(), 'no_time'],
    ['the other side of a shared database', change({ source: 'network' }), rules({ where: { field: 'source', equals: 'http' } }), 'other_side'],
    ['an excluded IPv4 (CIDR)', change({ src_ip: '10.9.8.7' }), rules({ exclude: ['10.0.0.0/8'] }), 'excluded_ip'],
    ['an excluded IPv4 written as mapped IPv6', change({ src_ip: '::ffff:10.9.8.7' }), rules({ exclude: ['10.0.0.0/8'] }), 'excluded_ip'],
    ['an excluded IPv6 (CIDR, other spelling)', change({ src_ip: '2001:DB8:0:0::42' }), rules({ exclude: ['2001:db8::/32'] }), 'excluded_ip'],
    ['an excluded single address', change({ src_ip: '203.0.113.7' }), rules({ exclude: ['203.0.113.7'] }), 'excluded_ip'],
    ['dst_port not in include_dest_ports', change({ dst_port: 80 }), rules({ ports: [443, 8443] }), 'port_not_included'],
    ['no dst_port while include_dest_ports is set', change({ dst_port: undefined }), rules({ ports: [443] }), 'port_not_included'],
  ];
  for (const [name, c, r, reason] of skips) {
    test(`skipped: ${name} (${reason})`, () => assert.deepEqual(toEvent(c, 'A', 0, r), { skip: reason }));
  }

  const kept: [string, Change, NormalizeRules][] = [
    ['an address next to an excluded range', change({ src_ip: '11.0.0.1' }), rules({ exclude: ['10.0.0.0/8', '2001:db8::/32'] })],
    ['an IPv6 address outside the excluded v6 range', change({ src_ip: '2001:db9::1' }), rules({ exclude: ['2001:db8::/32'] })],
    ['dst_port in include_dest_ports', change({ dst_port: 8443 }), rules({ ports: [443, 8443] })],
    ['dst_port as a string in include_dest_ports', change({ dst_port: '443' }), rules({ ports: [443] })],
    ['any dst_port when include_dest_ports is empty', change({ dst_port: 25 }), rules()],
    ['this side of a shared database', change({ source: 'http' }), rules({ where: { field: 'source', equals: 'http' } })],
    ['time from `time` when there is no timestamp', change({ timestamp: undefined, time: '2024-01-01T12:00:00Z' }), rules()],
  ];
  for (const [name, c, r] of kept) test(`kept: ${name}`, () => void event(toEvent(c, 'B', 3, r)));

  test("CouchDB's own fields (_attachments, _conflicts...) are not log data", () => {
    const ev = event(toEvent(change({ _conflicts: ['2-x'], _attachments: { a: {} }, _deleted_conflicts: [] }), 'B', 0, rules()));
    assert.deepEqual(
      Object.keys(ev.doc).filter((k) => k.startsWith('_')),
      [],
    );
    assert.equal(ev.doc.method, 'GET');
  });

  test('the source document is not modified', () => {
    const c = change({ src_ip: '::ffff:1.2.3.4', src_port: '1234' });
    const before = structuredClone(c);
    toEvent(c, 'A', 0, rules());
    assert.deepEqual(c, before);
  });
});

describe('sharding (several correlators split the connections)', () => {
  test('keyHash is 32-bit FNV-1a: the same in every instance and version', () => {
    // Published FNV-1a test vectors.
    assert.equal(keyHash(''), 0x811c9dc5);
    assert.equal(keyHash('a'), 0xe40c292c);
    assert.equal(keyHash('foobar'), 0xbf9cf968);
  });

  test('each connection is taken by exactly one of 3 shards, and both sides of it by the same one', () => {
    const ips = ['203.0.113.7', '198.51.100.1', '::ffff:192.0.2.9', '2001:db8::1', '2001:DB8:0:0::1'];
    const taken = new Map<number, number>();
    for (const ip of ips) {
      for (let port = 40000; port < 40040; port++) {
        const shardsOf = (side: 'A' | 'B') =>
          [0, 1, 2].filter((index) => !('skip' in toEvent(change({ src_ip: ip, src_port: port }), side, 0, rules({ shard: { index, count: 3 } }))));
        const a = shardsOf('A');
        assert.equal(a.length, 1, `${ip}:${port} taken by ${a.length} shards`);
        assert.deepEqual(shardsOf('B'), a, 'A and B of one connection on the same shard');
        taken.set(a[0]!, (taken.get(a[0]!) ?? 0) + 1);
      }
    }
    assert.equal(taken.size, 3, 'every shard gets some connections');
  });

  test('the other shards skip it as other_shard; one shard (count 1) takes everything', () => {
    const c = change();
    const mine = keyHash('203.0.113.7:52341') % 2;
    assert.deepEqual(toEvent(c, 'A', 0, rules({ shard: { index: 1 - mine, count: 2 } })), { skip: 'other_shard' });
    event(toEvent(c, 'A', 0, rules({ shard: { index: mine, count: 2 } })));
    event(toEvent(c, 'A', 0, rules({ shard: { index: 0, count: 1 } })));
  });
});

describe('toEvent: the revision of a changed document', () => {
  test('kept only above the first (an admin edited it); CouchDB fields stay out of the event', () => {
    assert.equal(event(toEvent({ id: 'd1', doc: { ...doc(), _rev: '1-abc' } }, 'A', 0, rules())).rev, undefined);
    const ev = event(toEvent({ id: 'd1', doc: { ...doc(), _rev: '2-def' } }, 'A', 0, rules()));
    assert.equal(ev.rev, '2-def');
    assert.equal('_rev' in ev.doc, false);
  });
});
