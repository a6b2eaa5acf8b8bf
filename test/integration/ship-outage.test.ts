// couchlog-ship against a real ingress that goes away: a 20,000-line
// fail2ban log shipped while the ingress is killed twice (connections cut,
// answers in flight lost) and restarted lands exactly once and the run
// exits 0; a run whose ingress never comes back gives up with a clear
// message and a non-zero exit, leaving the file as it was, and the next
// run stores only what is missing.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serverIndependent, startStack, type Stack } from '../helpers/stack.js';
import { allDocs, banLine, contentLines, docCount, ship, start, waitFor, SHIP } from '../helpers/shipper.js';

const SKIP = serverIndependent("couchlog-ship against an ingress that goes away; it writes through the ingress, whose writes every server's run tests");

let stack: Stack;
let dir: string;
before(async () => {
  if (SKIP) return;
  stack = await startStack({ yaml: { apps: { outage: { reports: ['fail2ban'] }, giveup: {} } } });
  dir = mkdtempSync(join(tmpdir(), 'couchlog-ship-outage-'));
});
after(async () => {
  if (SKIP) return;
  await stack?.reviveIngress();
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The ingress must really be gone: a connection is refused, not left hanging. */
async function assertRefused(): Promise<void> {
  await assert.rejects(fetch(`${stack.url}/_couchlog/health`), (err: Error & { cause?: { code?: string } }) => err.cause?.code === 'ECONNREFUSED');
}

const FAST_RETRY = ['--backoff-base', '50', '--backoff-max', '400'];

describe('ingress outages', { skip: SKIP }, () => {
  test('20,000 lines, the ingress killed twice in the middle: each line stored exactly once, exit 0, file emptied', async () => {
    const file = join(dir, 'fail2ban.log');
    const lines = Array.from({ length: 20_000 }, (_, n) => banLine(n));
    writeFileSync(file, `${lines.join('\n')}\n`);
    const run = start([
      SHIP,
      '--url',
      `${stack.url}/log_outage`,
      '--preset',
      'fail2ban',
      '--fields',
      'machine=server',
      '--batch-size',
      '500',
      '--retry-for',
      '60',
      ...FAST_RETRY,
      '--truncate',
      '-v',
      '--reject-file',
      join(dir, 'rejects.ndjson'),
      file,
    ]);
    // Early in the file, so that a fast run is still going when the ingress dies, however the machine's speed compares.
    for (const at of [3_000, 7_000]) {
      await waitFor(`${at} documents`, async () => (await docCount(stack, 'log_outage')) >= at, 60_000);
      await stack.killIngress();
      await assertRefused();
      await new Promise((r) => setTimeout(r, 800));
      assert.equal(run.child.exitCode, null, 'ship keeps retrying while the ingress is down');
      await stack.reviveIngress();
    }
    const result = await run.done;
    assert.equal(result.code, 0, result.stderr);
    console.log(
      result.stderr
        .split('\n')
        .filter((l) => !l.includes('retrying'))
        .join('\n'),
    );
    assert.match(result.stderr, /retrying in [\d.]+ s: ECONNREFUSED/, 'it did retry on refused connections');

    const docs = await allDocs(stack, 'log_outage');
    assert.equal(docs.length, 20_000, 'nothing lost, nothing twice');
    const seen = new Set(docs.map((d) => `${d.date} ${d.hour} ${d.ip}`));
    assert.equal(seen.size, 20_000, 'each line exactly once');
    for (const n of [0, 4_321, 19_999]) {
      const [date, hour, , , , , , ip] = banLine(n).split(/\s+/);
      assert.ok(seen.has(`${date} ${hour} ${ip}`), `line ${n} is stored`);
    }
    const summary = /(\d+) stored, (\d+) already stored, 0 refused/.exec(result.stderr);
    assert.ok(summary, result.stderr);
    assert.equal(Number(summary[1]) + Number(summary[2]), 20_000, 'stored + already stored (an answer lost in a cut connection) is every line');
    assert.deepEqual(contentLines(readFileSync(file, 'utf8')), [], 'every line acknowledged, so all were removed');
  });

  test('the ingress never comes back: exit 1 with a clear message, the file untouched; the next run sends only what is missing', async () => {
    const file = join(dir, 'giveup.log');
    const text = `${Array.from({ length: 6_000 }, (_, n) => banLine(n)).join('\n')}\n`;
    writeFileSync(file, text);
    const args = [
      '--url',
      `${stack.url}/log_giveup`,
      '--preset',
      'fail2ban',
      '--batch-size',
      '250',
      '--concurrency',
      '2',
      '--truncate',
      '--reject-file',
      join(dir, 'rejects.ndjson'),
      file,
    ];
    const run = start([SHIP, ...args, '--retry-for', '2', ...FAST_RETRY]);
    await waitFor('some documents', async () => (await docCount(stack, 'log_giveup')) >= 500, 60_000, 20);
    await stack.killIngress();
    const started = Date.now();
    const result = await run.done;
    const stored = await docCount(stack, 'log_giveup');
    await stack.reviveIngress();
    assert.equal(result.code, 1, result.stderr);
    assert.ok(Date.now() - started < 15_000, 'gave up after about --retry-for, not much later');
    assert.match(result.stderr, /couchlog-ship: gave up after [\d.]+ s of failures \(\d+ attempts\): http:\/\/127\.0\.0\.1:\d+\/log_giveup: ECONNREFUSED/);
    assert.match(result.stderr, /giveup\.log left as it was/);
    assert.equal(readFileSync(file, 'utf8'), text, 'the file is exactly as it was');
    assert.ok(stored > 0 && stored < 6_000, `part of it (${stored}) got through before the outage`);

    const again = await ship([...args, '-v']);
    assert.equal(again.code, 0, again.stderr);
    const m = /(\d+) stored, (\d+) already stored/.exec(again.stderr);
    assert.ok(m, again.stderr);
    assert.equal(Number(m[1]) + Number(m[2]), 6_000);
    assert.ok(Number(m[2]) >= stored, 'what the first run stored was recognised by its ids (409), not stored again');
    const docs = await allDocs(stack, 'log_giveup');
    assert.equal(docs.length, 6_000);
    assert.equal(new Set(docs.map((d) => `${d.date} ${d.hour} ${d.ip}`)).size, 6_000);
  });

  test('an ingress that does not exist at all: a quick, clear failure', async () => {
    const file = join(dir, 'nowhere.log');
    writeFileSync(file, `${banLine(1)}\n`);
    const r = await ship(['--url', 'http://127.0.0.1:9/log_fail2ban', '--preset', 'fail2ban', '--retry-for', '0.5', ...FAST_RETRY, '--truncate', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /gave up after .*ECONNREFUSED/);
    assert.equal(readFileSync(file, 'utf8'), `${banLine(1)}\n`);
  });

  test('an unknown app is fatal at once (404), not retried', async () => {
    const file = join(dir, 'unknown-app.log');
    writeFileSync(file, `${banLine(1)}\n`);
    const started = Date.now();
    const r = await ship(['--url', `${stack.url}/log_nosuchapp`, '--preset', 'fail2ban', '--truncate', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no such log database at the ingress: 404/);
    assert.ok(Date.now() - started < 15_000, 'not retried for the 300 s of the default --retry-for');
    assert.equal(readFileSync(file, 'utf8'), `${banLine(1)}\n`);
  });
});
