// A server a couchlog left running when it was killed outright (kill -9,
// the OOM killer): found through the pid files in its own data folder and
// stopped before a new one starts, since it holds the port and the data.
// Only a live process whose command line has our own marker (the path of
// the config file in this data folder) as one of its arguments: never a
// process that merely took over a recorded pid.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { listenersOn } from '../lib/listening-sockets.js';
import { socketInodes } from './port-holder.js';

/** The argv of a live process; null when it is gone, a zombie (no command line) or not readable. */
export function commandLine(pid: number): string[] | null {
  let raw: string;
  try {
    raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return null;
  }
  if (raw === '') return null;
  return raw.replace(/\0$/, '').split('\0');
}

/** Pids named in `files`: a plain number (ours), or ClickHouse's status file ("PID: 1234"). */
export function pidsNamedIn(files: readonly string[]): number[] {
  const pids = new Set<number>();
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const m = /^\s*(?:PID:\s*)?(\d+)\s*$/m.exec(text);
    if (m) pids.add(Number(m[1]));
  }
  return [...pids];
}

/** Records the child's pid for the next start to find, should this couchlog die without stopping it. */
export function recordPid(file: string, pid: number): void {
  writeFileSync(file, `${pid}\n`, { mode: 0o600 });
}

/**
 * Kills (SIGKILL) every process named in `files` whose command line has
 * `marker` as an argument, and waits until each is gone and none of the
 * sockets it held still listens (at most `waitMs`): the port is free then. SIGKILL because nobody is attached to it any more, and both
 * servers' data must survive a kill anyway (the liveness probe kills a
 * frozen one). Returns the pids stopped.
 */
export async function stopOrphans(files: readonly string[], marker: string, waitMs = 5000): Promise<number[]> {
  const ours = pidsNamedIn(files).filter((pid) => pid !== process.pid && (commandLine(pid)?.includes(marker) ?? false));
  const sockets = new Set(ours.flatMap((pid) => [...socketInodes(pid)]));
  const stillListening = () => sockets.size > 0 && (listenersOn()?.some((l) => sockets.has(l.inode)) ?? false);
  for (const pid of ours) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile, or not ours to signal (then it stays, and its port says so)
    }
  }
  // Both: a multithreaded process's first thread can be a zombie while another still closes its files.
  for (const deadline = Date.now() + waitMs; (ours.some((pid) => !exited(pid)) || stillListening()) && Date.now() < deadline;) await sleep(20);
  return ours;
}

/**
 * Whether a process has finished exiting: gone, or a zombie with no thread
 * left. Not "its command line is empty": a dying process loses that (its
 * memory) before its files are closed, and CI runs found the killed
 * server's port still listening in between.
 */
export function exited(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return true;
  }
  // "pid (comm) S ...": the name may hold spaces and parentheses, the state follows the last ")".
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  if (state !== 'Z' && state !== 'X' && state !== 'x') return false;
  // The first thread of a multithreaded process is a zombie while the others still exit (and close its files).
  try {
    return readdirSync(`/proc/${pid}/task`).length <= 1;
  } catch {
    return true;
  }
}
