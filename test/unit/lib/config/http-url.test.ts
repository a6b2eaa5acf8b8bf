// Server URLs in the config never carry credentials (they are printed in
// banners, notes and errors): refused with the key's path and where the
// credentials go instead, without repeating the URL.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../../../lib/config/load.js';
import { ConfigError } from '../../../../lib/errors.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function refusal(yaml: string): string {
  const cwd = mkdtempSync(join(tmpdir(), 'couchlog-http-url-'));
  dirs.push(cwd);
  writeFileSync(join(cwd, 'couchlog.yml'), yaml);
  try {
    loadConfig({ env: {}, cwd });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  return assert.fail('accepted');
}

test('credentials in a server URL are refused, naming the key and where they go instead, never echoing them', () => {
  const cases: Array<[string, RegExp]> = [
    ['couchdb:\n  url: http://admin:hunter2secret@couch:5984\n', /couchdb\.url: must not contain credentials: use COUCHDB_USER/],
    ['clickhouse:\n  url: http://default:hunter2secret@clickhouse:8123\n', /clickhouse\.url: must not contain credentials: use user and password/],
    [
      'correlator:\n  outputs:\n    splunk_hec:\n      enabled: true\n      url: https://x:hunter2secret@splunk:8088\n',
      /correlator\.outputs\.splunk_hec\.url: must not contain credentials/,
    ],
    ['forward:\n  - name: siem\n    app: appname\n    hec_url: https://x:hunter2secret@splunk:8088\n', /forward\.0\.hec_url: must not contain credentials/],
  ];
  for (const [yaml, expected] of cases) {
    const message = refusal(yaml);
    assert.match(message, expected);
    assert.ok(!message.includes('hunter2secret'), message);
  }
  assert.match(refusal('clickhouse:\n  url: ftp://clickhouse:21\n'), /clickhouse\.url: must be an http/);
  assert.match(refusal('clickhouse:\n  url: not a url\n'), /clickhouse\.url: not a URL/);
});

test('a CouchDB URL with a path (a reverse proxy prefix) is refused, not met later as an internal error', () => {
  assert.match(refusal('couchdb:\n  url: http://127.0.0.1:5984/couch\n'), /couchdb\.url: must be the server root, without a path/);
  assert.match(refusal('couchdb:\n  url: http://127.0.0.1:5984/?x=1\n'), /couchdb\.url: must be the server root/);
  for (const ok of ['http://127.0.0.1:5984', 'http://127.0.0.1:5984/', 'https://couch.example:6984/']) {
    const cwd = mkdtempSync(join(tmpdir(), 'couchlog-http-url-'));
    dirs.push(cwd);
    assert.equal(loadConfig({ env: { COUCHDB_URL: ok }, cwd }).config.couchdb.url, ok);
  }
  // Other servers may sit under a path: a HEC target often does.
  const cwd = mkdtempSync(join(tmpdir(), 'couchlog-http-url-'));
  dirs.push(cwd);
  writeFileSync(join(cwd, 'couchlog.yml'), 'forward:\n  - name: siem\n    app: appname\n    hec_url: https://splunk:8088/proxy/hec\n');
  assert.equal(loadConfig({ env: {}, cwd }).config.forward[0]!.hec_url, 'https://splunk:8088/proxy/hec');
});

test("the four accounts need four names: two sharing one would leave one account with the other's rights", () => {
  assert.match(refusal('users:\n  reader:\n    user: writer\n'), /users\.reader\.user: "writer" is already users\.writer\.user/);
  assert.match(refusal('users:\n  correlator:\n    user: reader\n'), /users\.correlator\.user: "reader" is already users\.reader\.user/);
  assert.match(refusal('users:\n  writer:\n    user: admin\n'), /users\.writer\.user: "admin" is already couchdb\.admin\.user/);
  // From the environment too (COUCHLOG_READER_USER and the like).
  const cwd = mkdtempSync(join(tmpdir(), 'couchlog-http-url-'));
  dirs.push(cwd);
  assert.throws(
    () => loadConfig({ env: { COUCHLOG_READER_USER: 'writer' }, cwd }),
    /COUCHLOG_READER_USER \(users\.reader\.user\): "writer" is already users\.writer\.user/,
  );
  assert.equal(loadConfig({ env: { COUCHLOG_READER_USER: 'analyst' }, cwd }).config.users.reader.user, 'analyst');
});
