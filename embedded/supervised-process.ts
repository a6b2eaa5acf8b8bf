// A server run as a supervised child process: started, probed over HTTP
// until it answers, restarted with a growing delay when it dies, stopped
// with SIGTERM (then SIGKILL). Used for the embedded CouchDB-compatible
// server and the embedded ClickHouse.
//
// What must stay true: only the supervisor's own child is ever taken for
// the server. Any local user can bind a port the child has left (it died),
// and the ingress and the correlator send their credentials to whatever
// listens there. So "up" means that the socket listening on the port is
// the child's (or the one couchlog holds for it: held-port.ts), as /proc
// tells (port-holder.ts), and that the child answers HTTP; a port held by
// another process ends the supervision for good (`refused`), and whoever
// runs the supervisor stops.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, rmSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { OperationError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { HeldPort } from './held-port.js';
import { recordPid, stopOrphans } from './orphans.js';
import { portHolder, socketInodes } from './port-holder.js';
import type { PortHolder } from '../lib/listening-sockets.js';

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
  /**
   * The supervisor binds the probe URL's port itself and gives every child
   * the socket as file descriptor 3, which the child must listen on: the
   * port then never falls free between a crash and the restart.
   */
  holdPort?: boolean;
  /** The signal the child gets should couchlog die without stopping it (util-linux's setpriv --pdeathsig, when installed). */
  parentDeathSignal?: 'SIGKILL' | 'SIGTERM';
  /**
   * A child left running by a couchlog that was killed outright: files that
   * may name its pid (the supervisor writes the first at each start), and
   * the argument only a child of this data folder has (its config file).
   * Such a process is killed before a new child starts.
   */
  orphans?: { pidFiles: string[]; marker: string };
}

const DEFAULT_LIVENESS = { intervalMs: 5000, timeoutMs: 2000, failures: 3 };

/** A run shorter than this counts as a crash loop: the restart delay grows. */
const STABLE_RUN_MS = 30_000;

/** The children's umask: what they write (PouchDB Server rewrites its config.json, cookie secret and admin hash included, at every start) is for their user only. */
const CHILD_UMASK = 0o077;

/** util-linux's setpriv (Debian: package util-linux, always installed); null when missing. */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) ?? null;

export class SupervisedProcess extends EventEmitter {
  private child: ChildProcess | null = null;
  private stopping = false;
  private restartDelay: number;
  private restartTimer: NodeJS.Timeout | null = null;
  private startedAt = 0;
  private livenessTimer: NodeJS.Timeout | null = null;
  /** The probe URL's host and port; `address`: the IP address the host resolved to at start. */
  private readonly host: string;
  private readonly port: number;
  private address = '';
  private held: HeldPort | null = null;
  private refusal: OperationError | null = null;
  private onRefused: (err: OperationError) => void = () => {};
  /**
   * Settles (never rejects) once another process holds the port: the
   * supervisor has stopped its child and will not start another. Whoever
   * runs it must stop too; nothing may be sent to that port.
   */
  readonly refused: Promise<OperationError>;
  restarts = 0;

  constructor(private readonly spec: ProcessSpec) {
    super();
    this.restartDelay = spec.restartDelayMs;
    const url = new URL(spec.probeUrl);
    this.host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = Number(url.port || 80);
    this.refused = new Promise((resolve) => (this.onRefused = resolve));
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts the process and resolves once it answers HTTP. */
  async start(): Promise<void> {
    if (this.refusal) throw this.refusal;
    this.stopping = false;
    await this.stopOrphans();
    this.address = isIP(this.host) ? this.host : (await lookup(this.host)).address;
    await this.claimPort();
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

  /** Kills a child a previous couchlog left running (killed outright): it holds the port and the data. */
  private async stopOrphans(): Promise<void> {
    if (!this.spec.orphans) return;
    const stopped = await stopOrphans(this.spec.orphans.pidFiles, this.spec.orphans.marker);
    if (stopped.length > 0) {
      this.spec.logger.warn(
        { pids: stopped },
        `${this.spec.label}: killed the one a previous couchlog left running (that couchlog was killed without stopping it)`,
      );
    }
  }

  /** Makes sure the port is free (and, with `holdPort`, takes it); throws when another process has it. */
  private async claimPort(): Promise<void> {
    const taken = new OperationError(
      `${this.spec.probeUrl} already answers or listens, and not as this couchlog's ${this.spec.label}: is another couchlog (or server) using its port? (ss -ltnp 'sport = :${this.port}' names the process)`,
    );
    if (this.spec.holdPort && !this.held) {
      try {
        this.held = HeldPort.bind(this.address, this.port);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE') throw taken;
        throw new OperationError(`cannot bind ${this.address} port ${this.port} for the ${this.spec.label}: ${code}`);
      }
      if (this.held) return;
      this.spec.logger.warn(`${this.spec.label}: this Node cannot hand a bound socket to the child; the child binds its port itself`);
    }
    const holder = this.holder();
    if (holder === 'unknown') {
      this.spec.logger.warn(`${this.spec.label}: /proc/net/tcp cannot be read, so whichever process answers on port ${this.port} is taken for the server`);
    }
    if (holder === 'other' || (holder === 'unknown' && (await this.answers()))) throw taken;
  }

  /** Who holds the port: `ours` is the child's socket or the one couchlog holds for it. */
  private holder(): PortHolder {
    const pid = this.child?.pid;
    return portHolder(this.address, this.port, () => {
      const ours = pid === undefined ? new Set<number>() : socketInodes(pid);
      if (this.held) ours.add(this.held.inode);
      return ours;
    });
  }

  /**
   * Ends the supervision for good: another process holds the port, so the
   * server is not ours and nothing may be sent there. Returns the error
   * `refused` settles with.
   */
  private refuse(): OperationError {
    if (this.refusal) return this.refusal;
    const err = new OperationError(
      `another process holds port ${this.port} of the ${this.spec.label} (${this.spec.probeUrl}), which is not what listens there: ` +
        `nothing is sent to it, and couchlog stops; free the port (ss -ltnp 'sport = :${this.port}' names the process), then start couchlog again`,
    );
    this.refusal = err;
    this.spec.logger.error({ port: this.port }, err.message);
    const settle = () => {
      this.onRefused(err);
      this.emit('refused', err);
    };
    void this.stop(2000).then(settle, settle);
    return err;
  }

  /** The command line to spawn: the server's own, under setpriv when the child must die with couchlog. */
  private commandLine(): [string, string[]] {
    const signal = this.spec.parentDeathSignal;
    if (!signal) return [this.spec.command, this.spec.args];
    if (SETPRIV === null) {
      if (this.restarts === 0)
        this.spec.logger.warn(
          `${this.spec.label}: setpriv (util-linux) is not installed: if couchlog is killed outright, this server keeps running until the next couchlog start stops it`,
        );
      return [this.spec.command, this.spec.args];
    }
    return [SETPRIV, ['--pdeathsig', signal.replace(/^SIG/, ''), '--', this.spec.command, ...this.spec.args]];
  }

  private spawnChild(): void {
    this.spec.prepare();
    const [command, args] = this.commandLine();
    const stdio: StdioOptions = ['ignore', 'pipe', 'pipe', ...(this.held ? [this.held.fd] : [])];
    // The umask is inherited at the fork, inside this synchronous call; files
    // couchlog's own threads create meanwhile are only made more private.
    const umask = process.umask(CHILD_UMASK);
    let child: ChildProcess;
    try {
      // Its own process group: Ctrl-C in a terminal signals the foreground
      // group, and the servers must stop after couchlog's orderly shutdown
      // (intake stopped, queues flushed, checkpoints saved), not before it.
      child = spawn(command, args, { cwd: this.spec.cwd, stdio, detached: true });
    } finally {
      process.umask(umask);
    }
    this.child = child;
    SupervisedProcess.track(child);
    if (this.spec.orphans && child.pid !== undefined) recordPid(this.spec.orphans.pidFiles[0]!, child.pid);
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
      // Someone took the port while the child was down: a child started now
      // could not bind it, and the probe must not take the taker for it.
      if (this.holder() === 'other') {
        this.refuse();
        return;
      }
      this.restarts += 1;
      this.spawnChild();
      const restarted = this.child;
      this.waitUntilUp().then(
        () => {
          this.watchLiveness();
          this.emit('restarted');
        },
        (err: Error) => {
          if (this.stopping) return; // refused, or stopped meanwhile
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
      const state = await this.probe(live.timeoutMs);
      if (state === 'foreign') {
        this.refuse();
        return;
      }
      if (state === 'up') missed = 0;
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

  /**
   * `up`: the port is ours and the child answered HTTP; `foreign`: another
   * process holds the port. Nothing is sent to a port that is not ours.
   */
  private async probe(timeoutMs = 1000): Promise<'up' | 'down' | 'foreign'> {
    const before = this.holder();
    if (before === 'other') return 'foreign';
    if (before === 'none') return 'down';
    if (!(await this.answers(timeoutMs))) return 'down';
    // Still ours once answered: the child may have died in between.
    const after = this.holder();
    return after === 'other' ? 'foreign' : after === 'none' ? 'down' : 'up';
  }

  /** Whether anything answers HTTP on the probe URL (with no credentials: it may not be ours). */
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
      if (this.refusal) throw this.refusal;
      if (this.stopping) throw new OperationError(`${this.spec.label} was stopped while starting`);
      if (this.child === null && this.restartTimer === null) {
        throw new OperationError(`${this.spec.label} exited during start; see ${this.spec.logFile}`);
      }
      const state = await this.probe();
      if (state === 'foreign') throw this.refuse();
      if (state === 'up') return;
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
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      this.spec.logger.info(`${this.spec.label} stopped`);
    }
    if (this.child === child) this.child = null;
    // Stopped in order: the port is free again, and there is no orphan to find.
    this.held?.close();
    this.held = null;
    if (this.spec.orphans) rmSync(this.spec.orphans.pidFiles[0]!, { force: true });
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
