// The embedded CouchDB-compatible server: PouchDB Server in a child process,
// supervised. It must be a child, not a library in our process, because some
// requests crash it outright (an anonymous `PUT /<db>`, `_changes` with a
// `_selector` filter): a crash must cost a restart, not the whole service.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EventEmitter } from 'node:events';
import { request } from 'undici';
import type { Logger } from '../logger.js';
import { CommandError } from '../errors.js';

export interface EmbeddedOptions {
  dataDir: string;
  host: string;
  port: number;
  restartDelayMs: number;
  restartDelayMaxMs: number;
  startTimeoutMs: number;
  logger: Logger;
}

/** A run shorter than this counts as a crash loop: the restart delay grows. */
const STABLE_RUN_MS = 30_000;

export class EmbeddedCouch extends EventEmitter {
  private child: ChildProcess | null = null;
  private stopping = false;
  private restartDelay: number;
  private restartTimer: NodeJS.Timeout | null = null;
  private startedAt = 0;
  restarts = 0;

  constructor(private readonly opts: EmbeddedOptions) {
    super();
    this.restartDelay = opts.restartDelayMs;
  }

  get url(): string {
    return `http://${this.opts.host}:${this.opts.port}`;
  }

  get dir(): string {
    return join(this.opts.dataDir, 'couchdb');
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the server and resolves once it answers HTTP. */
  async start(): Promise<void> {
    this.stopping = false;
    if (await this.answers()) {
      throw new CommandError(`port ${this.opts.port} on ${this.opts.host} is already in use (is another couchlog running?)`, 1);
    }
    this.spawnChild();
    await this.waitUntilUp();
  }

  private spawnChild(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const configFile = join(this.dir, 'config.json');
    this.prepareConfig(configFile);
    const main = fileURLToPath(new URL('./pouchdb-server-main.cjs', import.meta.url));
    const args = [main, '--host', this.opts.host, '--port', String(this.opts.port), '--dir', this.dir, '--config', configFile, '--no-stdout-logs', '--no-color'];
    const child = spawn(process.execPath, args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.startedAt = Date.now();
    const log = this.opts.logger;
    child.stdout?.on('data', (d: Buffer) => log.debug({ out: d.toString().trimEnd() }, 'pouchdb-server'));
    child.stderr?.on('data', (d: Buffer) => log.warn({ err: d.toString().trimEnd() }, 'pouchdb-server stderr'));
    child.on('exit', (code, signal) => this.onExit(child, code, signal));
    log.info({ pid: child.pid, url: this.url, dir: this.dir }, 'embedded CouchDB-compatible server started');
  }

  /** Keeps PouchDB Server's own log in the data folder and quiet. */
  private prepareConfig(file: string): void {
    let config: Record<string, Record<string, unknown>> = {};
    if (existsSync(file)) {
      try {
        config = JSON.parse(readFileSync(file, 'utf8')) as typeof config;
      } catch {
        throw new CommandError(`${file} is not valid JSON; fix or remove it`);
      }
    }
    config.log = { file: join(this.dir, 'pouchdb-server.log'), level: 'warning', ...config.log };
    writeFileSync(file, JSON.stringify(config, null, 2), { mode: 0o600 });
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = null;
    if (this.stopping) return;
    const ranFor = Date.now() - this.startedAt;
    this.restartDelay = ranFor > STABLE_RUN_MS ? this.opts.restartDelayMs : Math.min(this.restartDelay * 2, this.opts.restartDelayMaxMs);
    const delay = ranFor > STABLE_RUN_MS ? this.opts.restartDelayMs : this.restartDelay;
    this.opts.logger.error({ code, signal, restartInMs: delay }, 'embedded server died; restarting');
    this.emit('died', { code, signal });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopping) return;
      this.restarts += 1;
      this.spawnChild();
      this.waitUntilUp().then(
        () => this.emit('restarted'),
        (err: Error) => this.opts.logger.error({ err: err.message }, 'embedded server did not come back'),
      );
    }, delay);
  }

  private async answers(): Promise<boolean> {
    try {
      const res = await request(`${this.url}/`, { headersTimeout: 1000, bodyTimeout: 1000 });
      await res.body.dump();
      return true;
    } catch {
      return false;
    }
  }

  private async waitUntilUp(): Promise<void> {
    const deadline = Date.now() + this.opts.startTimeoutMs;
    while (Date.now() < deadline) {
      if (this.child === null && !this.stopping && this.restartTimer === null) {
        throw new CommandError('the embedded server exited during start; see ' + join(this.dir, 'pouchdb-server.log'));
      }
      if (await this.answers()) return;
      await sleep(100);
    }
    throw new CommandError(`the embedded server did not answer within ${this.opts.startTimeoutMs} ms`);
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
    this.child = null;
    this.opts.logger.info('embedded server stopped');
  }
}
