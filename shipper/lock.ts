// One `ship` at a time per log file (or state file): two runs truncating
// the same file would each remove what the other counted. The lock is a
// file created exclusively, holding the owner's pid; a lock whose process
// is gone (a crash, a kill -9) is taken over.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { OperationError } from '../lib/errors.js';

export interface Lock {
  path: string;
  release(): void;
}

export function acquireLock(path: string, what: string): Lock {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return {
        path,
        release: () => {
          try {
            unlinkSync(path);
          } catch {
            // already gone
          }
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new OperationError(`cannot create the lock ${path}: ${(err as Error).message}`);
    }
    const pid = readPid(path);
    if (pid !== null && alive(pid))
      throw new OperationError(`another couchlog ship (pid ${pid}) is working on ${what} (lock ${path}); not starting a second one`);
    try {
      unlinkSync(path);
    } catch {
      // someone else took it over first; the next attempt finds out
    }
  }
  throw new OperationError(`cannot take the lock ${path}`);
}

function readPid(path: string): number | null {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
