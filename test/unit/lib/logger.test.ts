// lib/logger.ts: the log format (auto/pretty/json), colour only on a
// terminal, one "pid" key, and the config key / environment variable that
// choose the format.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, loggableUrl, resolveLogFormat } from '../../../lib/logger.js';
import { loadConfig } from '../../../lib/config/load.js';

function logTo(format: 'pretty' | 'json', isTTY: boolean, write: (log: ReturnType<typeof createLogger>) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'couchlog-logger-'));
  const file = join(dir, 'out.log');
  const fd = openSync(file, 'w');
  try {
    write(createLogger('info', 'couchlog', { format, fd, isTTY }));
  } finally {
    closeSync(fd);
  }
  const text = readFileSync(file, 'utf8');
  rmSync(dir, { recursive: true, force: true });
  return text;
}

describe('log format', () => {
  test('auto is pretty on a terminal, JSON lines otherwise', () => {
    assert.equal(resolveLogFormat('auto', true), 'pretty');
    assert.equal(resolveLogFormat('auto', false), 'json');
    assert.equal(resolveLogFormat('json', true), 'json');
    assert.equal(resolveLogFormat('pretty', false), 'pretty');
  });

  test('json: one object per line, one "pid" key even with a child\'s component and a child_pid', () => {
    const text = logTo('json', false, (log) => log.child({ component: 'couchdb' }).info({ child_pid: 42, url: 'http://127.0.0.1:5984/' }, 'started'));
    const lines = text.trim().split('\n');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.match(/"pid":/g)?.length, 1);
    assert.equal(JSON.parse(lines[0]!).component, 'couchdb');
  });

  test('pretty: one short line, the component leading the message, colour only on a terminal, secrets redacted', () => {
    const plain = logTo('pretty', false, (log) =>
      log.child({ component: 'ingress' }).info({ http: { method: 'GET', url: '/x', status: 200, ms: 1 }, password: 'hunter2-secret' }, 'GET /x 200 1 ms'),
    );
    assert.equal(plain.trim().split('\n').length, 1);
    assert.match(plain, /^\[\d\d:\d\d:\d\d\] INFO: ingress: GET \/x 200 1 ms/);
    assert.ok(!plain.includes('\x1b['), 'no colour when not a terminal');
    assert.ok(!plain.includes('hunter2-secret'));
    assert.ok(!plain.includes('"http"'), 'the request fields are in the message already');
    const coloured = logTo('pretty', true, (log) => log.info('hello'));
    // NO_COLOR, or a dumb terminal, turns colour off even then.
    if (process.env.NO_COLOR === undefined && process.env.TERM !== 'dumb') assert.match(coloured, /\x1b\[\d+m/);
    else assert.ok(!coloured.includes('\x1b['));
  });

  test('log_format in the config and COUCHLOG_LOG_FORMAT choose it; auto by default', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'couchlog-logger-'));
    try {
      assert.equal(loadConfig({ env: {}, cwd }).config.log_format, 'auto');
      assert.equal(loadConfig({ env: { COUCHLOG_LOG_FORMAT: 'json' }, cwd }).config.log_format, 'json');
      assert.throws(() => loadConfig({ env: { COUCHLOG_LOG_FORMAT: 'loud' }, cwd }), /log_format/);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});

test('loggableUrl: secret-bearing query values are replaced, read decoded and case-insensitive; the rest is kept', () => {
  assert.equal(loggableUrl('/services/collector/event?token=s3cr3t-value'), '/services/collector/event?token=[redacted]');
  assert.equal(loggableUrl('/x?channel=abc&Token=s3cr3t&n=1'), '/x?channel=abc&Token=[redacted]&n=1');
  assert.equal(loggableUrl('/x?%74oken=s3cr3t'), '/x?%74oken=[redacted]');
  assert.equal(loggableUrl('/x?password=a&api_key=b&access_token=c'), '/x?password=[redacted]&api_key=[redacted]&access_token=[redacted]');
  assert.equal(loggableUrl('/log_app/_design/logs/_view/by_time?key=1&limit=5'), '/log_app/_design/logs/_view/by_time?key=1&limit=5');
  assert.equal(loggableUrl('/log_app'), '/log_app');
  assert.equal(loggableUrl('/x?token'), '/x?token=[redacted]');
  for (const url of ['/x?token=abc%zz', '/x?%zz=1&token=abc']) assert.ok(!loggableUrl(url).includes('abc'), url);
});

test('loggableUrl: ";" separates parameters and array syntax names the same parameter; the query is otherwise kept as sent', () => {
  assert.equal(loggableUrl('/x?a=1;token=s3cr3t&b=2'), '/x?a=1;token=[redacted]&b=2');
  assert.equal(loggableUrl('/x?token[]=s3cr3t&Token[0]=t2&token%5B%5D=t3'), '/x?token[]=[redacted]&Token[0]=[redacted]&token%5B%5D=[redacted]');
  assert.equal(loggableUrl('/x?tokens=1;a=;&b'), '/x?tokens=1;a=;&b', 'nothing secret: unchanged');
  for (const url of ['/x?n=1;password=hunter2', '/x?secret[x]=hunter2', '/x?;;auth=hunter2']) assert.ok(!loggableUrl(url).includes('hunter2'), url);
});
