// Two correlators on one checkpoint (a second host with the same
// configuration, `docker compose up --scale correlator=2`): the one that
// started later sees the other's claim on the checkpoint and stops, saving
// nothing more; the first goes on. A new instance after the first has
// stopped (a restart, a failover) takes over at once.
// Runs on the embedded server and on Apache CouchDB 3.5 (one node, cluster),
// whose _local documents have no revision checks.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as stringifyYaml } from 'yaml';
import { accountsEnv, freePort, http, startStack, storedStatus, type Stack } from '../helpers/stack.js';
import { postBulk, until, type Doc } from '../helpers/correlator-outputs.js';
import { startCorrelator, type RunningCorrelator } from '../../correlator/service.js';
import { createLogger } from '../../lib/logger.js';
import { SecondInstanceError, startedLater, WriterClaim, type WriterIdentity } from '../../correlator/feed/writer-claim.js';
import { CouchHttp, type CouchRequest, type CouchResponse } from '../../lib/couch/http.js';
import { basicAuth } from '../../lib/couch/basic-auth.js';

const WAIT = 60_000;
const CLI = join(dirname(fileURLToPath(import.meta.url)), '../../scripts/couchlog.js');
const CORRELATOR = {
  orphan_policy: { apache_emit_delay_ms: 200, network_emit: true },
  inputs: { poll_interval_ms: 50 },
  outputs: { clickhouse: { enabled: false }, couchdb: { flush_interval_ms: 50 } },
  checkpoint_interval_ms: 100,
  metrics: { enabled: false },
};
const WRITER = 'couchlog_state_correlated/_local/correlator-writer';
const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

let stack: Stack;
const running: RunningCorrelator[] = [];
let port = 41_000;

before(async () => {
  stack = await startStack({ yaml: { correlator: CORRELATOR } });
});
after(async () => {
  for (const c of running) await c.stop();
  await stack?.stop();
});

async function start(): Promise<RunningCorrelator> {
  const c = await startCorrelator(stack.config, logger, { clickhouse: false });
  running.push(c);
  return c;
}

/** One new connection, both sides: its A's record id. */
async function connection(): Promise<string> {
  port += 1;
  const t = Date.now() - 5_000;
  const conn = { src_ip: '198.51.100.7', src_port: port, dst_ip: '192.0.2.1' };
  await postBulk(stack, 'network', [{ ...conn, dst_port: 443, ja4: `t13d_${port}`, timestamp: t } as Doc]);
  const [aId] = await postBulk(stack, 'http', [{ ...conn, dst_port: 80, path: `/${port}`, timestamp: t + 5 } as Doc]);
  return `A-${aId}`;
}

async function correlated(id: string): Promise<boolean> {
  const res = await http(`${stack.couchUrl}/log_correlated/${id}`, { headers: { authorization: stack.auth.admin } });
  return res.status === 200 && res.json.correlated === true;
}

/** The claim on the checkpoint, once there is one (written with the first checkpoint saved). */
async function writer(): Promise<WriterIdentity & { released: boolean }> {
  return until(
    'a claim on the checkpoint',
    async () => {
      const res = await http(`${stack.couchUrl}/${WRITER}`, { headers: { authorization: stack.auth.admin } });
      return res.status === 200 ? (res.json as unknown as WriterIdentity & { released: boolean }) : null;
    },
    WAIT,
  );
}

describe('two correlators on one checkpoint', () => {
  test('the later one stops (SecondInstanceError, nothing saved after), the first goes on and holds the claim', async () => {
    const first = await start();
    const a1 = await connection();
    await until('the first record', async () => ((await correlated(a1)) ? true : null), WAIT);
    const firstClaim = await writer();

    const second = await start();
    let stopped: SecondInstanceError | null = null;
    void second.superseded.then((err) => (stopped = err));
    // Traffic makes both save checkpoints, and so claim the checkpoint in turn.
    await until(
      'the second instance to stop',
      async () => {
        if (stopped) return true;
        await connection();
        return null;
      },
      WAIT,
      200,
    );
    const err = stopped as unknown as SecondInstanceError;
    assert.ok(err instanceof SecondInstanceError);
    assert.equal(err.code, 'CORRELATOR_SECOND_INSTANCE');
    assert.equal(err.other.instance, firstClaim.instance, 'the instance named is the first one');
    assert.match(err.message, /started before this one: stopping this one/);
    assert.equal(first.pipeline.superseded, null, 'the first one goes on');
    await second.stop();

    // The first one still decides and, at its next saves, holds the claim again.
    const a2 = await connection();
    await until('a record after the second stopped', async () => ((await correlated(a2)) ? true : null), WAIT);
    await until('the claim back with the first', async () => ((await writer()).instance === firstClaim.instance ? true : null), WAIT);
    // The stopped one saves nothing more: the claim stays with the first from here on.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await writer()).instance, firstClaim.instance);
    await first.stop();
  });

  test('a new instance after the first stopped (a restart, a failover) takes over at once and is not stopped', async () => {
    const before = await writer();
    const next = await start();
    let stopped = false;
    void next.superseded.then(() => (stopped = true));
    const a = await connection();
    await until('its record', async () => ((await correlated(a)) ? true : null), WAIT);
    const now = await until(
      'the claim taken',
      async () => {
        const w = await writer();
        return w.instance !== before.instance ? w : null;
      },
      WAIT,
    );
    assert.ok(startedLater(now, before), 'the claim names the instance started last');
    for (let i = 0; i < 5; i++) await connection();
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(stopped, false);
    assert.equal(next.pipeline.superseded, null);
    await next.stop();
  });
});

/** A couchlog command against this stack, in a folder of its own; its output is collected. */
function spawnCommand(dir: string, args: string[], yaml: Record<string, unknown>, env: Record<string, string> = {}) {
  writeFileSync(join(dir, 'couchlog.yml'), stringifyYaml(yaml));
  const child = spawn(process.execPath, [CLI, '--config', join(dir, 'couchlog.yml'), ...args], {
    env: { PATH: process.env.PATH, COUCHLOG_DATA: join(dir, 'data'), ...accountsEnv(stack), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const run = { output: '', code: undefined as number | null | undefined, child };
  child.stdout.on('data', (d) => (run.output += d));
  child.stderr.on('data', (d) => (run.output += d));
  child.on('exit', (code) => (run.code = code));
  return run;
}

describe('the commands, as the second instance', () => {
  let dir: string;
  let first: RunningCorrelator;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'couchlog-second-'));
    first = await start();
    const warm = await connection();
    await until('the first one running', async () => ((await correlated(warm)) ? true : null), WAIT);
  });
  after(async () => {
    await first?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('couchlog correlator exits 1 and says why, naming the other instance', async () => {
    const run = spawnCommand(dir, ['correlator'], { log_level: 'info', clickhouse: { enabled: false }, correlator: CORRELATOR });
    try {
      await until(
        'the command to exit',
        async () => {
          if (run.code !== undefined) return true;
          await connection();
          return null;
        },
        WAIT,
        200,
      );
    } finally {
      run.child.kill('SIGKILL');
    }
    assert.equal(run.code, 1, run.output.slice(-2000));
    assert.match(run.output, /CORRELATOR_SECOND_INSTANCE/);
    assert.match(run.output, new RegExp(`pid ${process.pid}, started`), 'the other instance is named');
    assert.equal(first.pipeline.superseded, null);
    const after = await connection();
    await until('the first one still deciding', async () => ((await correlated(after)) ? true : null), WAIT);
  });

  test('couchlog up stops only its correlator: intake goes on, its /health says why', async () => {
    const ingressPort = await freePort();
    const metricsPort = await freePort();
    const run = spawnCommand(
      dir,
      ['up'],
      { log_level: 'info', clickhouse: { enabled: false }, correlator: { ...CORRELATOR, metrics: { enabled: true, host: '127.0.0.1', port: metricsPort } } },
      { COUCHLOG_INGRESS_PORT: String(ingressPort) },
    );
    try {
      await until(
        'its correlator to stop',
        async () => {
          if (run.code !== undefined) assert.fail(`couchlog up exited ${run.code}: ${run.output.slice(-2000)}`);
          // Complete, not only begun: the port must outlive the stop (it used to close at its end).
          if (/the correlator has stopped; its \/health answers 503/.test(run.output)) return true;
          await connection();
          return null;
        },
        WAIT,
        200,
      );
      const res = await http(`http://127.0.0.1:${ingressPort}/log_http/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ src_ip: '198.51.100.8', src_port: 1, path: '/after' }),
      });
      assert.equal(storedStatus(res.status), 201, res.text);
      assert.equal(run.code, undefined, 'still running');
      // A monitor of the correlator's port sees the stop and its reason, not a closed port.
      const health = await http(`http://127.0.0.1:${metricsPort}/health`);
      assert.equal(health.status, 503, health.text);
      const body = health.json as { status: string; stopped?: { code: string; other: WriterIdentity } };
      assert.equal(body.status, 'stopped');
      assert.equal(body.stopped?.code, 'CORRELATOR_SECOND_INSTANCE');
      assert.equal(body.stopped?.other.pid, process.pid, 'the other instance is named');
      const metrics = await http(`http://127.0.0.1:${metricsPort}/metrics`);
      assert.match(metrics.text, /^couchlog_correlator_second_instance_total\{stopped="this"\} 1$/m);
      run.child.kill('SIGINT');
      await until('couchlog up to stop', async () => (run.code !== undefined ? true : null), WAIT);
      assert.equal(run.code, 0, run.output.slice(-2000));
    } finally {
      run.child.kill('SIGKILL');
    }
  });
});

/**
 * Reads every copy (r=n) on a cluster: a claim written with 202 (fewer
 * copies than the quorum acknowledged) may otherwise be read back as the
 * one before, and the steps below are exact. The claim converges over
 * further saves all the same; these tests check each step.
 */
class AllCopiesHttp extends CouchHttp {
  constructor(
    url: string,
    private readonly copies: number | undefined,
  ) {
    super(url, { timeoutMs: 10_000, retryAfterS: 1 });
  }
  override async request<T = unknown>(method: Parameters<CouchHttp['request']>[0], path: string, req: CouchRequest = {}): Promise<CouchResponse<T>> {
    const all = method === 'GET' && this.copies !== undefined ? `${path}${path.includes('?') ? '&' : '?'}r=${this.copies}` : path;
    return super.request<T>(method, all, req);
  }
}

describe('the claim, step by step (two instances A, then B, on one checkpoint)', () => {
  let couch: CouchHttp;
  let n = 0;
  before(async () => {
    const info = await http(`${stack.couchUrl}/couchlog_state_correlated`, { headers: { authorization: stack.auth.admin } });
    couch = new AllCopiesHttp(stack.couchUrl, (info.json.cluster as { n?: number } | undefined)?.n);
  });
  after(() => couch?.close());
  const account = () => ({ authorization: basicAuth(stack.config.users.correlator.user, stack.config.users.correlator.password!) });
  /** Two instances on a checkpoint of their own, B started a second after A. */
  function pair(): { a: WriterClaim; b: WriterClaim; laterSeenByA: WriterIdentity[] } {
    n += 1;
    const laterSeenByA: WriterIdentity[] = [];
    const name = `claim-test-${n}`;
    const a = new WriterClaim(couch, 'couchlog_state_correlated', name, account(), (o) => laterSeenByA.push(o), new Date(Date.UTC(2026, 11, 6, 10)));
    const b = new WriterClaim(couch, 'couchlog_state_correlated', name, account(), () => {}, new Date(Date.UTC(2026, 11, 6, 10, 0, 1)));
    return { a, b, laterSeenByA };
  }

  test('both writing: each sees the other once its claim has changed; A (started first) goes on, B stops', async () => {
    const { a, b, laterSeenByA } = pair();
    await b.claim();
    await a.claim(); // A never wrote: it takes over (as a restart or a failover does)
    await b.claim(); // B sees A's claim for the first time: it may be a dead instance's
    await a.claim(); // A sees B's claim again, changed: B is alive, and started later
    assert.deepEqual(
      laterSeenByA.map((o) => o.instance),
      [b.me.instance],
    );
    await assert.rejects(b.claim(), (err: unknown) => err instanceof SecondInstanceError && err.other.instance === a.me.instance);
  });

  test('stopped while the other one claims: the last save leaves the checkpoint to it, which goes on', async () => {
    const { a, b, laterSeenByA } = pair();
    await b.claim();
    await a.claim();
    await b.claim();
    await a.claim(); // A sees B alive, started later
    assert.equal(laterSeenByA.length, 1);
    // B is stopped (by hand, or it was about to stop itself): A's claim changed since B last read it.
    assert.equal(await b.release(), 'held-by-another');
    await a.claim();
    await a.claim();
    assert.equal(laterSeenByA.length, 1, 'B wrote nothing more');
  });

  test('a clean stop releases the claim: an instance running meanwhile does not take it for a second one', async () => {
    const { a, b } = pair();
    await a.claim();
    await b.claim(); // the new one, started before the old one stops
    assert.equal(await a.release(), 'released'); // A never saw B's claim change: it releases
    await b.claim();
    await b.claim();
    await b.claim();
  });

  test("a restarted instance takes over its dead predecessor's claim, and a stale read of it does not stop it", async () => {
    const { a, b } = pair();
    await a.claim();
    await a.claim(); // A dies here, without releasing
    await b.claim();
    await b.claim();
    // B stopped before its first save went through still saves its last checkpoint.
    const c = pair().b;
    await a.claim();
    assert.equal(await c.release(), 'released');
  });
});

describe('startedLater', () => {
  const id = (instance: string, started_at: string): WriterIdentity => ({ instance, host: 'h', pid: 1, started_at });
  test('by start time, then by instance id: both sides of a pair agree on which one stops', () => {
    const a = id('b', '2026-12-06T10:00:00.000Z');
    const b = id('a', '2026-12-06T10:00:01.000Z');
    assert.equal(startedLater(b, a), true);
    assert.equal(startedLater(a, b), false);
    const c = id('x', '2026-12-06T10:00:00.000Z');
    assert.notEqual(startedLater(a, c), startedLater(c, a));
  });
});
