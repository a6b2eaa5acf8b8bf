// The instance lease (correlator/feed/instance-lease.ts) against a scripted
// server that keeps _local documents with CouchDB's revision checks, on one
// shared fake clock. Properties over seeded random schedules of several
// instances that look, renew, freeze, crash, lose the network and release:
//  - safety: whenever an instance takes the lease, no other one may still
//    write (mayWrite) at that moment;
//  - liveness: once the holder is gone (crashed or released) and a standby
//    keeps looking, one takes over within ttl plus two looks;
// and the cases a person would try: a clean stop hands over at once, a
// holder on this host whose process is gone is taken over at once, a lease
// of an older epoch of the state database holds nobody back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { holderGone, InstanceLease } from '../../../../correlator/feed/instance-lease.js';
import type { CouchHttp } from '../../../../lib/couch/http.js';
import { createLogger } from '../../../../lib/logger.js';
import { mulberry32 } from '../../../../bench/prng.js';

const DB = 'couchlog_state_correlated';
const TTL = 3000;

/** _local documents with revisions, as CouchDB keeps them; `down` makes every request fail as a network error would. */
class ScriptedCouch {
  docs = new Map<string, { rev: number; body: Record<string, unknown> }>([[`/${DB}/_local/epoch`, { rev: 1, body: { epoch: 'e1' } }]]);
  down = new Set<string>();
  client(who: string): CouchHttp {
    return {
      request: async (method: string, path: string, req: { body?: string } = {}) => {
        if (this.down.has(who)) throw new Error('connect ECONNREFUSED');
        const cur = this.docs.get(path);
        if (method === 'GET') return cur ? { status: 200, body: { ...cur.body, _rev: `0-${cur.rev}` } } : { status: 404, body: { error: 'not_found' } };
        const { _rev, ...body } = JSON.parse(req.body ?? '{}') as Record<string, unknown>;
        if ((cur === undefined && _rev !== undefined) || (cur !== undefined && _rev !== `0-${cur.rev}`)) return { status: 409, body: { error: 'conflict' } };
        const rev = (cur?.rev ?? 0) + 1;
        this.docs.set(path, { rev, body });
        return { status: 201, body: { ok: true, rev: `0-${rev}` } };
      },
    } as unknown as CouchHttp;
  }
}

const log = createLogger('silent');

function instance(couch: ScriptedCouch, name: string, clock: { t: number }, alive: (pid: number) => boolean = () => true): InstanceLease {
  return new InstanceLease(couch.client(name), DB, 'correlator', {}, { ttlMs: TTL, holder: name, now: () => clock.t, alive, log });
}

/**
 * One seeded schedule: four instances on one clock act in turn, each at its
 * own pace. With `faults`, networks fail and come back and holders freeze.
 * Checks safety at every takeover, and (without faults) how soon a gone
 * holder is replaced.
 */
async function simulate(seed: number, faults: boolean): Promise<void> {
  const rnd = mulberry32(seed);
  const clock = { t: 0 };
  const couch = new ScriptedCouch();
  const names = ['a', 'b', 'c', 'd'];
  const leases = names.map((n) => instance(couch, n, clock));
  /** When each instance next acts; Infinity: crashed. */
  const next = leases.map(() => rnd() * 100);
  /** Until when an instance that released the lease stays away. */
  const away = leases.map(() => 0);
  let goneSince: number | null = null;
  for (let step = 0; step < 400; step++) {
    const i = next.indexOf(Math.min(...next));
    if (!Number.isFinite(next[i]!)) return;
    clock.t = next[i]!;
    const me = leases[i]!;
    const name = names[i]!;
    if (faults && rnd() < 0.05) couch.down.add(name);
    else if (rnd() < 0.2) couch.down.delete(name);
    let wait = me.renewEveryMs;
    if (me.validUntil !== null) {
      const r = rnd();
      // Measured only when a standby is left to take over (not the one that left, coming back).
      const standbys = next.some((t, j) => j !== i && Number.isFinite(t) && away[j]! <= clock.t);
      if (r < 0.02) {
        next[i] = Infinity; // crash: it just stops
        if (standbys) goneSince ??= clock.t;
        continue;
      }
      if (r < 0.04) {
        await me.release().catch(() => {});
        if (standbys) goneSince ??= clock.t;
        next[i] = away[i] = clock.t + TTL * 2;
        continue;
      }
      if (faults && r < 0.1) wait = TTL * (0.5 + rnd() * 2); // frozen: its next renewal comes late
      if ((await me.renew()) !== null) me.reset();
    } else {
      const attempt = await me.tryAcquire().catch(() => ({ taken: false as const, retryInMs: me.renewEveryMs }));
      if (attempt.taken) {
        for (const [j, other] of leases.entries())
          if (j !== i) assert.ok(!other.mayWrite, `seed ${seed} at ${clock.t}: ${name} took the lease while ${names[j]} may still write`);
        // Standbys look every ttl/3 (±10 %): the last revision is seen within one look, then a ttl, then one more look.
        if (!faults && goneSince !== null)
          assert.ok(clock.t - goneSince <= TTL + 2.2 * me.renewEveryMs, `seed ${seed}: taken ${clock.t - goneSince} ms after the holder left`);
        goneSince = null;
      } else {
        wait = Math.max(1, attempt.retryInMs);
      }
    }
    next[i] = clock.t + wait * (0.9 + rnd() * 0.2);
  }
}

test('seeded schedules of four instances with failing networks and frozen holders: never two writers at once (300 seeds)', async () => {
  for (let seed = 1; seed <= 300; seed++) await simulate(seed, true);
});

test('seeded schedules without faults: a crashed or released holder is replaced within ttl plus two looks (300 seeds)', async () => {
  for (let seed = 1; seed <= 300; seed++) await simulate(seed, false);
});

test('a clean stop hands the lease over at the next look; a crash only after a whole ttl without renewal', async () => {
  const clock = { t: 0 };
  const couch = new ScriptedCouch();
  const [a, b] = [instance(couch, 'a', clock), instance(couch, 'b', clock)];
  assert.deepEqual(await a.tryAcquire(), { taken: true });
  assert.equal((await b.tryAcquire()).taken, false);
  assert.deepEqual(b.status(), { held: false, holder: 'a', unchangedForMs: 0 });
  clock.t = 500;
  await a.release();
  assert.equal(a.mayWrite, false);
  assert.deepEqual(await b.tryAcquire(), { taken: true }, 'released: taken at once');

  // b crashes: a sees the same revision for ttl, then takes it.
  clock.t = 1000;
  a.reset();
  assert.equal((await a.tryAcquire()).taken, false);
  clock.t = 500 + TTL - 1;
  assert.equal(b.mayWrite, true, 'b is within a ttl of taking it');
  clock.t = 500 + TTL;
  assert.equal(b.mayWrite, false, 'b may not write once a ttl has passed since its last renewal');
  clock.t = 1000 + TTL - 1;
  assert.equal((await a.tryAcquire()).taken, false, 'a ttl has not passed since a first saw that revision');
  clock.t = 1000 + TTL;
  assert.deepEqual(await a.tryAcquire(), { taken: true });
  assert.equal(await b.renew(), 'not renewed for 4 s (frozen, or CouchDB out of reach)');
});

test('a renewal that meets another holder loses the lease; a renewal keeps it', async () => {
  const clock = { t: 0 };
  const couch = new ScriptedCouch();
  const a = instance(couch, 'a', clock);
  await a.tryAcquire();
  clock.t = 1000;
  assert.equal(await a.renew(), null);
  assert.equal(a.validUntil, 1000 + TTL);
  // Someone rewrites the document (an operator, another instance).
  const path = `/${DB}/_local/lease-correlator`;
  couch.docs.set(path, { rev: 99, body: { holder: 'x', ttl_ms: TTL, epoch: 'e1' } });
  clock.t = 2000;
  assert.equal(await a.renew(), 'another correlator took it over');
  assert.equal(a.mayWrite, false);
  assert.equal(await a.confirm(), false);
});

test('a holder on this host whose process is gone, or a lease of an older epoch, is taken over at once', async () => {
  const clock = { t: 0 };
  const couch = new ScriptedCouch();
  const path = `/${DB}/_local/lease-correlator`;
  couch.docs.set(path, { rev: 1, body: { holder: 'host1:4242:abcd', ttl_ms: TTL, epoch: 'e1' } });
  const me = new InstanceLease(
    couch.client('me'),
    DB,
    'correlator',
    {},
    { ttlMs: TTL, holder: 'host1:777:ffff', now: () => clock.t, alive: (pid) => pid !== 4242, log },
  );
  assert.deepEqual(await me.tryAcquire(), { taken: true });

  couch.docs.set(path, { rev: 5, body: { holder: 'host2:4242:abcd', ttl_ms: TTL, epoch: 'e0' } });
  const other = new InstanceLease(couch.client('o'), DB, 'correlator', {}, { ttlMs: TTL, holder: 'host3:1:0', now: () => clock.t, log });
  assert.deepEqual(await other.tryAcquire(), { taken: true }, 'a lease written before setup secured the database again holds nobody back');

  assert.equal(
    holderGone('host1:4242:abcd', 'host1:4242:ffff', () => true),
    true,
    'this very pid: a previous life of a restarted container',
  );
  assert.equal(
    holderGone('host1:4242:abcd', 'host1:1:ffff', () => true),
    false,
    'alive on this host',
  );
  assert.equal(
    holderGone('host1:4242:abcd', 'host1:1:ffff', () => false),
    true,
  );
  assert.equal(
    holderGone('host2:4242:abcd', 'host1:1:ffff', () => false),
    false,
    'another host: only its ttl tells',
  );
  assert.equal(
    holderGone('test-a', 'host1:1:ffff', () => false),
    false,
  );
});

test('without the state database or its epoch, the first look is an error that says to run setup', async () => {
  const couch = new ScriptedCouch();
  couch.docs.clear();
  const a = instance(couch, 'a', { t: 0 });
  await assert.rejects(a.tryAcquire(), /run couchlog setup/);
});
