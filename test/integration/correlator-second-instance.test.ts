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
import { accountsEnv, http, startStack, type Stack } from '../helpers/stack.js';
import { postBulk, until, type Doc } from '../helpers/correlator-outputs.js';
import { startCorrelator, type RunningCorrelator } from '../../correlator/service.js';
import { createLogger } from '../../lib/logger.js';
import { SecondInstanceError, startedLater, type WriterIdentity } from '../../correlator/feed/writer-claim.js';

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

async function writer(): Promise<WriterIdentity> {
  const res = await http(`${stack.couchUrl}/${WRITER}`, { headers: { authorization: stack.auth.admin } });
  assert.equal(res.status, 200, res.text);
  return res.json as unknown as WriterIdentity;
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

describe('couchlog correlator as the second instance', () => {
  test('exits 1 and says why, naming the other instance', async () => {
    const first = await start();
    const warm = await connection();
    await until('the first one running', async () => ((await correlated(warm)) ? true : null), WAIT);
    const dir = mkdtempSync(join(tmpdir(), 'couchlog-second-'));
    try {
      writeFileSync(join(dir, 'couchlog.yml'), stringifyYaml({ log_level: 'info', clickhouse: { enabled: false }, correlator: CORRELATOR }));
      const child = spawn(process.execPath, [CLI, '--config', join(dir, 'couchlog.yml'), 'correlator'], {
        env: { PATH: process.env.PATH, COUCHLOG_DATA: join(dir, 'data'), ...accountsEnv(stack) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d) => (output += d));
      child.stderr.on('data', (d) => (output += d));
      const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      let code: number | null | undefined;
      void exit.then((c) => (code = c));
      try {
        await until(
          'the command to exit',
          async () => {
            if (code !== undefined) return true;
            await connection();
            return null;
          },
          WAIT,
          200,
        );
      } finally {
        child.kill('SIGKILL');
      }
      assert.equal(code, 1, output.slice(-2000));
      assert.match(output, /CORRELATOR_SECOND_INSTANCE/);
      assert.match(output, new RegExp(`pid ${process.pid}, started`), 'the other instance is named');
      assert.equal(first.pipeline.superseded, null);
      const after = await connection();
      await until('the first one still deciding', async () => ((await correlated(after)) ? true : null), WAIT);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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
