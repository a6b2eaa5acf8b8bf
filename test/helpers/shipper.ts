// Helpers for the shipper's integration tests: fail2ban lines, running
// the real commands as child processes (never spawnSync: the ingress under
// test lives in the test process and must keep answering), reading back
// what a database holds, and an ingress that fails on cue.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { http, type Stack } from './stack.js';

export const ROOT = resolve(fileURLToPath(import.meta.url), '../../../..');
export const SHIP = join(ROOT, 'dist/scripts/ship.js');
export const JSONFORMAT = join(ROOT, 'dist/scripts/jsonformat.js');
export const COUCHLOG = join(ROOT, 'dist/scripts/couchlog.js');
export const SEED_SCHEMA = '$date $hour _ _ _ \\[$process\\] _ $ip';

/** Line n of a fail2ban log: a Ban of a distinct IP, on one of `days` days from 2017-06-11. */
export function banLine(n: number, days = 4, action = 'Ban'): string {
  const day = 11 + (n % days);
  const ms = String(n % 1000).padStart(3, '0');
  const s = String(Math.floor(n / 1000) % 60).padStart(2, '0');
  const m = String(Math.floor(n / 60000) % 60).padStart(2, '0');
  return `2017-06-${day} 17:${m}:${s},${ms} fail2ban.actions        [1112]: NOTICE  [sshd] ${action} 10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Running {
  child: ChildProcess;
  done: Promise<RunResult>;
}

export function start(args: string[], opts: { stdin?: string; env?: NodeJS.ProcessEnv; cwd?: string; command?: string } = {}): Running {
  const child = spawn(opts.command ?? process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env, cwd: opts.cwd });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<RunResult>((ok, fail) => {
    child.on('error', fail);
    child.on('close', (code) => ok({ code, stdout, stderr }));
  });
  child.stdin!.end(opts.stdin ?? '');
  return { child, done };
}

/** Runs couchlog-ship to completion. */
export function ship(args: string[], opts: { stdin?: string; cwd?: string } = {}): Promise<RunResult> {
  return start([SHIP, ...args], opts).done;
}

/** A shell command line (sh -c), as cron would run it. */
export function shell(line: string, env: NodeJS.ProcessEnv = process.env): Promise<RunResult> {
  return start(['-c', line], { command: '/bin/sh', env }).done;
}

/** Every non-design document of a database (admin, straight from CouchDB). */
export async function allDocs(stack: Stack, db: string): Promise<Array<Record<string, any>>> {
  const res = await http(`${stack.couchUrl}/${db}/_all_docs?include_docs=true`, { headers: { authorization: stack.auth.admin } });
  if (res.status !== 200) throw new Error(`${db}: ${res.status} ${res.text}`);
  return (res.json.rows as Array<{ id: string; doc: Record<string, any> }>).filter((r) => !r.id.startsWith('_design/')).map((r) => r.doc);
}

/** Non-design documents in a database, cheap enough to poll. */
export async function docCount(stack: Stack, db: string): Promise<number> {
  const headers = { authorization: stack.auth.admin };
  const res = await http(`${stack.couchUrl}/${db}`, { headers });
  if (res.status !== 200) return 0;
  const design = await http(`${stack.couchUrl}/${db}/_all_docs?startkey=%22_design%2F%22&endkey=%22_design0%22`, { headers });
  return (res.json.doc_count as number) - (design.json.rows as unknown[]).length;
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000, everyMs = 50): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The non-blank lines of a text. */
export function contentLines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}

export interface IngressGateway {
  /** Base URL: use as the ingress's (`${url}/log_<app>`). */
  url: string;
  /** Requests it has received so far. */
  requests(): number;
  /** Stops it; requests still held are cut. */
  close(): Promise<void>;
}

/**
 * An ingress that fails on cue, standing between a shipper and the real one
 * (`upstream`): the first `forward` requests go through, so their answers are
 * real acknowledgments; every later one is answered 503 (`unavailable`: the
 * ingress up but CouchDB gone, retried until --retry-for gives up) or never
 * answered (`hang`: a stalled ingress, to interrupt or kill the run while a
 * request is in flight).
 */
export async function ingressGateway(upstream: string, o: { forward: number; then: 'unavailable' | 'hang' }): Promise<IngressGateway> {
  let requests = 0;
  const server = createServer((req, res) => {
    if (++requests > o.forward) {
      if (o.then === 'hang') return;
      req.resume();
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'service_unavailable', reason: 'CouchDB is not reachable (test gateway)', code: 'COUCHDB_UNAVAILABLE' }));
      return;
    }
    const up = httpRequest(`${upstream}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    req.pipe(up);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}
