// One `ship` at a time per log file (or state file): two runs truncating
// the same file would each remove what the other counted.
//
// The lock is the kernel's (flock), held by util-linux's flock(1) in a
// child that lives as long as our end of its stdin: it goes with our
// process however that ends (a crash, a kill -9), so there are no stale
// locks to judge and take over. A lock file holding a pid, created
// exclusively and taken over when its process was gone, let two runs
// started at the same moment both believe they held it (a review measured
// 2 in 30 trials): one could read the file before its pid was written, and
// a takeover could remove a lock made meanwhile. The file is never removed
// (removing a flock'ed file lets the next run lock another inode than the
// one a waiting run holds); its content, the holder's pid, is only for the
// message a second run prints, and is left as it is when the file is not
// ours to write (made by a run as root, read by cron as another user).
// flock(1) runs in a process group of its own: Ctrl-C on a terminal, or
// systemd stopping the unit's group, must not release the lock while the
// run is still draining its batches.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { OperationError } from '../lib/errors.js';

export interface Lock {
  path: string;
  release(): Promise<void>;
}

/** flock(1)'s exit code when the lock is held elsewhere (--conflict-exit-code). */
const BUSY = 75;

export async function acquireLock(path: string, what: string): Promise<Lock> {
  const child = spawn('flock', ['--nonblock', '--conflict-exit-code', String(BUSY), path, 'sh', '-c', 'echo locked && exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  // Listened for from the start: a child killed from outside must not leave release() waiting forever.
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const outcome = await lockOutcome(child);
  if (outcome === 'busy') throw new OperationError(`another couchlog ship${holder(path)} is working on ${what} (lock ${path}); not starting a second one`);
  if (outcome !== 'locked') throw new OperationError(`cannot take the lock ${path}: ${outcome}`);
  try {
    writeFileSync(path, `${process.pid}\n`);
  } catch {
    // only the message of a second run loses the pid
  }
  return {
    path,
    release: async () => {
      child.stdin!.end();
      await exited;
    },
  };
}

/** 'locked', 'busy', or why flock(1) failed. */
function lockOutcome(child: ChildProcess): Promise<string> {
  return new Promise((resolve) => {
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout!.once('data', () => resolve('locked'));
    child.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ENOENT' ? 'the flock command (util-linux) is not installed' : err.message));
    child.once('close', (code) => resolve(code === BUSY ? 'busy' : stderr.trim() || `flock exited with ${code}`));
  });
}

function holder(path: string): string {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? ` (pid ${pid})` : '';
  } catch {
    return '';
  }
}
