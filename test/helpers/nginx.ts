// A real nginx (Debian's package) for a test: the project's files in
// nginx/ rendered the way docs/deployment.md says (envsubst of the
// COUCHLOG_* placeholders), with the test's loopback ports instead of 80 and
// 443, a self-signed certificate made with openssl, and every path nginx
// writes (pid, temporary files, logs) inside a temporary folder.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(import.meta.url), '../../../..');
export const NGINX_DIR = join(ROOT, 'nginx');

export function nginxBinary(): string {
  for (const candidate of ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx']) {
    if (spawnSync(candidate, ['-v']).status === 0) return candidate;
  }
  throw new Error('nginx is not installed: apt-get install nginx (.ci/run does)');
}

/** A temporary folder nginx's workers (user nobody when run as root) can enter. */
export function nginxWorkDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'couchlog-nginx-'));
  chmodSync(dir, 0o755);
  return dir;
}

export function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const res = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1', '-keyout', key, '-out', cert], {
    encoding: 'utf8',
  });
  if (res.status !== 0) throw new Error(`openssl failed: ${res.error?.message ?? res.stderr}`);
  return { cert, key };
}

export interface RenderOptions {
  /** Values of the file's ${COUCHLOG_*} placeholders. */
  vars: Record<string, string>;
  /** Loopback ports instead of 80 and 443. */
  httpPort: number;
  httpsPort: number;
}

/**
 * Renders a project nginx file: the placeholders as envsubst would, then
 * the listen lines moved to loopback test ports (IPv6 ones dropped). Every
 * substitution must find what it expects, so a changed file fails here
 * loudly instead of being tested half-rendered.
 */
export function renderNginxFile(name: string, opts: RenderOptions): string {
  let text = readFileSync(join(NGINX_DIR, name), 'utf8');
  const config = (t: string) =>
    t
      .split('\n')
      .filter((l) => !/^\s*#/.test(l))
      .join('\n');
  for (const [key, value] of Object.entries(opts.vars)) {
    if (!config(text).includes(`\${${key}}`)) throw new Error(`${name}: no \${${key}} placeholder`);
    text = text.replaceAll(`\${${key}}`, value);
  }
  const left = config(text).match(/\$\{[A-Z_]+\}/g);
  if (left) throw new Error(`${name}: placeholders left unfilled: ${left.join(', ')}`);
  const swap = (from: RegExp, to: string, count: number) => {
    const n = (text.match(from) ?? []).length;
    if (n !== count) throw new Error(`${name}: expected ${count} match(es) of ${from}, found ${n}`);
    text = text.replace(from, to);
  };
  swap(/^(\s*)listen 80;$/gm, `$1listen 127.0.0.1:${opts.httpPort};`, 1);
  swap(/^(\s*)listen 443 ssl;$/gm, `$1listen 127.0.0.1:${opts.httpsPort} ssl;`, 1);
  swap(/^\s*listen \[::\]:(80|443)( ssl)?;\n/gm, '', 2);
  return text;
}

/** nginx's main configuration: the given files included in `http {}`, everything nginx writes under dir. */
export function mainConfig(dir: string, includes: string[]): string {
  return [
    'worker_processes 1;',
    `pid ${join(dir, 'nginx.pid')};`,
    'events { worker_connections 256; }',
    'http {',
    `  client_body_temp_path ${join(dir, 'client_body')};`,
    `  proxy_temp_path ${join(dir, 'proxy')};`,
    `  fastcgi_temp_path ${join(dir, 'fastcgi')};`,
    `  uwsgi_temp_path ${join(dir, 'uwsgi')};`,
    `  scgi_temp_path ${join(dir, 'scgi')};`,
    `  access_log ${join(dir, 'access.log')};`,
    ...includes.map((f) => `  include ${f};`),
    '}',
    '',
  ].join('\n');
}

/** `nginx -t` on a main configuration in dir (relative includes resolve there, as in /etc/nginx). */
export function nginxTest(dir: string, confFile: string): { status: number | null; output: string } {
  const res = spawnSync(nginxBinary(), ['-t', '-p', `${dir}/`, '-c', confFile, '-e', 'stderr'], { encoding: 'utf8' });
  return { status: res.status, output: `${res.stdout}${res.stderr}` };
}

export interface RunningNginx {
  output(): string;
  stop(): Promise<void>;
}

/** Starts nginx in the foreground as a child process and waits until every port accepts connections. */
export async function startNginx(dir: string, confFile: string, ports: number[]): Promise<RunningNginx> {
  let output = '';
  const child: ChildProcess = spawn(nginxBinary(), ['-p', `${dir}/`, '-c', confFile, '-e', 'stderr', '-g', 'daemon off;'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  const deadline = Date.now() + 10_000;
  // nginx writes its pid file only once every listen socket is bound: a
  // port answering before that may belong to another process.
  const pidFile = join(dir, 'nginx.pid');
  while (!(existsSync(pidFile) && readFileSync(pidFile, 'utf8').trim() === String(child.pid))) {
    if (child.exitCode !== null) throw new Error(`nginx exited ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) throw new Error(`nginx did not start in 10 s:\n${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  for (const port of ports) {
    while (!(await accepts(port))) {
      if (child.exitCode !== null) throw new Error(`nginx exited ${child.exitCode}:\n${output}`);
      if (Date.now() > deadline) throw new Error(`nginx is not listening on ${port} after 10 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        // SIGQUIT: graceful stop (finish requests, remove the pid file).
        child.kill('SIGQUIT');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      ok(true);
    });
    socket.once('error', () => ok(false));
  });
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export interface RawResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

/**
 * One request with the path sent byte for byte as given (fetch would
 * resolve `..`, `%2e%2e` and `./` before sending, which hides the tricks a
 * proxy must resist). HTTPS accepts the test's self-signed certificate.
 */
export function rawRequest(
  url: string,
  init: { method?: string; path: string; headers?: Record<string, string>; body?: string | Buffer } = { path: '/' },
): Promise<RawResult> {
  const base = new URL(url);
  const secure = base.protocol === 'https:';
  const request = secure ? httpsRequest : httpRequest;
  return new Promise((ok, fail) => {
    const req = request(
      {
        host: base.hostname,
        port: base.port,
        method: init.method ?? 'GET',
        path: init.path,
        headers: { host: 'localhost', ...init.headers },
        agent: false,
        ...(secure ? { rejectUnauthorized: false, servername: 'localhost' } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          ok({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', fail);
      },
    );
    req.on('error', fail);
    // A hung answer fails the test with its request instead of stalling the run.
    req.setTimeout(30_000, () => req.destroy(new Error(`no answer in 30 s: ${init.method ?? 'GET'} ${url}${init.path}`)));
    req.end(init.body);
  });
}

/** Writes a file into dir and returns its path. */
export function writeInto(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}
