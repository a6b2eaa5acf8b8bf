// A server run as a supervised child process: started, probed over HTTP
// until it answers, restarted with a growing delay when it dies, stopped
// with SIGTERM (then SIGKILL). Used for the embedded CouchDB-compatible
// server and the embedded ClickHouse.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { OperationError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';

export interface ProcessSpec {
  /** For messages: "the embedded server". */
  label: string;
  command: string;
  args: string[];
  cwd: string;
  /** Where it answers HTTP once up. */
  probeUrl: string;
  /** Called before every (re)start: write config files and folders. */
  prepare: () => void;
  /** Where its own log is, for error messages. */
  logFile: string;
  restartDelayMs: number;
  restartDelayMaxMs: number;
  startTimeoutMs: number;
  logger: Logger;
  /** Lines on its stderr that are routine, not warnings (e.g. "Logging warning to ..."). */
  routineStderr?: RegExp;
  /**
   * Liveness: once up, the probe URL is asked every `intervalMs`; after
   * `failures` probes in a row without an answer within `timeoutMs`, the
   * process is killed (SIGKILL: a frozen process ignores SIGTERM) and
   * restarted like a crash. Default 5 s / 2 s / 3.
   */
  liveness?: { intervalMs: number; timeoutMs: number; failures: number };
}

const DEFAULT_LIVENESS = { intervalMs: 5000, timeoutMs: 2000, failures: 3 };

/** A run shorter than this counts as a crash loop: the restart delay grows. */
const STABLE_RUN_MS = 30_000;

export class SupervisedProcess extends EventEmitter {
  private child: ChildProcess | null = null;
  private stopping = false;
  private restartDelay: number;
  private restartTimer: NodeJS.Timeout | null = null;
  private startedAt = 0;
  private livenessTimer: NodeJS.Timeout | null = null;
  restarts = 0;

  constructor(private readonly spec: ProcessSpec) {
    super();
    this.restartDelay = spec.restartDelayMs;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the process and resolves once it answers HTTP. */
  async start(): Promise<void> {
    this.stopping = false;
    if (await this.answers()) {
      throw new OperationError(`${this.spec.probeUrl} already answers: is another couchlog (or server) using its port?`);
    }
    this.spawnChild();
    try {
      await this.waitUntilUp();
      this.watchLiveness();
    } catch (err) {
      // A server that never answered must not linger holding its ports.
      await this.stop(2000);
      throw err;
    }
  }

  private static readonly running = new Set<ChildProcess>();
  private static exitHookInstalled = false;

  /** Children have their own process group: if couchlog exits without stopping them, they go too. */
  private static track(child: ChildProcess): void {
    SupervisedProcess.running.add(child);
    child.once('exit', () => SupervisedProcess.running.delete(child));
    if (SupervisedProcess.exitHookInstalled) return;
    SupervisedProcess.exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of SupervisedProcess.running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    });
  }

  private spawnChild(): void {
    this.spec.prepare();
    // Its own process group: Ctrl-C in a terminal signals the foreground
    // group, and the servers must stop after couchlog's orderly shutdown
    // (intake stopped, queues flushed, checkpoints saved), not before it.
    const child = spawn(this.spec.command, this.spec.args, { cwd: this.spec.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child = child;
    SupervisedProcess.track(child);
    this.startedAt = Date.now();
    const log = this.spec.logger;
    // Output is logged a whole line at a time: a server may write one
    // line in several pieces ("Logging", " warning", " to ..."), and a
    // routine line must be recognised as a whole.
    eachLine(child.stdout, (line) => log.debug({ out: line }, `${this.spec.label} stdout`));
    eachLine(child.stderr, (line) => {
      if (this.spec.routineStderr?.test(line)) log.debug({ err: line }, `${this.spec.label} stderr`);
      else log.warn({ err: line }, `${this.spec.label} stderr`);
    });
    child.on('error', (err) => log.error({ err: err.message }, `${this.spec.label} could not be started`));
    child.on('exit', (code, signal) => this.onExit(child, code, signal));
    log.info({ child_pid: child.pid, url: this.spec.probeUrl }, `${this.spec.label} started`);
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = null;
    if (this.stopping) return;
    const stable = Date.now() - this.startedAt > STABLE_RUN_MS;
    this.restartDelay = stable ? this.spec.restartDelayMs : Math.min(this.restartDelay * 2, this.spec.restartDelayMaxMs);
    this.spec.logger.error({ code, signal, restartInMs: this.restartDelay }, `${this.spec.label} died; restarting`);
    this.emit('died', { code, signal });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopping) return;
      this.restarts += 1;
      this.spawnChild();
      const restarted = this.child;
      this.waitUntilUp().then(
        () => {
          this.watchLiveness();
          this.emit('restarted');
        },
        (err: Error) => {
          // Left as it is, a child that never answers would be watched by
          // nobody: killed, it is restarted like any crash (its exit does it).
          this.spec.logger.error({ err: err.message }, `${this.spec.label} did not come back; killing it to restart it`);
          if (restarted && this.child === restarted && !this.stopping) restarted.kill('SIGKILL');
        },
      );
    }, this.restartDelay);
  }

  /** Probes the running child; kills it when it stops answering (a frozen process never exits by itself). */
  private watchLiveness(): void {
    const live = this.spec.liveness ?? DEFAULT_LIVENESS;
    if (this.livenessTimer) clearTimeout(this.livenessTimer);
    const child = this.child;
    let missed = 0;
    const tick = async () => {
      this.livenessTimer = null;
      if (this.stopping || this.child !== child || !child) return;
      if (await this.answers(live.timeoutMs)) missed = 0;
      else missed += 1;
      if (this.stopping || this.child !== child) return;
      if (missed >= live.failures) {
        this.spec.logger.error({ child_pid: child.pid, missed }, `${this.spec.label} stopped answering; killing it to restart it`);
        child.kill('SIGKILL');
        return;
      }
      this.livenessTimer = setTimeout(tick, live.intervalMs);
      this.livenessTimer.unref();
    };
    this.livenessTimer = setTimeout(tick, live.intervalMs);
    this.livenessTimer.unref();
  }

  private async answers(timeoutMs = 1000): Promise<boolean> {
    try {
      const res = await request(this.spec.probeUrl, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
      await res.body.dump();
      return true;
    } catch {
      return false;
    }
  }

  private async waitUntilUp(): Promise<void> {
    const deadline = Date.now() + this.spec.startTimeoutMs;
    while (Date.now() < deadline) {
      if (this.child === null && !this.stopping && this.restartTimer === null) {
        throw new OperationError(`${this.spec.label} exited during start; see ${this.spec.logFile}`);
      }
      if (await this.answers()) return;
      await sleep(100);
    }
    throw new OperationError(`${this.spec.label} did not answer within ${this.spec.startTimeoutMs} ms; see ${this.spec.logFile}`);
  }

  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    if (this.livenessTimer) clearTimeout(this.livenessTimer);
    this.livenessTimer = null;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
    this.child = null;
    this.spec.logger.info(`${this.spec.label} stopped`);
  }
}

/** Calls `fn` with each non-empty line of a stream (the last one even without a newline). */
function eachLine(stream: NodeJS.ReadableStream | null, fn: (line: string) => void): void {
  if (!stream) return;
  let rest = '';
  stream.on('data', (d: Buffer) => {
    const lines = (rest + d.toString()).split('\n');
    rest = lines.pop()!;
    for (const line of lines) if (line.trim() !== '') fn(line.trimEnd());
  });
  stream.on('end', () => {
    if (rest.trim() !== '') fn(rest.trimEnd());
    rest = '';
  });
}
