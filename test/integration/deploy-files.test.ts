// The deployment files that cannot be run here in full: docker-compose.yml
// is checked by Debian's docker-compose (`config`, no Docker engine needed),
// the systemd units by `systemd-analyze verify` and `security --offline`,
// the compose configuration by couchlog's own loader and the ingress, and
// what the units' ExecReload does (SIGHUP) by running the real commands.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../lib/config/load.js';
import { buildApp } from '../../server/app.js';
import { freePort, http, serverIndependent, startStack, type Stack } from '../helpers/stack.js';
import { ROOT } from '../helpers/nginx.js';

const CLI = join(ROOT, 'dist/scripts/couchlog.js');
const SKIP = serverIndependent("couchlog's deployment files and its processes' signal handling");
const COMPOSE = join(ROOT, 'docker-compose.yml');
const ENV_EXAMPLE = join(ROOT, '.env.example');
const UNITS_DIR = join(ROOT, 'scripts/systemd');

function compose(args: string[], envFile: string): { status: number | null; stdout: string; stderr: string } {
  const res = spawnSync('docker-compose', ['-f', COMPOSE, '--project-directory', ROOT, '--env-file', envFile, ...args], {
    encoding: 'utf8',
    // Only what the env file says: a variable of the test's own environment must not fill a gap.
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' },
  });
  if (res.error) throw new Error(`docker-compose could not run (apt-get install docker-compose; .ci/run does): ${res.error.message}`);
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

describe('docker-compose.yml', { skip: SKIP }, () => {
  let resolved: any;
  before(() => {
    const res = compose(['config'], ENV_EXAMPLE);
    assert.equal(res.status, 0, res.stderr);
    resolved = parseYaml(res.stdout);
  });

  test('docker-compose config -q accepts it with .env.example', () => {
    const res = compose(['config', '-q'], ENV_EXAMPLE);
    assert.equal(res.status, 0, res.stderr);
    assert.equal(res.stderr.trim(), '');
  });

  test('a missing secret stops it with a message naming the variable', () => {
    const dir = mkdtempSync(join(tmpdir(), 'couchlog-compose-'));
    try {
      const partial = readFileSync(ENV_EXAMPLE, 'utf8').replace(/^COUCHLOG_WRITER_PASSWORD=.*$/m, '');
      writeFileSync(join(dir, '.env'), partial);
      const res = compose(['config', '-q'], join(dir, '.env'));
      assert.notEqual(res.status, 0);
      assert.match(res.stderr, /COUCHLOG_WRITER_PASSWORD/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the six services, and only nginx is published', () => {
    assert.deepEqual(Object.keys(resolved.services).sort(), ['clickhouse', 'correlator', 'couchdb', 'ingress', 'nginx', 'setup']);
    for (const [name, service] of Object.entries<any>(resolved.services)) {
      if (name === 'nginx') assert.equal(service.ports.length, 2);
      else assert.equal(service.ports, undefined, `${name} must not be published`);
    }
    assert.match(resolved.services.couchdb.image, /^couchdb:3/);
    assert.match(resolved.services.clickhouse.image, /^clickhouse\/clickhouse-server:/);
    // The correlator runs with the larger young generation its throughput was measured with.
    assert.match(resolved.services.correlator.environment.NODE_OPTIONS, /^--max-semi-space-size=\d+$/);
  });

  test('start order: healthchecks and depends_on conditions', () => {
    const s = resolved.services;
    for (const name of ['couchdb', 'clickhouse', 'ingress', 'correlator']) assert.ok(s[name].healthcheck?.test, `${name} has a healthcheck`);
    assert.deepEqual(s.setup.depends_on, { couchdb: { condition: 'service_healthy' }, clickhouse: { condition: 'service_healthy' } });
    assert.deepEqual(s.ingress.depends_on, { setup: { condition: 'service_completed_successfully' } });
    assert.deepEqual(s.correlator.depends_on, { setup: { condition: 'service_completed_successfully' } });
    assert.deepEqual(s.nginx.depends_on, { ingress: { condition: 'service_healthy' } });
    assert.equal(s.setup.restart, 'no');
  });

  test('data in named volumes; secrets from the env file', () => {
    const s = resolved.services;
    const named = (svc: any) => (svc.volumes as string[]).filter((v) => !v.startsWith('/') && !v.startsWith('.')).map((v) => v.split(':')[0]);
    assert.ok(named(s.couchdb).includes('couchdb-data'));
    assert.ok(named(s.clickhouse).includes('clickhouse-data'));
    assert.ok(named(s.correlator).includes('correlator-data'));
    for (const v of ['couchdb-data', 'clickhouse-data', 'correlator-data']) assert.ok(v in resolved.volumes, v);
    const env = readFileSync(ENV_EXAMPLE, 'utf8');
    const value = (name: string) => env.match(new RegExp(`^${name}=(.*)$`, 'm'))?.[1];
    assert.equal(s.ingress.environment.COUCHLOG_WRITER_PASSWORD, value('COUCHLOG_WRITER_PASSWORD'));
    assert.equal(s.couchdb.environment.COUCHDB_PASSWORD, value('COUCHDB_PASSWORD'));
    assert.equal(s.setup.environment.COUCHDB_PASSWORD, value('COUCHDB_PASSWORD'));
    assert.equal(s.clickhouse.environment.CLICKHOUSE_PASSWORD, value('CLICKHOUSE_PASSWORD'));
    assert.equal(s.correlator.environment.CLICKHOUSE_PASSWORD, value('CLICKHOUSE_PASSWORD'));
    // No secret is written into the compose file itself.
    assert.doesNotMatch(readFileSync(COMPOSE, 'utf8'), /PASSWORD: [^$]/);
  });

  test("the couchlog services run real couchlog subcommands and nginx renders the project's file", () => {
    const s = resolved.services;
    for (const name of ['setup', 'ingress', 'correlator']) {
      const [command] = s[name].command as string[];
      const res = spawnSync(process.execPath, [CLI, command!, '--help'], { encoding: 'utf8' });
      assert.equal(res.status, 0, `${name}: couchlog ${command} --help: ${res.stderr}`);
    }
    assert.equal(s.ingress.environment.COUCHLOG_INGRESS_HOST, '0.0.0.0');
    assert.equal(s.nginx.environment.COUCHLOG_INGRESS_UPSTREAM, `ingress:${s.ingress.environment.COUCHLOG_INGRESS_PORT}`);
    const template = (s.nginx.volumes as string[]).find((v) => v.includes('/etc/nginx/templates/'));
    assert.ok(template && existsSync(template.split(':')[0]!), `nginx template mount: ${template}`);
    // Every placeholder of the nginx file is given to the nginx container.
    const placeholders = new Set(
      readFileSync(join(ROOT, 'nginx/couchlog.conf'), 'utf8')
        .split('\n')
        .filter((l) => !/^\s*#/.test(l))
        .join('\n')
        .match(/\$\{(COUCHLOG_[A-Z_]+)\}/g),
    );
    for (const p of placeholders) assert.ok(p.slice(2, -1) in s.nginx.environment, p);
  });

  test('the Dockerfile builds in two stages and runs as a non-root user', () => {
    const docker = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    assert.equal(docker.match(/^FROM /gm)?.length, 2);
    const users = docker.match(/^USER (\S+)/gm) ?? [];
    assert.ok(users.length > 0 && !/root|^USER 0$/.test(users.at(-1)!), String(users));
    // Everything it copies from the build context exists.
    for (const m of docker.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of m[1]!.split(/\s+/)) assert.ok(existsSync(join(ROOT, src)), `COPY ${src}`);
    }
    assert.match(docker, /ENTRYPOINT \["node", "dist\/scripts\/couchlog\.js"\]/);
  });
});

describe('couchlog.compose.yml', { skip: SKIP }, () => {
  test('loads with the environment compose gives, and the ingress accepts its trust_proxy', async () => {
    const env = parseYaml(compose(['config'], ENV_EXAMPLE).stdout).services.ingress.environment as Record<string, string>;
    const { config } = loadConfig({ file: join(ROOT, 'couchlog.compose.yml'), env: { ...env, COUCHLOG_DATA: tmpdir(), COUCHLOG_CONFIG: undefined } });
    assert.equal(config.couchdb.url, 'http://couchdb:5984');
    assert.equal(config.ingress.host, '0.0.0.0');
    assert.deepEqual(config.ingress.trust_proxy, ['uniquelocal']);
    const app = await buildApp({ ...config, log_level: 'silent' });
    try {
      app.get('/_test/ip', async (req) => req.ip);
      await app.ready();
      // From a container address (nginx), X-Forwarded-For is believed...
      const fromNginx = await app.inject({ url: '/_test/ip', headers: { 'x-forwarded-for': '203.0.113.7' }, remoteAddress: '172.18.0.5' });
      assert.equal(fromNginx.body, '203.0.113.7');
      // ...from anywhere else it is not.
      const fromOutside = await app.inject({ url: '/_test/ip', headers: { 'x-forwarded-for': '203.0.113.7' }, remoteAddress: '198.51.100.9' });
      assert.equal(fromOutside.body, '198.51.100.9');
    } finally {
      await app.close();
    }
  });
});

describe('systemd units', { skip: SKIP }, () => {
  const units = readdirSync(UNITS_DIR).filter((f) => f.endsWith('.service'));

  test('an ingress and a correlator unit', () => {
    assert.deepEqual(units.sort(), ['couchlog-correlator.service', 'couchlog-ingress.service']);
  });

  test('systemd-analyze verify finds nothing to say', () => {
    const dir = mkdtempSync(join(tmpdir(), 'couchlog-units-'));
    try {
      for (const unit of units) {
        // verify checks that ExecStart's program exists: point it at this machine's node.
        writeFileSync(join(dir, unit), readFileSync(join(UNITS_DIR, unit), 'utf8').replaceAll('/usr/bin/node ', `${process.execPath} `));
      }
      const res = spawnSync('systemd-analyze', ['verify', ...units.map((u) => join(dir, u))], { encoding: 'utf8' });
      if (res.error) throw new Error(`systemd-analyze could not run (apt-get install systemd; .ci/run does): ${res.error.message}`);
      assert.equal(res.status, 0, res.stderr);
      // Unknown keys and bad values are only warnings (exit 0): none allowed.
      assert.equal(res.stderr.trim(), '');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const unit of ['couchlog-ingress.service', 'couchlog-correlator.service']) {
    test(`${unit}: hardened as in seed 001, exposure at most 2.5 by systemd-analyze security`, () => {
      const text = readFileSync(join(UNITS_DIR, unit), 'utf8');
      const directives = new Map<string, string[]>();
      for (const line of text.split('\n')) {
        const m = line.match(/^([A-Za-z]+)=(.*)$/);
        if (m) directives.set(m[1]!, [...(directives.get(m[1]!) ?? []), m[2]!]);
      }
      const one = (k: string) => directives.get(k)?.[0];
      assert.equal(one('User'), 'couchlog');
      assert.equal(one('Group'), 'couchlog');
      assert.equal(one('NoNewPrivileges'), 'true');
      assert.equal(one('ProtectSystem'), 'strict');
      assert.equal(one('ProtectHome'), 'true');
      assert.equal(one('Restart'), 'on-failure');
      assert.equal(one('LimitNOFILE'), '65536');
      assert.equal(one('ExecReload'), '/bin/kill -HUP $MAINPID');
      const command = unit === 'couchlog-ingress.service' ? 'ingress' : 'correlator';
      assert.match(one('ExecStart') ?? '', new RegExp(`/dist/scripts/couchlog\\.js ${command}$`));
      // The correlator runs with the larger young generation its throughput was measured with.
      if (command === 'correlator') assert.match(one('ExecStart') ?? '', /node --max-semi-space-size=\d+ /);
      // Write access only where needed: the ingress writes nothing, the correlator its data folder.
      assert.deepEqual(directives.get('ReadWritePaths') ?? [], command === 'ingress' ? [] : ['/var/lib/couchlog']);
      assert.equal(directives.get('MemoryDenyWriteExecute'), undefined, 'V8 needs W+X memory');

      const res = spawnSync('systemd-analyze', ['security', '--offline=true', '--threshold=25', join(UNITS_DIR, unit)], { encoding: 'utf8' });
      const score = Number(res.stdout.match(/Overall exposure level for \S+: ([\d.]+)/)?.[1]);
      assert.ok(score <= 2.5, `exposure ${score}\n${res.stdout.slice(-500)}${res.stderr}`);
    });
  }
});

// What ExecReload does: SIGHUP must not end either service.
describe('SIGHUP (systemctl reload)', { skip: SKIP }, () => {
  let stack: Stack;
  let dir: string;
  const children: ChildProcess[] = [];
  before(async () => {
    stack = await startStack();
    dir = mkdtempSync(join(tmpdir(), 'couchlog-reload-'));
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await stack?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function spawnCommand(command: string, env: Record<string, string>, yaml = 'clickhouse: {enabled: false}\n'): { child: ChildProcess; output: () => string } {
    writeFileSync(join(dir, `${command}.yml`), yaml);
    let output = '';
    const child = spawn(process.execPath, [CLI, '--config', join(dir, `${command}.yml`), command], {
      env: {
        PATH: process.env.PATH,
        COUCHLOG_DATA: dir,
        COUCHLOG_LOG_LEVEL: 'info',
        COUCHDB_URL: stack.couchUrl,
        COUCHDB_PASSWORD: stack.config.couchdb.admin.password!,
        COUCHLOG_WRITER_PASSWORD: stack.config.users.writer.password!,
        COUCHLOG_READER_PASSWORD: stack.config.users.reader.password!,
        COUCHLOG_CORRELATOR_PASSWORD: stack.config.users.correlator.password!,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    child.stdout!.on('data', (d) => (output += d));
    child.stderr!.on('data', (d) => (output += d));
    return { child, output: () => output };
  }

  async function run(command: string, env: Record<string, string>, readyUrl: string): Promise<{ child: ChildProcess; output: () => string }> {
    const { child, output } = spawnCommand(command, env);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`couchlog ${command} exited ${child.exitCode}:\n${output()}`);
      if (Date.now() > deadline) throw new Error(`couchlog ${command} did not answer at ${readyUrl}:\n${output()}`);
      const ok = await fetch(readyUrl).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) return { child, output };
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async function reloadAndStop(child: ChildProcess, url: string, output: () => string): Promise<void> {
    child.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(child.exitCode, null, `died of SIGHUP:\n${output()}`);
    assert.equal(child.signalCode, null);
    assert.equal((await http(url)).status, 200);
    assert.match(output(), /SIGHUP/);
    const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0, output());
  }

  test('the ingress keeps serving after SIGHUP, and SIGTERM stops it cleanly', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/_couchlog/health`;
    const { child, output } = await run('ingress', { COUCHLOG_INGRESS_PORT: String(port) }, url);
    await reloadAndStop(child, url, output);
  });

  test('during startup too: SIGHUP does not end the correlator, and SIGTERM waits for the start, then stops it cleanly', async () => {
    // Found by a code review: the handlers came after startup, and logrotate's reload after a
    // reboot (Persistent timer) met a starting correlator: it died of SIGHUP, which systemd
    // counts as a clean exit (no restart). A ClickHouse that accepts and never answers holds the start.
    const held: Socket[] = [];
    let connected!: () => void;
    const reached = new Promise<void>((ok) => (connected = ok));
    const blackHole = createServer((socket) => {
      held.push(socket);
      connected();
    });
    await new Promise<void>((ok) => blackHole.listen(0, '127.0.0.1', ok));
    try {
      const chPort = (blackHole.address() as AddressInfo).port;
      const port = await freePort();
      const { child, output } = spawnCommand(
        'correlator',
        { COUCHLOG_CORRELATOR_METRICS_PORT: String(port) },
        `clickhouse: {enabled: true, url: "http://127.0.0.1:${chPort}"}\ncorrelator: {outputs: {clickhouse: {timeout_ms: 4000}}}\n`,
      );
      await Promise.race([reached, new Promise((_, no) => setTimeout(() => no(new Error(`never asked ClickHouse:\n${output()}`)), 30_000))]);
      child.kill('SIGHUP');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(child.exitCode, null, `died of SIGHUP while starting:\n${output()}`);
      assert.equal(child.signalCode, null, output());
      const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
      child.kill('SIGTERM');
      assert.equal(await exited, 0, output());
      assert.match(output(), /SIGHUP/);
    } finally {
      for (const s of held) s.destroy();
      await new Promise<void>((ok) => blackHole.close(() => ok()));
    }
  });

  test('the correlator keeps running after SIGHUP (it reopens its file sink), and SIGTERM stops it cleanly', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/health`;
    const { child, output } = await run('correlator', { COUCHLOG_CORRELATOR_METRICS_PORT: String(port) }, url);
    await reloadAndStop(child, url, output);
  });
});
