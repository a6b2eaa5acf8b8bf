// Unit tests of the HEC pieces: envelope splitting and mapping to
// documents, HEC time, tokens (header forms, lookup, secrets from the
// environment and secrets.env, configuration errors) and the ack registry.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../../lib/config/load.js';
import { writeSecretsFile } from '../../../../lib/config/secrets.js';
import { ConfigError } from '../../../../lib/errors.js';
import { AckRegistry, type AckOptions, type ForgottenReason } from '../../../../server/hec/acks.js';
import { envelopeToDoc, hecTime, rawToDocs, splitEnvelopes } from '../../../../server/hec/envelope.js';
import { HecError } from '../../../../server/hec/errors.js';
import { presentedToken, tokenTable, TokenTable, type WriteToken } from '../../../../server/hec/tokens.js';
import { envelopeOf, envelopeText, eventTimeSeconds } from '../../../../forward/forwarder.js';

const rules = { maxDepth: 32, maxDocs: 10_000, maxDocBytes: 8_000_000 };
const token: WriteToken = { name: 't', apps: ['web', 'audit'], ack: false };

function hecCode(fn: () => unknown): [number, number | undefined] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof HecError, String(err));
    return [err.hecCode, err.eventNumber];
  }
  assert.fail('no error');
}

describe('splitEnvelopes', () => {
  test('concatenated, newline- and space-separated objects', () => {
    assert.deepEqual(splitEnvelopes('{"a":1}{"b":2}\n{"c":{"d":[1,{"e":"}{"}]}}\r\n  {"f":"\\"}"}\n', 64), [
      { a: 1 },
      { b: 2 },
      { c: { d: [1, { e: '}{' }] } },
      { f: '"}' },
    ]);
  });
  test('errors name the event (from 0)', () => {
    assert.deepEqual(
      hecCode(() => splitEnvelopes('{"a":1}{"b":}', 64)),
      [6, 1],
    );
    assert.deepEqual(
      hecCode(() => splitEnvelopes('{"a":1} x', 64)),
      [6, 1],
    );
    assert.deepEqual(
      hecCode(() => splitEnvelopes('{"a":1}{"b":2', 64)),
      [6, 1],
    );
    assert.deepEqual(
      hecCode(() => splitEnvelopes('"text"', 64)),
      [6, 0],
    );
    assert.deepEqual(
      hecCode(() => splitEnvelopes('  \n', 64)),
      [5, undefined],
    );
  });
});

describe('nesting and error messages (found by a black-box test: a time nested 250,000 deep answered 500)', () => {
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
  test('an event may be maxDepth deep, its envelope one more; deeper is code 6 naming the event, checked before parsing', () => {
    assert.equal(splitEnvelopes(`{"event":${deep(4)}}`, 4).length, 1);
    assert.deepEqual(
      hecCode(() => splitEnvelopes(`{"event":1}{"event":${deep(5)}}`, 4)),
      [6, 1],
    );
    for (const member of ['time', 'index', 'fields', 'host']) {
      assert.deepEqual(
        hecCode(() => splitEnvelopes(`{"event":1,"${member}":${deep(250_000)}}`, 64)),
        [6, 0],
        member,
      );
    }
  });
  test('a bad time or index is described, not copied whole into the message', () => {
    const token = { name: 't', apps: ['web'], ack: false } as unknown as WriteToken;
    const long = 'x'.repeat(10_000);
    for (const [value, want] of [
      [[[[1]]], /an array/],
      [{ a: 1 }, /an object/],
      [long, /"x{64}"…$/],
      [true, /got true$/],
    ] as const) {
      try {
        hecTime(value);
        assert.fail('no error');
      } catch (err) {
        assert.match((err as HecError).detail!, want);
        assert.ok((err as HecError).detail!.length < 200);
      }
    }
    try {
      envelopeToDoc({ event: 1, index: long }, 0, token, { maxDepth: 64, maxDocs: 10, maxDocBytes: 8_000_000 });
      assert.fail('no error');
    } catch (err) {
      assert.equal((err as HecError).hecCode, 7);
      assert.ok((err as HecError).detail!.length < 200, (err as HecError).detail!.slice(0, 300));
    }
  });
});

describe('envelopeToDoc', () => {
  test('object events are the document; metadata and fields added where absent', () => {
    const { app, doc } = envelopeToDoc(
      {
        time: 1721187223.5124,
        host: 'h',
        source: 's',
        sourcetype: 'st',
        index: 'audit',
        fields: { env: 'prod', tags: ['a'], host: 'ignored' },
        event: { msg: 'x', source: 'own' },
      },
      0,
      token,
      rules,
    );
    assert.equal(app, 'audit');
    assert.deepEqual(doc, { msg: 'x', source: 'own', time: '2024-07-17T03:33:43.512Z', host: 'h', sourcetype: 'st', env: 'prod', tags: ['a'] });
  });
  test('other events become message', () => {
    assert.deepEqual(envelopeToDoc({ event: 'line' }, 0, token, rules), { app: 'web', doc: { message: 'line' } });
    assert.deepEqual(envelopeToDoc({ event: 42 }, 0, token, rules).doc, { message: 42 });
    assert.deepEqual(envelopeToDoc({ event: [1, 2] }, 0, token, rules).doc, { message: [1, 2] });
  });
  test('codes 6, 7, 12, 13, 15 with the event number', () => {
    assert.deepEqual(
      hecCode(() => envelopeToDoc({ host: 'h' }, 3, token, rules)),
      [12, 3],
    );
    assert.deepEqual(
      hecCode(() => envelopeToDoc({ event: null }, 3, token, rules)),
      [12, 3],
    );
    assert.deepEqual(
      hecCode(() => envelopeToDoc({ event: '  ' }, 3, token, rules)),
      [13, 3],
    );
    assert.deepEqual(
      hecCode(() => envelopeToDoc({ event: 'x', index: 'other' }, 3, token, rules)),
      [7, 3],
    );
    assert.deepEqual(
      hecCode(() => envelopeToDoc({ event: 'x', fields: { a: { b: 1 } } }, 3, token, rules)),
      [15, 3],
    );
    assert.deepEqual(
      hecCode(() => envelopeToDoc({ event: 'x', host: 5 }, 3, token, rules)),
      [6, 3],
    );
    assert.deepEqual(
      hecCode(() => envelopeToDoc({ event: { _id: '_design/x' } }, 3, token, rules)),
      [6, 3],
    );
    assert.deepEqual(envelopeToDoc({ event: { _id: 'own-id' } }, 3, token, rules).doc, { _id: 'own-id' }, 'a client-chosen id is kept');
    assert.deepEqual(
      hecCode(() => envelopeToDoc({ event: { _deleted: true } }, 3, token, rules)),
      [6, 3],
    );
    assert.deepEqual(
      hecCode(() => envelopeToDoc([], 3, token, rules)),
      [6, 3],
    );
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = { d: deep };
    assert.deepEqual(
      hecCode(() => envelopeToDoc({ event: deep }, 3, token, rules)),
      [6, 3],
    );
  });
  test('raw lines', () => {
    const docs = rawToDocs('a\r\n\nb\n', token, rules, { host: 'h', index: 'log_audit', time: '1700000000' });
    assert.deepEqual(docs, [
      { app: 'audit', doc: { message: 'a', time: '2023-11-14T22:13:20.000Z', host: 'h' } },
      { app: 'audit', doc: { message: 'b', time: '2023-11-14T22:13:20.000Z', host: 'h' } },
    ]);
  });
});

describe('hecTime', () => {
  test('epoch seconds, numbers or numeric strings, to RFC 3339 ms', () => {
    assert.equal(hecTime(0), '1970-01-01T00:00:00.000Z');
    assert.equal(hecTime('1721187223.512'), '2024-07-17T03:33:43.512Z');
    assert.equal(hecTime(undefined), undefined);
    for (const bad of ['now', -1, 1e20, '1e5', true, {}])
      assert.deepEqual(
        hecCode(() => hecTime(bad, 1)),
        [6, 1],
        String(bad),
      );
  });
});

describe('tokens', () => {
  test('header forms', () => {
    assert.deepEqual(presentedToken(undefined), { kind: 'none' });
    assert.deepEqual(presentedToken('Splunk abc'), { kind: 'token', secret: 'abc', scheme: 'splunk' });
    assert.deepEqual(presentedToken('splunk abc'), { kind: 'token', secret: 'abc', scheme: 'splunk' });
    assert.deepEqual(presentedToken('Bearer abc'), { kind: 'token', secret: 'abc', scheme: 'bearer' });
    assert.deepEqual(presentedToken(`Basic ${Buffer.from('x:abc:d').toString('base64')}`), { kind: 'token', secret: 'abc:d', scheme: 'basic' });
    assert.deepEqual(presentedToken('Splunk'), { kind: 'malformed' });
    assert.deepEqual(presentedToken('Digest x'), { kind: 'malformed' });
    assert.deepEqual(presentedToken(`Basic ${Buffer.from('nocolon').toString('base64')}`), { kind: 'malformed' });
  });
  test('lookup by secret', () => {
    const table = new TokenTable([{ name: 'a', apps: ['web'], ack: true, secret: 'secret-a-0123456789' }]);
    assert.deepEqual(table.find('secret-a-0123456789'), { name: 'a', apps: ['web'], ack: true });
    assert.equal(table.find('secret-a-012345678'), null);
    assert.equal(table.find(''), null);
  });

  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const load = (yaml: string, env: Record<string, string> = {}, secrets?: Record<string, string>) => {
    const cwd = mkdtempSync(join(tmpdir(), 'couchlog-hec-test-'));
    dirs.push(cwd);
    writeFileSync(join(cwd, 'couchlog.yml'), yaml);
    if (secrets) writeSecretsFile(join(cwd, 'data'), secrets);
    return loadConfig({ env, cwd }).config;
  };

  test('secrets from the environment, else secrets.env; one name under several apps is one token', () => {
    const yaml = 'apps:\n  web:\n    tokens: [{name: vector}, {name: lib, ack: true}]\n  audit:\n    tokens: [{name: vector}]\n';
    const config = load(
      yaml,
      { COUCHLOG_TOKEN_VECTOR: 'vector-secret-from-env' },
      { COUCHLOG_TOKEN_LIB: 'lib-secret-from-file', COUCHLOG_TOKEN_VECTOR: 'not-this-one-0000' },
    );
    assert.equal(config.apps.web!.tokens[0]!.secret, 'vector-secret-from-env');
    assert.equal(config.apps.web!.tokens[1]!.secret, 'lib-secret-from-file');
    const table = tokenTable(config);
    assert.deepEqual(table.find('vector-secret-from-env'), { name: 'vector', apps: ['web', 'audit'], ack: false });
    assert.deepEqual(table.find('lib-secret-from-file'), { name: 'lib', apps: ['web'], ack: true });
    assert.equal(table.find('not-this-one-0000'), null);
  });

  test('configuration errors: no secret, short secret, bad name, two names one secret', () => {
    const missing = load('apps:\n  web:\n    tokens: [{name: vector}]\n');
    assert.throws(
      () => tokenTable(missing),
      (err: unknown) => err instanceof ConfigError && /COUCHLOG_TOKEN_VECTOR/.test(err.message),
    );
    assert.throws(() => load('apps:\n  web:\n    tokens: [{name: v, secret: short}]\n'), ConfigError);
    // The same rule for a secret from the environment or secrets.env.
    assert.throws(
      () => load('apps:\n  web:\n    tokens: [{name: vector}]\n', { COUCHLOG_TOKEN_VECTOR: 'short' }),
      (err: unknown) =>
        err instanceof ConfigError && /COUCHLOG_TOKEN_VECTOR must be at least 16 characters/.test(err.message) && !err.message.includes('short"'),
    );
    assert.throws(() => load('apps:\n  web:\n    tokens: [{name: vector}]\n', {}, { COUCHLOG_TOKEN_VECTOR: '123456789012345' }), ConfigError);
    assert.throws(() => load('apps:\n  web:\n    tokens: [{name: Vector-1, secret: long-enough-secret-00}]\n'), ConfigError);
    const same = load('apps:\n  web:\n    tokens: [{name: a, secret: same-secret-000000000}, {name: b, secret: same-secret-000000000}]\n');
    assert.throws(() => tokenTable(same), ConfigError);
    assert.throws(
      () => load('apps:\n  web:\n    tokens: [{name: a, secret: one-secret-000000000}]\n  audit:\n    tokens: [{name: a, secret: two-secret-000000000}]\n'),
      ConfigError,
    );
  });
});

/** A registry on a clock the test moves, counting what it forgets by reason. */
function ackRegistry(opts: Partial<Omit<AckOptions, 'now' | 'onForgotten'>> = {}) {
  const clock = { ms: 0 };
  const forgotten: Partial<Record<ForgottenReason, number>> = {};
  const acks = new AckRegistry({
    maxChannels: 10,
    maxPending: 10,
    maxPendingPerToken: 1000,
    idleMs: 60_000,
    ...opts,
    now: () => clock.ms,
    onForgotten: (reason, n) => (forgotten[reason] = (forgotten[reason] ?? 0) + n),
  });
  return { acks, clock, forgotten };
}

describe('AckRegistry', () => {
  test('per token and channel; true once; bounded', () => {
    const { acks, forgotten } = ackRegistry({ maxChannels: 2, maxPending: 3 });
    assert.equal(acks.issue('t', 'c1'), 0);
    assert.equal(acks.issue('t', 'c1'), 1);
    assert.equal(acks.issue('u', 'c1'), 0, 'another token, another channel');
    assert.deepEqual(acks.query('t', 'c1', [0, 1, 2]), { '0': true, '1': true, '2': false });
    assert.deepEqual(acks.query('t', 'c1', [0]), { '0': false });
    for (let i = 0; i < 5; i++) acks.issue('t', 'c1');
    assert.deepEqual(acks.query('t', 'c1', [2, 3, 4, 5, 6]), { '2': false, '3': false, '4': true, '5': true, '6': true }, 'oldest forgotten beyond maxPending');
    assert.deepEqual(forgotten, { channel_limit: 2 });
    acks.issue('t', 'c2');
    acks.issue('t', 'c3');
    assert.equal(acks.channelCount, 3, "t's two most recent, and u's one");
    assert.deepEqual(acks.query('t', 'c1', [7]), { '7': false }, "t's least recently used channel forgotten");
  });
  test("one token's new channels never make another token's acks forgotten (found by a black-box test)", () => {
    const { acks } = ackRegistry({ maxChannels: 100, maxPending: 10, maxPendingPerToken: 100_000 });
    const victim = acks.issue('lib', 'X');
    for (let i = 0; i < 10_001; i++) acks.issue('noisy', `c${i}`);
    assert.deepEqual(acks.query('lib', 'X', [victim]), { [victim]: true });
    assert.equal(acks.channelCount, 101, 'bounded per token');
  });
  test('a channel forgotten and used again never hands out an id its client may still hold (it answered true for other requests)', () => {
    const { acks, forgotten } = ackRegistry({ maxChannels: 2 });
    const held = [acks.issue('t', 'A'), acks.issue('t', 'A')];
    acks.issue('t', 'B');
    acks.issue('t', 'C'); // A, least recently used, is forgotten with both its acks
    assert.deepEqual(forgotten, { channel_evicted: 2 });
    const fresh = acks.issue('t', 'A');
    assert.ok(!held.includes(fresh), `a new id (${fresh}), not one of ${held.join(', ')}`);
    assert.deepEqual(acks.query('t', 'A', [...held, fresh]), { [held[0]!]: false, [held[1]!]: false, [fresh]: true });
  });
  test('ackIds only increase per token, whichever channel and however channels come and go', () => {
    const { acks, clock } = ackRegistry({ maxChannels: 3, idleMs: 1000 });
    const seen: number[] = [];
    for (let i = 0; i < 200; i++) {
      clock.ms += i % 7 === 0 ? 5000 : 10; // now and then every channel goes idle
      seen.push(acks.issue('t', `c${i % 5}`));
    }
    assert.deepEqual(
      seen,
      seen.map((_, i) => i),
    );
  });
  test("a token's acks over all its channels are bounded: its oldest forgotten first, and counted", () => {
    const { acks, forgotten } = ackRegistry({ maxChannels: 100, maxPending: 100, maxPendingPerToken: 5 });
    const ids = Array.from({ length: 8 }, (_, i) => acks.issue('t', `c${i % 4}`));
    assert.equal(acks.pendingCount, 5);
    assert.deepEqual(forgotten, { token_limit: 3 });
    assert.deepEqual(acks.query('t', 'c0', [ids[0]!, ids[4]!]), { [ids[0]!]: false, [ids[4]!]: true }, 'the oldest (0, 1, 2) went, 4 stayed');
    assert.deepEqual(acks.query('t', 'c3', [ids[3]!, ids[7]!]), { [ids[3]!]: true, [ids[7]!]: true });
    assert.equal(acks.pendingCount, 2);
    acks.issue('u', 'c0');
    assert.equal(acks.pendingCount, 3, "another token's acks are its own");
  });
  test('a channel neither sent on nor asked about for idleMs is forgotten with its acks; asking keeps it', () => {
    const { acks, clock, forgotten } = ackRegistry({ idleMs: 60_000 });
    const idle = acks.issue('t', 'idle');
    const polled = acks.issue('t', 'polled');
    clock.ms = 50_000;
    assert.deepEqual(acks.query('t', 'polled', [999]), { '999': false }, 'asking about any id counts as use');
    clock.ms = 60_001;
    acks.sweep();
    assert.equal(acks.channelCount, 1);
    assert.deepEqual(forgotten, { channel_idle: 1 });
    assert.deepEqual(acks.query('t', 'idle', [idle]), { [idle]: false }, 'expired: false, as a forgotten ack always is');
    assert.deepEqual(acks.query('t', 'polled', [polled]), { [polled]: true });
    assert.equal(acks.issue('t', 'idle') > polled, true, 'the expired channel used again goes on with new ids');
  });
  test('idle channels are also let go of when their token is used, without a sweep', () => {
    const { acks, clock } = ackRegistry({ idleMs: 1000 });
    acks.issue('t', 'old');
    clock.ms = 1001;
    acks.issue('t', 'new');
    assert.equal(acks.channelCount, 1);
    assert.equal(acks.pendingCount, 1);
  });
});

describe('forward: envelopeOf and eventTimeSeconds', () => {
  const m = { index: null, indexField: null, source: null, sourcetype: '_json', sourcetypeField: null, hostField: 'host' };
  test('the document (minus _rev) is the event; time, host, source, sourcetype, index', () => {
    const doc = { _id: 'x', _rev: '1-a', host: 'web-1', kind: 'nginx', idx: 'audit', time: '2024-07-17T03:33:43.512Z', n: 1 };
    assert.deepEqual(envelopeOf(doc, 'web', m), {
      time: 1721187223.512,
      host: 'web-1',
      source: 'couchlog:log_web',
      sourcetype: '_json',
      event: { _id: 'x', host: 'web-1', kind: 'nginx', idx: 'audit', time: '2024-07-17T03:33:43.512Z', n: 1 },
    });
    const mapped = envelopeOf(doc, 'web', { ...m, index: 'main', indexField: 'idx', source: 'src', sourcetypeField: 'kind', hostField: null });
    assert.deepEqual([mapped.index, mapped.source, mapped.sourcetype, mapped.host], ['audit', 'src', 'nginx', undefined]);
    assert.equal(envelopeOf({ _id: 'y' }, 'web', { ...m, index: 'main', indexField: 'idx' }).index, 'main');
  });
  test('envelopeText is envelopeOf as JSON', () => {
    const maps = [m, { ...m, index: 'main', indexField: 'idx', source: 'src', sourcetypeField: 'kind', hostField: null }];
    const docs = [
      { _id: 'x', _rev: '1-a', host: 'web-1', kind: 'nginx', idx: 'audit', time: '2024-07-17T03:33:43.512Z', n: 1, s: 'quote " and \\ and \u2028' },
      { _id: 'y', timestamp: 1721187223512345, nested: { a: [1, { b: null }] } },
      { _id: 'z' },
    ];
    for (const map of maps) {
      for (const d of docs) assert.deepEqual(JSON.parse(envelopeText(structuredClone(d), 'web', map)), envelopeOf(d, 'web', map));
    }
  });
  test('event time: timestamp by magnitude, else time, else received_at', () => {
    assert.equal(eventTimeSeconds({ timestamp: 1721187223 }), 1721187223);
    assert.equal(eventTimeSeconds({ timestamp: 1721187223512 }), 1721187223.512);
    assert.equal(eventTimeSeconds({ timestamp: 1721187223512000 }), 1721187223.512);
    assert.equal(eventTimeSeconds({ timestamp: 1721187223512000000 }), 1721187223.512);
    assert.equal(eventTimeSeconds({ time: 'nope', received_at: '2024-07-17T03:33:43.512Z' }), 1721187223.512);
    assert.equal(eventTimeSeconds({}), undefined);
  });
  test('event times out of what a receiver takes (1970 to 9999) fall back to the next one (found by a black-box test)', () => {
    const received_at = '2024-07-17T03:33:43.512Z';
    for (const doc of [
      { timestamp: 1e30 },
      { time: '-000100-01-01T00:00:00Z' },
      { time: '+275760-09-13T00:00:00.000Z' },
      { timestamp: 1e30, time: '+275760-09-13T00:00:00Z' },
    ]) {
      assert.equal(eventTimeSeconds({ ...doc, received_at }), 1721187223.512, JSON.stringify(doc));
    }
    assert.equal(eventTimeSeconds({ time: '9999-12-31T23:59:59.999Z' }), 253402300799.999);
    assert.equal(eventTimeSeconds({ time: '1969-12-31T23:59:59Z' }), undefined);
  });
  test('a document stored under a tagged id goes out with the id it was sent with (a couchlog receiver refuses tagged ids)', () => {
    const doc = { _id: 'fixed-1~389115a0b1c2d3e4f5a6b7c8', v: 'B' };
    assert.equal((envelopeOf(doc, 'web', m).event as { _id: string })._id, 'fixed-1');
    assert.equal(JSON.parse(envelopeText(structuredClone(doc), 'web', m)).event._id, 'fixed-1');
    assert.equal((envelopeOf({ _id: 'plain~abc' }, 'web', m).event as { _id: string })._id, 'plain~abc', 'only the ingress tag is taken off');
  });
});
