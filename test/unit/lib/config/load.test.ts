// Unit tests of the configuration: lib/config/load.ts, schema.ts, secrets.ts.
// Covered: built-in defaults; file selection (./couchlog.yml, --config,
// COUCHLOG_CONFIG); unknown keys and bad values reported with their full path,
// all at once; invalid YAML; every environment override and its precedence
// over the file; ensureSecrets (generation once, mode 0600, reuse, values from
// env/file never overwritten nor written, external CouchDB needs a password);
// requirePassword, couchUrl, dbName and isLogDb. Every test works in its own temporary
// folder and passes `env` explicitly, so process.env is never read.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import {
  checkpointName,
  correlatorStateDb,
  couchUrl,
  dbName,
  ensureSecrets,
  isLogDb,
  loadConfig,
  requirePassword,
  type Config,
  type Env,
} from '../../../../lib/config/load.js';
import { readSecretsFile, secretsPath, writeSecretsFile, SECRETS_FILE } from '../../../../lib/config/secrets.js';
import { ConfigError } from '../../../../lib/errors.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A fresh, empty temporary folder (no couchlog.yml). */
function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'couchlog-config-test-'));
  dirs.push(dir);
  return dir;
}

/** A fresh folder holding ./couchlog.yml with `yaml`; returns the folder and the file. */
function withYaml(yaml: string): { cwd: string; file: string } {
  const cwd = tmp();
  const file = join(cwd, 'couchlog.yml');
  writeFileSync(file, yaml);
  return { cwd, file };
}

/** Runs `fn`, which must throw a ConfigError, and returns its problems. */
function configProblems(fn: () => unknown): string[] {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${caught === undefined ? 'no error' : String(caught)}`);
  assert.ok(caught.problems.length > 0, 'a ConfigError must name at least one problem');
  for (const p of caught.problems) assert.ok(caught.message.includes(p), 'the message lists every problem');
  return caught.problems;
}

function load(cwd: string, env: Env = {}, file?: string): Config {
  return loadConfig({ env, cwd, file }).config;
}

describe('loadConfig: defaults', () => {
  test('no file, empty env: built-in defaults', () => {
    const cwd = tmp();
    const { config, file } = loadConfig({ env: {}, cwd });
    assert.equal(file, null);
    assert.equal(config.ingress.host, '127.0.0.1');
    assert.equal(config.ingress.port, 8080);
    assert.equal(config.couchdb.url, null);
    assert.equal(config.couchdb.embedded.host, '127.0.0.1');
    assert.equal(config.couchdb.embedded.port, 5984);
    assert.ok(isAbsolute(config.data_dir));
    assert.equal(config.data_dir, join(cwd, 'data'));
    assert.deepEqual(Object.keys(config.apps), ['appname', 'fail2ban', 'http', 'network']);
    assert.deepEqual(config.apps.fail2ban!.reports, ['fail2ban']);
    assert.equal(config.correlator.outputs.couchdb.app, 'correlated');
    assert.equal(config.clickhouse.url, null);
    assert.equal(config.log_level, 'info');
    assert.equal(config.couchdb.admin.user, 'admin');
    assert.equal(config.users.writer.user, 'writer');
    assert.equal(config.users.reader.user, 'reader');
    assert.equal(config.couchdb.admin.password, null);
    assert.equal(config.users.writer.password, null);
    assert.equal(config.users.reader.password, null);
  });

  test('a few documented ingress defaults', () => {
    const c = load(tmp()).ingress;
    assert.equal(c.body_limit_bytes, 8 * 1024 * 1024);
    assert.equal(c.max_docs_per_request, 10_000);
    assert.equal(c.max_json_depth, 32);
    assert.equal(c.received_at, true);
    assert.equal(c.auto_create, false);
    assert.deepEqual(c.group_commit, { max_docs: 500, max_wait_ms: 4, max_inflight: 4 });
    assert.deepEqual(c.rate_limit, { enabled: false, max: 600, window_ms: 60_000 });
    assert.deepEqual(c.trust_proxy, []);
  });

  test('loading does not create the data folder or a secrets file', () => {
    const cwd = tmp();
    load(cwd);
    assert.equal(existsSync(join(cwd, 'data')), false);
  });

  for (const [name, yaml] of [
    ['an empty file', ''],
    ['a file with only comments', '# nothing here\n# at all\n'],
    ['a file with an empty document marker', '---\n'],
  ] as const) {
    test(`${name} gives the defaults`, () => {
      const { cwd, file } = withYaml(yaml);
      const loaded = loadConfig({ env: {}, cwd });
      assert.equal(loaded.file, file);
      const defaults = load(tmp());
      assert.equal(loaded.config.data_dir, join(cwd, 'data'));
      assert.deepEqual({ ...loaded.config, data_dir: 'X' }, { ...defaults, data_dir: 'X' });
    });
  }

  test('./couchlog.yml in cwd is read when no file is named', () => {
    const { cwd, file } = withYaml('ingress:\n  port: 9090\n');
    const loaded = loadConfig({ env: {}, cwd });
    assert.equal(loaded.file, file);
    assert.equal(loaded.config.ingress.port, 9090);
    // Keys the file does not name keep their defaults.
    assert.equal(loaded.config.ingress.host, '127.0.0.1');
    assert.equal(loaded.config.couchdb.embedded.port, 5984);
  });

  test('a relative data_dir in the file is resolved against cwd; an absolute one is kept', () => {
    const rel = withYaml('data_dir: ./var/logs\n');
    assert.equal(load(rel.cwd).data_dir, join(rel.cwd, 'var', 'logs'));
    const absDir = join(tmp(), 'abs-data');
    const abs = withYaml(`data_dir: ${absDir}\n`);
    assert.equal(load(abs.cwd).data_dir, absDir);
  });

  test('apps from the file replace the default apps', () => {
    const { cwd } = withYaml('apps:\n  web: {}\n  mail: {}\n');
    const apps = load(cwd).apps;
    assert.deepEqual(Object.keys(apps).sort(), ['mail', 'web']);
  });

  test('an app listed with nothing after it (YAML null) is accepted with the same settings as {}', () => {
    const { cwd } = withYaml('apps:\n  web:\n  mail: {}\n');
    const apps = load(cwd).apps;
    assert.deepEqual(Object.keys(apps).sort(), ['mail', 'web']);
    assert.deepEqual(apps.web, apps.mail);
  });

  for (const name of ['a', 'web', 'app-1', 'my_app', 'x9', 'a'.repeat(64)]) {
    test(`app name ${JSON.stringify(name.length > 10 ? `${name.slice(0, 5)}…(${name.length})` : name)} is accepted`, () => {
      const { cwd } = withYaml(`apps:\n  ${name}: {}\n`);
      assert.deepEqual(Object.keys(load(cwd).apps), [name]);
    });
  }
});

describe('loadConfig: choosing the file', () => {
  test('the file option (--config) is read, relative to cwd', () => {
    const cwd = tmp();
    mkdirSync(join(cwd, 'etc'));
    writeFileSync(join(cwd, 'etc', 'other.yml'), 'ingress:\n  port: 9001\n');
    const loaded = loadConfig({ env: {}, cwd, file: 'etc/other.yml' });
    assert.equal(loaded.file, join(cwd, 'etc', 'other.yml'));
    assert.equal(loaded.config.ingress.port, 9001);
  });

  test('--config beats COUCHLOG_CONFIG, which beats ./couchlog.yml', () => {
    const { cwd } = withYaml('ingress:\n  port: 9001\n');
    writeFileSync(join(cwd, 'env.yml'), 'ingress:\n  port: 9002\n');
    writeFileSync(join(cwd, 'cli.yml'), 'ingress:\n  port: 9003\n');
    assert.equal(load(cwd).ingress.port, 9001);
    assert.equal(load(cwd, { COUCHLOG_CONFIG: 'env.yml' }).ingress.port, 9002);
    assert.equal(loadConfig({ env: { COUCHLOG_CONFIG: 'env.yml' }, cwd }).file, join(cwd, 'env.yml'));
    assert.equal(load(cwd, { COUCHLOG_CONFIG: 'env.yml' }, 'cli.yml').ingress.port, 9003);
  });

  test('COUCHLOG_CONFIG with an absolute path', () => {
    const other = tmp();
    const file = join(other, 'c.yml');
    writeFileSync(file, 'log_level: debug\n');
    const loaded = loadConfig({ env: { COUCHLOG_CONFIG: file }, cwd: tmp() });
    assert.equal(loaded.file, file);
    assert.equal(loaded.config.log_level, 'debug');
  });

  test('--config naming a missing file is a ConfigError naming the path', () => {
    const cwd = tmp();
    const problems = configProblems(() => loadConfig({ env: {}, cwd, file: 'nope.yml' }));
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /config file not found/);
    assert.ok(problems[0]!.includes(join(cwd, 'nope.yml')));
  });

  test('COUCHLOG_CONFIG naming a missing file is a ConfigError', () => {
    const cwd = tmp();
    const problems = configProblems(() => loadConfig({ env: { COUCHLOG_CONFIG: 'missing.yml' }, cwd }));
    assert.ok(problems[0]!.includes(join(cwd, 'missing.yml')));
  });

  test('a named missing file is an error even when ./couchlog.yml exists', () => {
    const { cwd } = withYaml('ingress:\n  port: 9001\n');
    configProblems(() => loadConfig({ env: {}, cwd, file: 'missing.yml' }));
  });
});

describe('loadConfig: invalid files', () => {
  // [what, yaml, the path that must be named]
  const unknownKeys: Array<[string, string, string]> = [
    ['top-level key', 'foo: 1\n', 'foo'],
    ['key in ingress', 'ingress:\n  prot: 1\n', 'ingress.prot'],
    ['key two levels deep', 'ingress:\n  group_commit:\n    max_doc: 1\n', 'ingress.group_commit.max_doc'],
    ['key in couchdb.admin', 'couchdb:\n  admin:\n    pasword: secret123\n', 'couchdb.admin.pasword'],
    ['key in couchdb.embedded', 'couchdb:\n  embedded:\n    prot: 1\n', 'couchdb.embedded.prot'],
    ['key in users', 'users:\n  admin: {}\n', 'users.admin'],
    ['key in users.writer', 'users:\n  writer:\n    name: w\n', 'users.writer.name'],
    ['key inside an app', 'apps:\n  web:\n    retention: 3\n', 'apps.web.retention'],
    ['key in rate_limit', 'ingress:\n  rate_limit:\n    burst: 3\n', 'ingress.rate_limit.burst'],
  ];
  for (const [what, yaml, path] of unknownKeys) {
    test(`unknown ${what} is reported as ${path}`, () => {
      const { cwd, file } = withYaml(yaml);
      const problems = configProblems(() => load(cwd));
      assert.deepEqual(problems, [`${file}: unknown key: ${path}`]);
    });
  }

  test('several unknown keys in one mapping are named together', () => {
    const { cwd, file } = withYaml('ingress:\n  prot: 1\n  hots: x\n');
    assert.deepEqual(
      configProblems(() => load(cwd)),
      [`${file}: unknown keys: ingress.prot, ingress.hots`],
    );
  });

  // [what, yaml, the path whose problem must be reported]
  const badValues: Array<[string, string, string]> = [
    ['ingress port 70000', 'ingress:\n  port: 70000\n', 'ingress.port'],
    ['ingress port 0', 'ingress:\n  port: 0\n', 'ingress.port'],
    ['ingress port as a string', 'ingress:\n  port: "8080"\n', 'ingress.port'],
    ['ingress port 80.5', 'ingress:\n  port: 80.5\n', 'ingress.port'],
    ['embedded CouchDB port 70000', 'couchdb:\n  embedded:\n    port: 70000\n', 'couchdb.embedded.port'],
    ['negative body limit', 'ingress:\n  body_limit_bytes: -1\n', 'ingress.body_limit_bytes'],
    ['app name with upper case', 'apps:\n  MyApp: {}\n', 'apps.MyApp'],
    ['app name starting with a digit', 'apps:\n  1app: {}\n', 'apps.1app'],
    ['app name with a dot', 'apps:\n  my.app: {}\n', 'apps.my.app'],
    ['app name longer than 64', `apps:\n  ${'a'.repeat(65)}: {}\n`, `apps.${'a'.repeat(65)}`],
    ['app settings that are not a mapping', 'apps:\n  web: 3\n', 'apps.web'],
    ['unknown log level', 'log_level: verbose\n', 'log_level'],
    ['CouchDB url that is not a URL', 'couchdb:\n  url: not a url\n', 'couchdb.url'],
    ['CouchDB url that is not http(s)', 'couchdb:\n  url: ftp://couch.example/\n', 'couchdb.url'],
    ['CouchDB url with credentials', 'couchdb:\n  url: http://admin:pw@couch.example:5984\n', 'couchdb.url'],
    ['password shorter than 8', 'users:\n  writer:\n    password: short\n', 'users.writer.password'],
    ['user name with a colon', 'users:\n  reader:\n    user: "a:b"\n', 'users.reader.user'],
    ['admin user name with a space', 'couchdb:\n  admin:\n    user: "a b"\n', 'couchdb.admin.user'],
    ['group_commit.max_inflight 0', 'ingress:\n  group_commit:\n    max_inflight: 0\n', 'ingress.group_commit.max_inflight'],
    ['max_json_depth above 1000', 'ingress:\n  max_json_depth: 1001\n', 'ingress.max_json_depth'],
    ['received_at not a boolean', 'ingress:\n  received_at: "yes"\n', 'ingress.received_at'],
    ['trust_proxy not a list', 'ingress:\n  trust_proxy: 10.0.0.1\n', 'ingress.trust_proxy'],
    ['empty data_dir', 'data_dir: ""\n', 'data_dir'],
    ['exclude_source_ips entry that is no address', 'correlator:\n  exclude_source_ips: [10.0.0.1, not-an-ip]\n', 'correlator.exclude_source_ips.1'],
    ['exclude_source_ips CIDR prefix too long', 'correlator:\n  exclude_source_ips: [10.0.0.0/33]\n', 'correlator.exclude_source_ips.0'],
    ['exclude_source_ips IPv6 CIDR prefix too long', 'correlator:\n  exclude_source_ips: ["2001:db8::/129"]\n', 'correlator.exclude_source_ips.0'],
    ['trust_proxy entry that is no address', 'ingress:\n  trust_proxy: [10.0.0.0/8, proxy.example]\n', 'ingress.trust_proxy.1'],
  ];
  for (const [what, yaml, path] of badValues) {
    test(`${what} is reported at ${path}`, () => {
      const { cwd, file } = withYaml(yaml);
      const problems = configProblems(() => load(cwd));
      assert.equal(problems.length, 1, `one problem expected, got ${JSON.stringify(problems)}`);
      assert.ok(problems[0]!.startsWith(`${file}: ${path}: `), `problem ${JSON.stringify(problems[0])} should name ${path}`);
    });
  }

  test('all problems of a file are reported at once', () => {
    const { cwd, file } = withYaml(
      ['foo: 1', 'ingress:', '  port: 70000', '  body_limit_bytes: -5', '  prot: 1', 'apps:', '  MyApp: {}', 'log_level: loud', ''].join('\n'),
    );
    const problems = configProblems(() => load(cwd));
    assert.equal(problems.length, 6, JSON.stringify(problems));
    for (const p of problems) assert.ok(p.startsWith(`${file}: `), 'each problem names the file');
    const expectStart = ['ingress.port: ', 'ingress.body_limit_bytes: ', 'apps.MyApp: ', 'log_level: '];
    for (const start of expectStart) {
      assert.ok(
        problems.some((p) => p.startsWith(`${file}: ${start}`)),
        `missing ${start}`,
      );
    }
    assert.ok(problems.includes(`${file}: unknown key: foo`));
    assert.ok(problems.includes(`${file}: unknown key: ingress.prot`));
  });

  const badYaml: Array<[string, string]> = [
    ['an unclosed flow sequence', 'ingress: [1, 2\n'],
    ['a nested mapping on one line', 'a: b: c\n'],
    ['a duplicate key', 'ingress:\n  port: 1\n  port: 2\n'],
    ['a bad indentation', 'ingress:\n  port: 1\n host: x\n'],
  ];
  for (const [what, yaml] of badYaml) {
    test(`invalid YAML (${what}) is a ConfigError naming the file`, () => {
      const { cwd, file } = withYaml(yaml);
      const problems = configProblems(() => load(cwd));
      assert.equal(problems.length, 1);
      assert.ok(problems[0]!.startsWith(`${file}: `));
    });
  }

  for (const [what, yaml] of [
    ['a list', '- a\n- b\n'],
    ['a scalar', 'hello\n'],
    ['a number', '42\n'],
  ] as const) {
    test(`a file whose top level is ${what} is a ConfigError`, () => {
      const { cwd, file } = withYaml(yaml);
      const problems = configProblems(() => load(cwd));
      assert.deepEqual(problems, [`${file}: the top level must be a mapping of keys`]);
    });
  }
});

describe('loadConfig: environment overrides', () => {
  // [variable, value, read the config, expected (cwd → value)]
  const overrides: Array<[string, string, (c: Config) => unknown, (cwd: string) => unknown]> = [
    ['COUCHLOG_DATA', '/srv/couchlog-data', (c) => c.data_dir, () => '/srv/couchlog-data'],
    ['COUCHLOG_DATA', 'rel/data', (c) => c.data_dir, (cwd) => join(cwd, 'rel', 'data')],
    ['COUCHLOG_LOG_LEVEL', 'debug', (c) => c.log_level, () => 'debug'],
    ['COUCHDB_URL', 'http://couch.example:5984', (c) => c.couchdb.url, () => 'http://couch.example:5984'],
    ['COUCHDB_USER', 'root', (c) => c.couchdb.admin.user, () => 'root'],
    ['COUCHDB_PASSWORD', 'admin-password-1', (c) => c.couchdb.admin.password, () => 'admin-password-1'],
    ['COUCHLOG_WRITER_USER', 'shipper', (c) => c.users.writer.user, () => 'shipper'],
    ['COUCHLOG_WRITER_PASSWORD', 'writer-password-1', (c) => c.users.writer.password, () => 'writer-password-1'],
    ['COUCHLOG_READER_USER', 'grafana', (c) => c.users.reader.user, () => 'grafana'],
    ['COUCHLOG_READER_PASSWORD', 'reader-password-1', (c) => c.users.reader.password, () => 'reader-password-1'],
    ['COUCHLOG_INGRESS_PORT', '9000', (c) => c.ingress.port, () => 9000],
    ['COUCHLOG_COUCHDB_PORT', '6000', (c) => c.couchdb.embedded.port, () => 6000],
  ];
  for (const [name, value, read, expected] of overrides) {
    test(`${name}=${value} overrides the default`, () => {
      const cwd = tmp();
      assert.notDeepEqual(read(load(cwd)), expected(cwd), 'the default differs from the override');
      assert.deepEqual(read(load(cwd, { [name]: value })), expected(cwd));
    });
  }

  test('dataDirDefaulted: true only when neither the file nor COUCHLOG_DATA names data_dir', () => {
    const cwd = tmp();
    assert.equal(loadConfig({ env: {}, cwd }).dataDirDefaulted, true);
    assert.equal(loadConfig({ env: { COUCHLOG_DATA: '/srv/x' }, cwd }).dataDirDefaulted, false);
    const named = withYaml('data_dir: /srv/y\n');
    assert.equal(loadConfig({ env: {}, cwd: named.cwd, file: named.file }).dataDirDefaulted, false);
    const unnamed = withYaml('log_level: info\n');
    assert.equal(loadConfig({ env: {}, cwd: unnamed.cwd, file: unnamed.file }).dataDirDefaulted, true);
  });

  test('a bad value from the environment is blamed on its variable, not on the file', () => {
    // Found by a newcomer's test: COUCHDB_PASSWORD=wrong gave "couchlog.yml: couchdb.admin.password: must be at least 8 characters".
    const { cwd, file } = withYaml('log_level: info\n');
    const problems = configProblems(() => loadConfig({ env: { COUCHDB_PASSWORD: 'short' }, cwd, file }));
    assert.deepEqual(problems, ['COUCHDB_PASSWORD (couchdb.admin.password): must be at least 8 characters']);
    const inFile = withYaml('couchdb:\n  admin:\n    password: short\n');
    assert.deepEqual(
      configProblems(() => loadConfig({ env: {}, cwd: inFile.cwd, file: inFile.file })),
      [`${inFile.file}: couchdb.admin.password: must be at least 8 characters`],
    );
  });

  test('an override changes nothing else', () => {
    const cwd = tmp();
    const base = load(cwd);
    const changed = load(cwd, { COUCHLOG_INGRESS_PORT: '9000' });
    assert.deepEqual({ ...changed, ingress: { ...changed.ingress, port: 8080 } }, base);
  });

  const fileWithEverything = [
    'data_dir: /from/file',
    'log_level: warn',
    'couchdb:',
    '  url: http://file-couch:5984',
    '  embedded:',
    '    port: 7000',
    '  admin:',
    '    user: fileadmin',
    '    password: file-admin-pw',
    'users:',
    '  writer:',
    '    user: filewriter',
    '    password: file-writer-pw',
    '  reader:',
    '    user: filereader',
    '    password: file-reader-pw',
    'ingress:',
    '  port: 7001',
    '',
  ].join('\n');

  test('the file alone sets every overridable value', () => {
    const { cwd } = withYaml(fileWithEverything);
    const c = load(cwd);
    assert.equal(c.data_dir, '/from/file');
    assert.equal(c.log_level, 'warn');
    assert.equal(c.couchdb.url, 'http://file-couch:5984');
    assert.equal(c.couchdb.embedded.port, 7000);
    assert.deepEqual(c.couchdb.admin, { user: 'fileadmin', password: 'file-admin-pw' });
    assert.deepEqual(c.users.writer, { user: 'filewriter', password: 'file-writer-pw' });
    assert.deepEqual(c.users.reader, { user: 'filereader', password: 'file-reader-pw' });
    assert.equal(c.ingress.port, 7001);
  });

  test('environment beats the file for every variable', () => {
    const { cwd } = withYaml(fileWithEverything);
    const c = load(cwd, {
      COUCHLOG_DATA: '/from/env',
      COUCHLOG_LOG_LEVEL: 'error',
      COUCHDB_URL: 'http://env-couch:5984',
      COUCHDB_USER: 'envadmin',
      COUCHDB_PASSWORD: 'env-admin-pw',
      COUCHLOG_WRITER_USER: 'envwriter',
      COUCHLOG_WRITER_PASSWORD: 'env-writer-pw',
      COUCHLOG_READER_USER: 'envreader',
      COUCHLOG_READER_PASSWORD: 'env-reader-pw',
      COUCHLOG_INGRESS_PORT: '8001',
      COUCHLOG_COUCHDB_PORT: '8002',
    });
    assert.equal(c.data_dir, '/from/env');
    assert.equal(c.log_level, 'error');
    assert.equal(c.couchdb.url, 'http://env-couch:5984');
    assert.equal(c.couchdb.embedded.port, 8002);
    assert.deepEqual(c.couchdb.admin, { user: 'envadmin', password: 'env-admin-pw' });
    assert.deepEqual(c.users.writer, { user: 'envwriter', password: 'env-writer-pw' });
    assert.deepEqual(c.users.reader, { user: 'envreader', password: 'env-reader-pw' });
    assert.equal(c.ingress.port, 8001);
  });

  test('an empty variable is ignored (the file value stays)', () => {
    const { cwd } = withYaml(fileWithEverything);
    const c = load(cwd, { COUCHLOG_INGRESS_PORT: '', COUCHDB_USER: '', COUCHLOG_DATA: '' });
    assert.equal(c.ingress.port, 7001);
    assert.equal(c.couchdb.admin.user, 'fileadmin');
    assert.equal(c.data_dir, '/from/file');
  });

  test('unrelated variables are ignored', () => {
    const cwd = tmp();
    assert.deepEqual(load(cwd, { PORT: '1', COUCHLOG_PORT: '2', couchlog_ingress_port: '3' }), load(cwd));
  });

  test('an override goes into a section the file left null', () => {
    const { cwd } = withYaml('ingress:\n');
    assert.equal(load(cwd, { COUCHLOG_INGRESS_PORT: '8123' }).ingress.port, 8123);
  });

  for (const name of ['COUCHLOG_INGRESS_PORT', 'COUCHLOG_COUCHDB_PORT']) {
    for (const value of ['abc', '80a', '80.5', '-1', ' 8080', '8080 ', '1e3', '0x50', '+80']) {
      test(`${name}=${JSON.stringify(value)} is a ConfigError naming ${name}`, () => {
        const problems = configProblems(() => load(tmp(), { [name]: value }));
        assert.ok(
          problems.some((p) => p.startsWith(`${name}: `) && p.includes(value)),
          JSON.stringify(problems),
        );
      });
    }
  }

  test('both bad port variables are reported at once', () => {
    const problems = configProblems(() => load(tmp(), { COUCHLOG_INGRESS_PORT: 'x', COUCHLOG_COUCHDB_PORT: 'y' }));
    assert.equal(problems.length, 2);
    assert.ok(problems.some((p) => p.startsWith('COUCHLOG_INGRESS_PORT: ')));
    assert.ok(problems.some((p) => p.startsWith('COUCHLOG_COUCHDB_PORT: ')));
  });

  test('an integer port out of range is still refused (ingress.port)', () => {
    const problems = configProblems(() => load(tmp(), { COUCHLOG_INGRESS_PORT: '70000' }));
    assert.ok(
      problems.some((p) => p.includes('ingress.port')),
      JSON.stringify(problems),
    );
  });

  test('a variable whose section is not a mapping in the file is a ConfigError naming it', () => {
    const { cwd } = withYaml('users: 5\n');
    const problems = configProblems(() => load(cwd, { COUCHLOG_WRITER_USER: 'w' }));
    assert.ok(
      problems.some((p) => p.startsWith('COUCHLOG_WRITER_USER: ')),
      JSON.stringify(problems),
    );
  });

  for (const url of ['couch:5984 please', 'ftp://couch.example/', 'mailto:admin@example.com', '//couch:5984', 'couch.example:5984/x y']) {
    test(`COUCHDB_URL=${JSON.stringify(url)} is refused at couchdb.url`, () => {
      const problems = configProblems(() => load(tmp(), { COUCHDB_URL: url }));
      assert.ok(
        problems.some((p) => p.startsWith('COUCHDB_URL (couchdb.url): ')),
        JSON.stringify(problems),
      );
    });
  }

  test('COUCHDB_URL with credentials is refused without echoing the password', () => {
    const problems = configProblems(() => load(tmp(), { COUCHDB_URL: 'http://admin:s3cret-pw@couch.example:5984' }));
    assert.ok(
      problems.some((p) => p.startsWith('COUCHDB_URL (couchdb.url): ')),
      JSON.stringify(problems),
    );
    assert.ok(problems.every((p) => !p.includes('s3cret-pw')));
  });

  test('a password from the environment is validated like one from the file', () => {
    const problems = configProblems(() => load(tmp(), { COUCHLOG_READER_PASSWORD: 'short' }));
    assert.ok(
      problems.some((p) => p.startsWith('COUCHLOG_READER_PASSWORD (users.reader.password): ')),
      JSON.stringify(problems),
    );
  });
});

describe('ensureSecrets', () => {
  const modeOf = (path: string) => statSync(path).mode & 0o777;

  test('generates every missing password once and writes secrets.env with mode 0600', () => {
    const cwd = tmp();
    const config = load(cwd);
    const result = ensureSecrets(config);
    assert.deepEqual(result.generated, ['admin', 'writer', 'reader', 'correlator']);
    assert.equal(result.file, join(cwd, 'data', SECRETS_FILE));
    assert.equal(result.file, secretsPath(config.data_dir));
    assert.ok(existsSync(result.file));
    assert.equal(modeOf(result.file), 0o600);

    const passwords = [config.couchdb.admin.password, config.users.writer.password, config.users.reader.password, config.users.correlator.password];
    for (const p of passwords) {
      assert.equal(typeof p, 'string');
      assert.ok(p!.length >= 8, 'long enough for the schema');
      assert.match(p!, /^[A-Za-z0-9_-]+$/, 'URL- and shell-safe');
    }
    assert.equal(new Set(passwords).size, 4, 'each account gets its own password');

    assert.deepEqual(readSecretsFile(config.data_dir), {
      COUCHDB_PASSWORD: config.couchdb.admin.password,
      COUCHLOG_WRITER_PASSWORD: config.users.writer.password,
      COUCHLOG_READER_PASSWORD: config.users.reader.password,
      COUCHLOG_CORRELATOR_PASSWORD: config.users.correlator.password,
      CLICKHOUSE_PASSWORD: config.clickhouse.password,
      COUCHLOG_ID_TAG_KEY: config.ingress.id_tag_key,
    });
    assert.match(config.clickhouse.password!, /^[A-Za-z0-9_-]{8,}$/);
    // The key of tagged ids: random and long, nothing a writer could guess from an account's password.
    assert.match(config.ingress.id_tag_key!, /^[A-Za-z0-9_-]{64}$/);
    assert.ok(!passwords.some((p) => config.ingress.id_tag_key!.includes(p!)));
    assert.ok(!passwords.includes(config.clickhouse.password), 'the embedded ClickHouse gets a password of its own');
  });

  test('the embedded ClickHouse password: made once, read back, given by CLICKHOUSE_PASSWORD; none for an external or disabled ClickHouse', () => {
    const cwd = tmp();
    const first = load(cwd);
    ensureSecrets(first);
    assert.equal(load(cwd).clickhouse.password, first.clickhouse.password);
    assert.equal(load(cwd, { CLICKHOUSE_PASSWORD: 'ch-from-env-1' }).clickhouse.password, 'ch-from-env-1');

    const external = load(tmp(), { CLICKHOUSE_URL: 'http://ch.example:8123' });
    ensureSecrets(external);
    assert.equal(external.clickhouse.password, null);
    assert.equal(readSecretsFile(external.data_dir).CLICKHOUSE_PASSWORD, undefined);
    const { cwd: off } = withYaml('clickhouse:\n  enabled: false\n');
    const disabled = load(off);
    ensureSecrets(disabled);
    assert.equal(readSecretsFile(disabled.data_dir).CLICKHOUSE_PASSWORD, undefined);
  });

  test('a second loadConfig + ensureSecrets reuses the stored passwords', () => {
    const cwd = tmp();
    const first = load(cwd);
    ensureSecrets(first);
    const text = readFileSync(secretsPath(first.data_dir), 'utf8');

    const second = load(cwd);
    assert.equal(second.couchdb.admin.password, first.couchdb.admin.password);
    assert.equal(second.users.writer.password, first.users.writer.password);
    assert.equal(second.users.reader.password, first.users.reader.password);
    const again = ensureSecrets(second);
    assert.deepEqual(again.generated, []);
    assert.equal(readFileSync(secretsPath(first.data_dir), 'utf8'), text, 'the file is not rewritten');
  });

  test('calling ensureSecrets twice on one config generates nothing the second time', () => {
    const config = load(tmp());
    const admin = (ensureSecrets(config), config.couchdb.admin.password);
    assert.deepEqual(ensureSecrets(config).generated, []);
    assert.equal(config.couchdb.admin.password, admin);
  });

  test('a password given in the environment is neither overwritten nor written', () => {
    const cwd = tmp();
    const env = { COUCHLOG_WRITER_PASSWORD: 'writer-from-env-1' };
    const config = load(cwd, env);
    const result = ensureSecrets(config);
    assert.deepEqual(result.generated, ['admin', 'reader', 'correlator']);
    assert.equal(config.users.writer.password, 'writer-from-env-1');
    const text = readFileSync(result.file, 'utf8');
    assert.ok(!text.includes('COUCHLOG_WRITER_PASSWORD'));
    assert.ok(!text.includes('writer-from-env-1'));
    assert.deepEqual(Object.keys(readSecretsFile(config.data_dir)).sort(), [
      'CLICKHOUSE_PASSWORD',
      'COUCHDB_PASSWORD',
      'COUCHLOG_CORRELATOR_PASSWORD',
      'COUCHLOG_ID_TAG_KEY',
      'COUCHLOG_READER_PASSWORD',
    ]);

    // Later runs keep taking it from the environment.
    const again = load(cwd, env);
    assert.equal(again.users.writer.password, 'writer-from-env-1');
    assert.deepEqual(ensureSecrets(again).generated, []);
  });

  test('a password given in the file is neither overwritten nor written', () => {
    const { cwd } = withYaml('users:\n  reader:\n    password: reader-in-file-1\n');
    const config = load(cwd);
    const result = ensureSecrets(config);
    assert.deepEqual(result.generated, ['admin', 'writer', 'correlator']);
    assert.equal(config.users.reader.password, 'reader-in-file-1');
    assert.ok(!readFileSync(result.file, 'utf8').includes('reader-in-file-1'));
  });

  test('the key of tagged ids: from the environment or secrets.env, at least 32 characters, never echoed', () => {
    assert.equal(load(tmp(), { COUCHLOG_ID_TAG_KEY: 'k'.repeat(32) }).ingress.id_tag_key, 'k'.repeat(32));
    const problems = configProblems(() => load(tmp(), { COUCHLOG_ID_TAG_KEY: 'short-secret-key' }));
    assert.ok(
      problems.some((p) => p.startsWith('ingress.id_tag_key: COUCHLOG_ID_TAG_KEY must be at least 32')),
      JSON.stringify(problems),
    );
    assert.ok(problems.every((p) => !p.includes('short-secret-key')));
  });

  // Review finding: COUCHLOG_SIGNING_KEY=x from the environment (or secrets.env) was taken as the records' signing key,
  // while the same key in the file was refused. fillSigningKey skipped the rule fillIdTagKey applies.
  test('the signing key: from the environment or secrets.env, at least 32 characters as in the file, never echoed', () => {
    const audit = 'correlator:\n  outputs:\n    couchdb:\n      protection: audit\n';
    const key = 'S3cretKey'.repeat(4);
    assert.equal(load(withYaml(audit).cwd, { COUCHLOG_SIGNING_KEY: key }).correlator.outputs.couchdb.signing_key, key);
    const short = 'S3cretKey-0123456789';
    const fromEnv = configProblems(() => load(withYaml(audit).cwd, { COUCHLOG_SIGNING_KEY: short }));
    assert.deepEqual(fromEnv, ['correlator.outputs.couchdb.signing_key: COUCHLOG_SIGNING_KEY must be at least 32 characters (from the environment)']);
    assert.deepEqual(
      configProblems(() => load(withYaml(audit).cwd, { COUCHLOG_SIGNING_KEY: 'x' })),
      fromEnv,
      "one character: the review's case",
    );
    // The rule of the file holds whatever the protection, as for a key written there.
    assert.deepEqual(
      configProblems(() => load(tmp(), { COUCHLOG_SIGNING_KEY: short })),
      fromEnv,
    );
    const { cwd } = withYaml(audit);
    writeSecretsFile(join(cwd, 'data'), { COUCHLOG_SIGNING_KEY: short });
    const fromFile = configProblems(() => load(cwd));
    assert.deepEqual(fromFile, [
      `correlator.outputs.couchdb.signing_key: COUCHLOG_SIGNING_KEY must be at least 32 characters (from ${secretsPath(join(cwd, 'data'))})`,
    ]);
    assert.equal(load(cwd, { COUCHLOG_SIGNING_KEY: key }).correlator.outputs.couchdb.signing_key, key, 'the environment comes first');
    for (const p of [...fromEnv, ...fromFile]) assert.ok(!p.includes(short), p);
  });

  test('a password from secrets.env is held to the rule of one in the file or the environment (at least 8 characters)', () => {
    const cwd = tmp();
    writeSecretsFile(join(cwd, 'data'), { COUCHLOG_READER_PASSWORD: 'S3cret7', COUCHDB_PASSWORD: 'admin-password-1' });
    const problems = configProblems(() => load(cwd));
    assert.deepEqual(problems, [`users.reader.password: COUCHLOG_READER_PASSWORD must be at least 8 characters (from ${secretsPath(join(cwd, 'data'))})`]);
    assert.ok(!problems[0]!.includes('S3cret7'));
    // Given elsewhere, the stored one is not used, and not judged.
    assert.equal(load(cwd, { COUCHLOG_READER_PASSWORD: 'reader-password-1' }).users.reader.password, 'reader-password-1');
  });

  test('the environment beats a password stored in secrets.env', () => {
    const cwd = tmp();
    ensureSecrets(load(cwd));
    const config = load(cwd, { COUCHDB_PASSWORD: 'admin-from-env-1' });
    assert.equal(config.couchdb.admin.password, 'admin-from-env-1');
  });

  test('all passwords given: nothing generated, no file written', () => {
    const cwd = tmp();
    const config = load(cwd, {
      COUCHDB_PASSWORD: 'admin-password-1',
      COUCHLOG_WRITER_PASSWORD: 'writer-password-1',
      COUCHLOG_READER_PASSWORD: 'reader-password-1',
      COUCHLOG_CORRELATOR_PASSWORD: 'correlator-password-1',
      CLICKHOUSE_PASSWORD: 'clickhouse-password-1',
      COUCHLOG_ID_TAG_KEY: 'id-tag-key-0123456789abcdef0123456789',
    });
    assert.equal(config.ingress.id_tag_key, 'id-tag-key-0123456789abcdef0123456789');
    const result = ensureSecrets(config);
    assert.deepEqual(result.generated, []);
    assert.equal(existsSync(result.file), false);
  });

  test('an external CouchDB without an admin password is a ConfigError, and nothing is written', () => {
    const cwd = tmp();
    const config = load(cwd, { COUCHDB_URL: 'http://couch.example:5984' });
    const problems = configProblems(() => ensureSecrets(config));
    assert.ok(
      problems.some((p) => p.includes('couchdb.admin.password')),
      JSON.stringify(problems),
    );
    assert.ok(problems.some((p) => p.includes('COUCHDB_PASSWORD')));
    assert.equal(existsSync(secretsPath(config.data_dir)), false);
    assert.equal(config.users.writer.password, null, 'no password was invented either');
  });

  test('an external CouchDB with an admin password: only writer, reader and correlator are generated', () => {
    const cwd = tmp();
    const config = load(cwd, { COUCHDB_URL: 'http://couch.example:5984', COUCHDB_PASSWORD: 'given-admin-pw' });
    const result = ensureSecrets(config);
    assert.deepEqual(result.generated, ['writer', 'reader', 'correlator']);
    assert.equal(config.couchdb.admin.password, 'given-admin-pw');
    assert.ok(!readFileSync(result.file, 'utf8').includes('given-admin-pw'));
  });

  test('an existing secrets.env keeps its other values and ends up with mode 0600', () => {
    const cwd = tmp();
    const dataDir = join(cwd, 'data');
    mkdirSync(dataDir);
    const file = join(dataDir, SECRETS_FILE);
    writeFileSync(file, "# mine\nexport COUCHDB_PASSWORD='kept-admin-pw'\nOTHER_VALUE=abc\n");
    chmodSync(file, 0o644);

    const config = load(cwd);
    assert.equal(config.couchdb.admin.password, 'kept-admin-pw', 'read from secrets.env');
    const result = ensureSecrets(config);
    assert.deepEqual(result.generated, ['writer', 'reader', 'correlator']);
    assert.equal(modeOf(file), 0o600);
    const stored = readSecretsFile(dataDir);
    assert.equal(stored.COUCHDB_PASSWORD, 'kept-admin-pw');
    assert.equal(stored.OTHER_VALUE, 'abc');
    assert.equal(stored.COUCHLOG_WRITER_PASSWORD, config.users.writer.password);
    assert.equal(stored.COUCHLOG_READER_PASSWORD, config.users.reader.password);
    assert.equal(stored.COUCHLOG_CORRELATOR_PASSWORD, config.users.correlator.password);
  });

  test('the data folder is created when missing (COUCHLOG_DATA)', () => {
    const cwd = tmp();
    const config = load(cwd, { COUCHLOG_DATA: 'deep/er/data' });
    const result = ensureSecrets(config);
    assert.equal(result.file, join(cwd, 'deep', 'er', 'data', SECRETS_FILE));
    assert.equal(modeOf(result.file), 0o600);
  });
});

describe('secrets file format', () => {
  test('readSecretsFile: missing file is empty', () => {
    assert.deepEqual(readSecretsFile(join(tmp(), 'none')), {});
  });

  test('readSecretsFile: quoted, unquoted and exported values; comments and junk ignored', () => {
    const dir = tmp();
    writeFileSync(join(dir, SECRETS_FILE), ['# comment', "A_ONE='quoted'", 'B_TWO=plain', "export C_THREE='exp'", 'lower=no', 'not a line', ''].join('\n'));
    assert.deepEqual(readSecretsFile(dir), { A_ONE: 'quoted', B_TWO: 'plain', C_THREE: 'exp' });
  });

  test('writeSecretsFile + readSecretsFile round trip', () => {
    const dir = join(tmp(), 'nested');
    const values = { COUCHDB_PASSWORD: 'abc-DEF_123', COUCHLOG_READER_PASSWORD: 'zzz' };
    const path = writeSecretsFile(dir, values);
    assert.equal(path, secretsPath(dir));
    assert.deepEqual(readSecretsFile(dir), values);
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });
});

describe('requirePassword, couchUrl, dbName, isLogDb', () => {
  test('requirePassword returns a set password and names the variable when unset', () => {
    const config = load(tmp(), { COUCHLOG_WRITER_PASSWORD: 'writer-password-1' });
    assert.equal(requirePassword(config, 'writer'), 'writer-password-1');
    const problems = configProblems(() => requirePassword(config, 'reader'));
    assert.ok(problems[0]!.includes('COUCHLOG_READER_PASSWORD'));
    assert.ok(configProblems(() => requirePassword(config, 'admin'))[0]!.includes('COUCHDB_PASSWORD'));
  });

  // [what, yaml, env, expected URL]
  const urls: Array<[string, string, Env, string]> = [
    ['embedded defaults', '', {}, 'http://127.0.0.1:5984'],
    ['embedded port from env', '', { COUCHLOG_COUCHDB_PORT: '6001' }, 'http://127.0.0.1:6001'],
    ['embedded host name', 'couchdb:\n  embedded:\n    host: localhost\n', {}, 'http://localhost:5984'],
    ['embedded IPv6 host', 'couchdb:\n  embedded:\n    host: "::1"\n', {}, 'http://[::1]:5984'],
    ['external URL', '', { COUCHDB_URL: 'http://couch.example:5984' }, 'http://couch.example:5984'],
    ['external URL, trailing slash', '', { COUCHDB_URL: 'http://couch.example:5984/' }, 'http://couch.example:5984'],
    ['external URL with a trailing slash', '', { COUCHDB_URL: 'https://db.example.com/' }, 'https://db.example.com'],
    ['external URL from the file', 'couchdb:\n  url: https://file.example:6984/\n', {}, 'https://file.example:6984'],
    ['external URL wins over embedded settings', 'couchdb:\n  embedded:\n    port: 7000\n', { COUCHDB_URL: 'http://ext:5984' }, 'http://ext:5984'],
  ];
  for (const [what, yaml, env, expected] of urls) {
    test(`couchUrl: ${what}`, () => {
      const { cwd } = withYaml(yaml);
      assert.equal(couchUrl(load(cwd, env)), expected);
    });
  }

  test('dbName prefixes log_', () => {
    assert.equal(dbName('fail2ban'), 'log_fail2ban');
    assert.equal(dbName('appname'), 'log_appname');
  });

  test('isLogDb accepts exactly what dbName gives for a valid app name', () => {
    for (const app of ['fail2ban', 'correlated', 'a', 'web-2_b', 'x'.repeat(64)]) assert.ok(isLogDb(dbName(app)), app);
    for (const db of ['log_', 'log_X', 'log_1a', 'log_a b', 'log_a/b', `log_${'x'.repeat(65)}`, 'logs_a', 'couchlog_state_correlated', '_users', 'LOG_a'])
      assert.ok(!isLogDb(db), db);
  });
});

test("the correlator's state database is a valid CouchDB name outside the log databases (the ingress routes those, readers are their members)", () => {
  for (const app of ['correlated', 'a', 'x'.repeat(64), 'web-2_b']) {
    const db = correlatorStateDb(app);
    assert.match(db, /^[a-z][a-z0-9_$()+/-]*$/);
    assert.ok(!db.startsWith('log_'), db);
  }
  assert.equal(checkpointName({ index: 0, count: 1 }), 'correlator');
  assert.equal(checkpointName({ index: 1, count: 2 }), 'correlator-1-of-2');
});

test("the correlator's output is no app: listing it under apps is a ConfigError (the ingress would take writes to it, anonymous ones too)", () => {
  const { cwd, file } = withYaml('apps:\n  web: {}\n  correlated: {}\n');
  const problems = configProblems(() => load(cwd, {}, file));
  assert.ok(
    problems.some((p) => p.includes('apps.correlated: ') && p.includes('correlator.outputs.couchdb.app')),
    problems.join('\n'),
  );
  const renamed = withYaml('apps:\n  correlated: {}\ncorrelator:\n  outputs:\n    couchdb:\n      app: joined\n');
  assert.equal(load(renamed.cwd, {}, renamed.file).correlator.outputs.couchdb.app, 'joined');
});
