// couchlog-ship --state against a real ingress, through a log's life: it
// grows, is rotated by rename while the writer still appends to the old
// file, the old file disappears, it is rotated by copytruncate, emptied in
// place (the seed's `echo "" >`), and emptied and refilled past the saved
// offset. After every run the database holds every line written so far,
// each exactly once.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  appendFileSync,
  copyFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startStack, type Stack } from '../helpers/stack.js';
import { allDocs, ship, start, SHIP, type RunResult } from '../helpers/shipper.js';
import type { ShipState } from '../../shipper/state-file.js';

let stack: Stack;
let dir: string;
let log: string;
let stateFile: string;
let written = 0;

before(async () => {
  stack = await startStack({ yaml: { apps: { state: {} } } });
  dir = mkdtempSync(join(tmpdir(), 'couchlog-ship-state-'));
  log = join(dir, 'app.log');
  stateFile = join(dir, 'ship.state');
});
after(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Appends the next `count` numbered lines to `file` (the writer's view: it does not know about rotation). */
function write(file: string, count: number): void {
  let text = '';
  for (let i = 0; i < count; i++) text += `${JSON.stringify({ seq: written++, at: file.endsWith('.log') ? 'log' : 'rotated' })}\n`;
  appendFileSync(file, text);
}

async function run(): Promise<RunResult> {
  const r = await ship([
    '--url',
    `${stack.url}/log_state`,
    '--state',
    stateFile,
    '-v',
    '--batch-size',
    '50',
    '--reject-file',
    join(dir, 'rejects.ndjson'),
    log,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return r;
}

/** Every line written so far is stored, each exactly once. */
async function assertAllOnce(step: string): Promise<void> {
  const seqs = (await allDocs(stack, 'log_state')).map((d) => d.seq as number).sort((a, b) => a - b);
  assert.deepEqual(
    seqs,
    Array.from({ length: written }, (_, i) => i),
    `${step}: lines 0..${written - 1}, each once`,
  );
}

function state(): ShipState {
  return JSON.parse(readFileSync(stateFile, 'utf8')) as ShipState;
}

describe("--state through a log file's life", () => {
  test('first run sends everything and remembers device, inode and offset', async () => {
    write(log, 100);
    await run();
    await assertAllOnce('first run');
    const s = state().files[log]!;
    const st = statSync(log);
    assert.deepEqual([s.current!.dev, s.current!.ino, s.current!.offset, s.current!.generation], [st.dev, st.ino, st.size, 0]);
  });

  test('a second run sends only what is new; a third with nothing new sends nothing', async () => {
    write(log, 50);
    const r = await run();
    assert.match(r.stderr, /50 lines .* 50 stored, 0 already stored/);
    await assertAllOnce('grown');
    const idle = await run();
    assert.match(idle.stderr, /0 lines/);
    await assertAllOnce('nothing new');
  });

  test('rotated by rename while the writer still appends to the old file: both are followed', async () => {
    write(log, 5); // written before the rotation, not yet sent
    renameSync(log, `${log}.1`);
    write(`${log}.1`, 10); // the writer keeps its descriptor until told to reopen
    write(log, 10); // the new file
    await run();
    await assertAllOnce('after rotation');
    const s = state().files[log]!;
    assert.equal(s.current!.ino, statSync(log).ino);
    assert.equal(s.current!.generation, 1, 'the new file is a new generation');
    assert.deepEqual(
      s.rotated.map((r) => [r.ino, r.seen_as]),
      [[statSync(`${log}.1`).ino, `${log}.1`]],
    );

    write(`${log}.1`, 7); // still late lines in the old file
    write(log, 3);
    await run();
    await assertAllOnce('late lines in the rotated file');
  });

  test('the rotated file disappears (deleted or compressed): it is dropped from the state', async () => {
    unlinkSync(`${log}.1`);
    write(log, 4);
    await run();
    await assertAllOnce('rotated file gone');
    assert.deepEqual(state().files[log]!.rotated, []);
  });

  test('copytruncate: the lines copied away before the truncation are read from the copy', async () => {
    write(log, 6); // not yet sent when logrotate copies and truncates
    copyFileSync(log, `${log}.1`);
    truncateSync(log, 0);
    write(log, 5);
    const r = await run();
    await assertAllOnce('copytruncate');
    assert.match(r.stderr, new RegExp(`${log.replace(/[.]/g, '\\.')}\\.1 \\(was`), 'read from the copy');
    unlinkSync(`${log}.1`);
  });

  test('emptied in place (the seed\'s echo "" >): from the start, under a new generation', async () => {
    write(log, 3);
    await run();
    writeFileSync(log, '\n');
    write(log, 4);
    const r = await run();
    await assertAllOnce('emptied in place');
    assert.match(r.stderr, /was truncated or rewritten since the last run/);
  });

  test('emptied and refilled past the saved offset: the fingerprint tells, nothing is skipped', async () => {
    const before = statSync(log).size;
    truncateSync(log, 0);
    while (statSync(log).size <= before * 2) write(log, 20);
    await run();
    await assertAllOnce('refilled past the offset');
    assert.ok(state().files[log]!.current!.generation >= 3);
  });

  test('a run that fails midway (the ingress gone) keeps what was acknowledged in --state; the next run sends only the rest', async () => {
    // Found by a black-box test: the failed run saved no state (its file handle was closed under
    // it, EBADF), so every retry of a cron job sent the whole file again as "already stored".
    const before = state().files[log]!.current!.offset;
    // More than one read of the file (256 KiB; 12,000 lines are at least 288 KB): the run stops while lines are still being read.
    write(log, 12_000);
    let batches = 0;
    const gateway = createServer((req, res) => {
      if (++batches > 5) {
        req.socket.destroy();
        gateway.close();
        return;
      }
      // Forwarded to the real ingress: its answers are the acknowledgments.
      const upstream = httpRequest(`${stack.url}${req.url}`, { method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      req.pipe(upstream);
    });
    await new Promise<void>((ok) => gateway.listen(0, '127.0.0.1', ok));
    const port = (gateway.address() as AddressInfo).port;
    const failed = await ship([
      '--url',
      `http://127.0.0.1:${port}/log_state`,
      '--state',
      stateFile,
      '-v',
      '--batch-size',
      '50',
      '--concurrency',
      '1',
      '--retry-for',
      '1',
      '--reject-file',
      join(dir, 'rejects.ndjson'),
      log,
    ]).finally(() => gateway.close());
    assert.equal(failed.code, 1, failed.stderr);
    const acked = Number(/acknowledged up to byte (\d+)/.exec(failed.stderr)?.[1]);
    assert.ok(acked > before, `some progress: ${failed.stderr}`);
    assert.equal(state().files[log]!.current!.offset, acked, 'the acknowledged part is saved');
    const next = await run();
    assert.match(next.stderr, / 0 already stored/, 'nothing sent twice');
    await assertAllOnce('after a failed run and the next one');
  });

  test('a corrupt state file is a clear error, not a resend of everything', async () => {
    const good = readFileSync(stateFile, 'utf8');
    writeFileSync(stateFile, '{ broken');
    const r = await ship(['--url', `${stack.url}/log_state`, '--state', stateFile, log]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--state .* is not readable/);
    writeFileSync(stateFile, good);
    await assertAllOnce('after the corrupt state');
  });
});

describe('the reject file when --reject-file is not given', () => {
  test('next to the --state file, and nothing in the current directory (cron runs in $HOME or /)', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'couchlog-ship-cwd-'));
    const other = join(dir, 'rejecting.log');
    const otherState = join(dir, 'rejecting.state');
    writeFileSync(other, `${JSON.stringify({ ok: 1 })}\nnot json at all\n`);
    const r = await start([SHIP, '--url', `${stack.url}/log_state`, '--state', otherState, other], { cwd }).done;
    assert.equal(r.code, 0, r.stderr);
    const expected = `${otherState}.rejects.ndjson`;
    assert.ok(r.stderr.includes(`written to ${expected}`), r.stderr);
    assert.equal(readFileSync(expected, 'utf8').trim().split('\n').length, 1);
    assert.deepEqual(readdirSync(cwd), [], 'nothing written in the current directory');
    rmSync(cwd, { recursive: true, force: true });
  });

  test('without --state: in the data folder, <data_dir>/rejects/log_<app>.ndjson', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'couchlog-ship-cwd-'));
    const data = join(dir, 'data');
    const r = await start([SHIP, '--url', `${stack.url}/log_state`], {
      cwd,
      stdin: 'not json either\n',
      env: { ...process.env, COUCHLOG_DATA: data, COUCHLOG_CONFIG: '' },
    }).done;
    assert.equal(r.code, 0, r.stderr);
    const expected = join(data, 'rejects', 'log_state.ndjson');
    assert.ok(r.stderr.includes(`written to ${expected}`), r.stderr);
    assert.match(readFileSync(expected, 'utf8'), /not json either/);
    assert.deepEqual(readdirSync(cwd), []);
    rmSync(cwd, { recursive: true, force: true });
  });
});
