// Two `couchlog correlator` processes with the same checkpoint (a second
// host started by mistake, a scaled-up compose service, a standby on
// purpose), on real servers:
//  - the second waits on standby (GET /health: 200 "standby", naming the
//    holder) and reads nothing; a clean stop of the first hands over at once;
//  - a holder frozen (SIGSTOP) longer than the lease's ttl is replaced, and
//    when it wakes it stands down without writing its checkpoint;
//  - after kill -9 on this host, the standby sees the holder's process is
//    gone and takes over at its next look;
// and throughout, every request posted is correlated exactly once.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { freePort, http, processEnv, startStack, type Stack } from '../helpers/stack.js';
import { couchDocs, metrics, postBulk, until } from '../helpers/correlator-outputs.js';
import { ROOT } from '../helpers/repo-root.js';

const CLI = join(ROOT, 'dist/scripts/couchlog.js');
const TTL = 2000;

let stack: Stack;
let dir: string;
let env: NodeJS.ProcessEnv;
const ports: number[] = [];
const files: string[] = [];
const children: ChildProcess[] = [];
const output = new Map<ChildProcess, string>();

before(async () => {
  stack = await startStack();
  dir = mkdtempSync(join(tmpdir(), 'couchlog-lease-'));
  for (const i of [0, 1]) {
    ports[i] = await freePort();
    files[i] = join(dir, `couchlog-${i}.yml`);
    writeFileSync(
      files[i]!,
      stringifyYaml({
        log_level: 'info',
        clickhouse: { enabled: false },
        correlator: {
          inputs: { batch_size: 100, poll_interval_ms: 50 },
          reorder_slack_ms: 200,
          orphan_policy: { apache_emit_delay_ms: 300 },
          outputs: { couchdb: { flush_interval_ms: 30 } },
          checkpoint_interval_ms: 100,
          lease_ttl_ms: TTL,
          metrics: { port: ports[i] },
        },
      }),
    );
  }
  env = { ...processEnv(stack, join(dir, 'data')), COUCHLOG_LOG_FORMAT: 'json' };
});
after(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await stack?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** `couchlog correlator` with config file i (its own metrics port). */
function spawnCorrelator(i: number): ChildProcess {
  const child = spawn(process.execPath, [CLI, '--config', files[i]!, 'correlator'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  output.set(child, '');
  const keep = (d: Buffer) => output.set(child, (output.get(child)! + d.toString()).slice(-200_000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  children.push(child);
  return child;
}

interface Health {
  status: string;
  lease?: { held: boolean; holder: string | null };
}

async function health(i: number): Promise<Health | null> {
  try {
    const res = await http(`http://127.0.0.1:${ports[i]}/health`);
    return res.json as Health;
  } catch {
    return null;
  }
}

/** Until instance i's /health says `status`. */
async function untilStatus(i: number, child: ChildProcess, status: string, timeoutMs = 60_000): Promise<Health> {
  return until(
    `instance ${i} to be ${status}`,
    async () => {
      if (child.exitCode !== null) throw new Error(`instance ${i} exited with ${child.exitCode}:\n${output.get(child)!.slice(-3000)}`);
      const h = await health(i);
      return h?.status === status ? h : null;
    },
    timeoutMs,
    50,
  );
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));

let port = 50_000;
const aIds: string[] = [];

/** n connections, each a B and an A, posted now; waits until log_correlated holds every A posted so far, correlated. */
async function postAndCorrelate(n: number): Promise<void> {
  const t = Date.now();
  const conns = Array.from({ length: n }, (_, i) => ({ src_ip: '198.51.100.40', src_port: port++, dst_ip: '192.168.1.10', timestamp: t + i }));
  await postBulk(
    stack,
    'network',
    conns.map((c) => ({ ...c, dst_port: 443, ja4: 't13d1516h2_8daaf6152771_b0da82dd1658' })),
  );
  aIds.push(
    ...(await postBulk(
      stack,
      'http',
      conns.map((c) => ({ ...c, timestamp: c.timestamp + 5, dst_port: 8080, method: 'GET', path: '/' })),
    )),
  );
  await until(
    `${aIds.length} requests correlated`,
    async () => {
      const docs = await couchDocs(stack, 'log_correlated');
      return aIds.every((id) => docs.get(`A-${id}`)?.correlated === true) ? docs : null;
    },
    60_000,
    200,
  );
}

/** The saved feed positions (PouchDB Server's sequences are numbers; CouchDB 3's are "N-opaque", N counting the changes). */
async function checkpointPositions(): Promise<{ A: number; B: number }> {
  const res = await http(`${stack.couchUrl}/couchlog_state_correlated/_local/correlator`, { headers: { authorization: stack.auth.admin } });
  assert.equal(res.status, 200, res.text);
  const n = (since: string) => Number(String(since).split('-')[0]);
  const feeds = res.json.feeds as Record<'A' | 'B', { since: string }>;
  return { A: n(feeds.A.since), B: n(feeds.B.since) };
}

const leaseDoc = async () =>
  (await http(`${stack.couchUrl}/couchlog_state_correlated/_local/lease-correlator`, { headers: { authorization: stack.auth.admin } })).json;

describe('one running correlator per checkpoint', () => {
  let first: ChildProcess;
  let second: ChildProcess;

  test('a second instance waits on standby and reads nothing; a clean stop of the first hands over at once', async () => {
    first = spawnCorrelator(0);
    await untilStatus(0, first, 'ok');
    second = spawnCorrelator(1);
    const standby = await untilStatus(1, second, 'standby');
    assert.match(standby.lease!.holder!, new RegExp(`:${first.pid}:`), 'the standby names the holder');
    await postAndCorrelate(30);
    const m = await metrics(`http://127.0.0.1:${ports[1]}`);
    assert.equal(m.get('couchlog_correlator_lease_held'), 0);
    assert.equal(m.get('couchlog_correlator_events_in_total{side="A"}') ?? 0, 0, 'the standby read nothing');
    assert.equal((await metrics(`http://127.0.0.1:${ports[0]}`)).get('couchlog_correlator_lease_held'), 1);

    first.kill('SIGTERM');
    assert.equal(await exited(first), 0);
    const holder = (await leaseDoc()).holder as string | null;
    assert.ok(holder === null || new RegExp(`:${second.pid}:`).test(holder), `released on a clean stop (or taken by the standby already): ${holder}`);
    assert.match(output.get(first)!, /"msg":"correlator running"/);
    // Released: taken at the standby's next look (ttl/3), well before a ttl.
    const started = Date.now();
    await untilStatus(1, second, 'ok');
    assert.ok(Date.now() - started < TTL + 1500, `took ${Date.now() - started} ms`);
    await postAndCorrelate(30);
  });

  test('a holder frozen longer than the ttl is replaced; woken, it stands down and writes no checkpoint', async () => {
    first = spawnCorrelator(0);
    await untilStatus(0, first, 'standby');
    process.kill(second.pid!, 'SIGSTOP');
    try {
      await untilStatus(0, first, 'ok');
      assert.match(output.get(first)!, /took over the lease from .*not renewed for/);
      await postAndCorrelate(30);
      const before = await checkpointPositions();
      process.kill(second.pid!, 'SIGCONT');
      await untilStatus(1, second, 'standby');
      assert.match(output.get(second)!, /lost the lease/);
      assert.equal((await metrics(`http://127.0.0.1:${ports[1]}`)).get('couchlog_correlator_lease_lost_total'), 1);
      assert.match((await leaseDoc()).holder as string, new RegExp(`:${first.pid}:`), 'the lease stays with the new holder');
      // Had the woken one saved its state, the feed positions would have gone back to where it froze.
      const after = await checkpointPositions();
      assert.ok(after.A >= before.A && after.B >= before.B, `checkpoint went back: ${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
      await postAndCorrelate(30);
    } finally {
      if (second.signalCode === null && second.exitCode === null) process.kill(second.pid!, 'SIGCONT');
    }
  });

  test('kill -9 of the holder: the standby on this host sees its process gone and takes over at its next look', async () => {
    first.kill('SIGKILL');
    await exited(first);
    await untilStatus(1, second, 'ok');
    assert.match(output.get(second)!, new RegExp(`took over the lease from [^"]*:${first.pid}:[^"]* \\(its process is gone\\)`));
    await postAndCorrelate(30);
    // Every request once: no record of another id, none missing.
    const docs = await couchDocs(stack, 'log_correlated');
    assert.equal([...docs.keys()].filter((id) => id.startsWith('A-')).length, aIds.length);
    second.kill('SIGTERM');
    assert.equal(await exited(second), 0);
  });
});
