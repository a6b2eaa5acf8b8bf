// HEC clients no one here wrote, against couchlog's HEC endpoint:
//  - Splunk's own Node library (splunk-logging) with its default settings
//    (one request per event, event/1.0 path, form Content-Type) and with
//    batching (concatenated envelopes); a wrong token gets its documented error;
//  - syslog-ng's http() destination configured as Splunk suggests for HEC
//    (Splunk token header, a JSON envelope per message, batched lines).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startStack, http, freePort, type Stack } from '../helpers/stack.js';

const require = createRequire(import.meta.url);
const SplunkLogger: any = require('splunk-logging').Logger;

const TOKEN = 'clients-test-token-0123456789';

let stack: Stack;
before(async () => {
  stack = await startStack({
    yaml: { apps: { web: { tokens: [{ name: 'clients', secret: TOKEN }] }, syslog: { tokens: [{ name: 'clients', secret: TOKEN }] } } },
  });
});
after(async () => {
  await stack?.stop();
});

async function docs(db: string): Promise<any[]> {
  const res = await http(`${stack.couchUrl}/${db}/_all_docs?include_docs=true`, { headers: { authorization: stack.auth.admin } });
  return (res.json.rows as any[]).filter((r) => !r.id.startsWith('_design/')).map((r) => r.doc);
}

async function waitFor<T>(what: string, probe: () => Promise<T | null>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
}

function send(logger: any, payload: unknown): Promise<{ err: unknown; body: any }> {
  return new Promise((resolve) => logger.send(payload, (err: unknown, _resp: unknown, body: any) => resolve({ err, body })));
}

describe("splunk-logging (Splunk's Node library)", () => {
  test('default settings: every event stored once, with its metadata', async () => {
    const logger = new SplunkLogger({ token: TOKEN, url: stack.url });
    const run = randomUUID();
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) => send(logger, { message: { run, i }, metadata: { host: 'lib-host', source: 'node', sourcetype: 'json' } })),
    );
    for (const a of answers) {
      assert.equal(a.err, null);
      assert.deepEqual(a.body, { text: 'Success', code: 0 });
    }
    const stored = (await docs('log_web')).filter((d) => d.message?.run === run);
    assert.equal(stored.length, 100);
    assert.deepEqual(
      stored.map((d) => d.message.i).sort((a, b) => a - b),
      Array.from({ length: 100 }, (_, i) => i),
    );
    for (const d of stored) {
      assert.equal(d.severity, 'info');
      assert.equal(d.host, 'lib-host');
      assert.equal(d.sourcetype, 'json');
      assert.match(d.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.ok(Math.abs(Date.parse(d.time) - Date.now()) < 60_000);
    }
  });

  test('batching (concatenated envelopes) and an index', async () => {
    const logger = new SplunkLogger({ token: TOKEN, url: stack.url, maxBatchCount: 25 });
    const run = randomUUID();
    // With batching, the library calls back only for the send that fills a batch.
    const flushes: Array<Promise<{ err: unknown; body: any }>> = [];
    for (let i = 0; i < 100; i++) {
      const p = send(logger, { message: { run, i }, metadata: { index: 'syslog' } });
      if (i % 25 === 24) flushes.push(p);
    }
    for (const a of await Promise.all(flushes)) assert.deepEqual(a.body, { text: 'Success', code: 0 });
    const stored = (await docs('log_syslog')).filter((d) => d.message?.run === run);
    assert.equal(stored.length, 100);
    const metrics = await http(`${stack.url}/_couchlog/metrics`);
    assert.match(metrics.text, /couchlog_ingress_requests_total\{route="hec_event",method="POST",status="200"\} 104\b/, '100 single requests, then 4 batches');
  });

  test('a wrong token gets "Invalid token", code 4, through the library\'s error callback', async () => {
    const logger = new SplunkLogger({ token: 'not-the-token-0000000000000', url: stack.url });
    const errors: any[] = [];
    logger.error = (err: any) => errors.push(err);
    const a = await send(logger, { message: { wrong: true } });
    assert.deepEqual(a.body, { text: 'Invalid token', code: 4 });
    assert.equal(errors.length, 1);
    assert.equal(errors[0].message, 'Invalid token');
    assert.equal(errors[0].code, 4);
    assert.equal((await docs('log_web')).filter((d) => d.message?.wrong).length, 0);
  });
});

const syslogNg = spawnSync('syslog-ng', ['--version']).status === 0;

describe('syslog-ng http() destination', { skip: syslogNg ? false : 'syslog-ng is not installed (apt-get install syslog-ng-core syslog-ng-mod-http)' }, () => {
  let dir: string;
  let proc: ChildProcess | null = null;
  let port: number;
  let stderr = '';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'couchlog-syslogng-'));
    port = await freePort();
    // As Splunk's and syslog-ng's docs show HEC: the token in an
    // Authorization header, one JSON envelope per message, lines batched.
    const conf = `@version: 3.38
options { stats_freq(0); };
source s_test { network(ip("127.0.0.1") port(${port}) transport("tcp") flags(no-parse)); };
destination d_hec {
  http(
    url("${stack.url}/services/collector/event")
    method("POST")
    headers("Authorization: Splunk ${TOKEN}", "Content-Type: application/json")
    body('$(format-json --scope none time=\${R_UNIXTIME} host=syslog-ng-test sourcetype=syslog index=syslog event=\${MESSAGE})')
    batch-lines(50)
    batch-bytes(512Kb)
    batch-timeout(200)
    workers(2)
  );
};
log { source(s_test); destination(d_hec); };
`;
    writeFileSync(join(dir, 'syslog-ng.conf'), conf);
    proc = spawn(
      'syslog-ng',
      ['-F', '-f', join(dir, 'syslog-ng.conf'), '-R', join(dir, 'persist'), '-p', join(dir, 'pid'), '-c', join(dir, 'ctl'), '--no-caps'],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    proc.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    await waitFor('syslog-ng to listen', async () => {
      return new Promise<true | null>((resolve) => {
        const s = connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(null));
      });
    });
  });

  after(async () => {
    if (proc && proc.exitCode === null) {
      const exited = new Promise((ok) => proc!.once('exit', ok));
      proc.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test("500 lines over TCP arrive once each, batched, with the envelope's fields", async () => {
    const run = randomUUID();
    const lines = Array.from({ length: 500 }, (_, i) => `sshd[42]: line ${i} of ${run} "quoted" \\ back`);
    await new Promise<void>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => {
        s.end(lines.join('\n') + '\n', () => resolve());
      });
      s.on('error', reject);
    });
    const stored = await waitFor(
      `500 documents (syslog-ng stderr: ${stderr.slice(-500)})`,
      async () => {
        const found = (await docs('log_syslog')).filter((d) => typeof d.message === 'string' && d.message.includes(run));
        return found.length >= 500 ? found : null;
      },
      30_000,
    );
    await new Promise((ok) => setTimeout(ok, 500));
    const again = (await docs('log_syslog')).filter((d) => typeof d.message === 'string' && d.message.includes(run));
    assert.equal(again.length, 500, 'each line once');
    assert.deepEqual(new Set(stored.map((d) => d.message)), new Set(lines));
    for (const d of stored) {
      assert.equal(d.host, 'syslog-ng-test');
      assert.equal(d.sourcetype, 'syslog');
      assert.ok(Math.abs(Date.parse(d.time) - Date.now()) < 120_000, d.time);
    }
    const metrics = await http(`${stack.url}/_couchlog/metrics`);
    const m = /couchlog_ingress_requests_total\{route="hec_event",method="POST",status="200"\} (\d+)/.exec(metrics.text);
    assert.ok(m && Number(m[1]) < 500, `batched: ${m?.[1]} HEC requests`);
  });
});
