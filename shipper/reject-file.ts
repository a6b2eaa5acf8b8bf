// Lines that give no document (no schema match) and documents the ingress
// refuses are written here, one JSON object per line with the reason, so
// that nothing is dropped silently and --truncate can still remove them
// from the log. Opened on the first reject; synced before any truncation.
//
// Where it is when --reject-file is not given (defaultRejectPath): next to
// the --state file (`fail2ban.state` -> `fail2ban.state.rejects.ndjson`),
// else in the data folder (`<data_dir>/rejects/log_<app>.ndjson`), never
// in the current directory, which under cron is $HOME or /. The folder is
// created on the first reject.
import { closeSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

/** The reject file of a run without --reject-file: next to the state file, else in the data folder. */
/**
 * Next to the state file; else in the data folder a config or COUCHLOG_DATA
 * names; else (no config: ./data would be wherever cron runs the job, $HOME
 * or /) in the user's state folder, ~/.local/state/couchlog/rejects.
 */
export function defaultRejectPath(o: { stateFile: string | null; dataDir: string | null; db: string; home: string }): string {
  if (o.stateFile !== null) {
    const state = resolve(o.stateFile);
    return join(dirname(state), `${basename(state)}.rejects.ndjson`);
  }
  const dir = o.dataDir !== null ? join(resolve(o.dataDir), 'rejects') : join(o.home, '.local', 'state', 'couchlog', 'rejects');
  return join(dir, `${o.db.replace(/[^A-Za-z0-9_.-]/g, '_')}.ndjson`);
}

export interface RejectEntry {
  source: string;
  offset: number;
  /** Line number, when reading started at the beginning of the source. */
  line?: number;
  reason: string;
  /** The raw line(s). */
  text: string | string[];
  /** The document that was refused, when there was one. */
  doc?: string;
}

/**
 * All of `buf` at the end of the file, or nothing: a short write is
 * continued, and on a failure (disk full) the part written is cut off again
 * before the error goes up (the run then fails, and --truncate removes
 * nothing), so the next entry never lands glued to a fragment.
 */
function appendWhole(fd: number, buf: Buffer): void {
  const size = fstatSync(fd).size;
  try {
    for (let done = 0; done < buf.length;) done += writeSync(fd, buf, done, buf.length - done);
  } catch (err) {
    try {
      ftruncateSync(fd, size);
    } catch {
      // Nothing more to do: the error below fails the run.
    }
    throw err;
  }
}

export class RejectFile {
  private fd: number | null = null;
  count = 0;

  constructor(readonly path: string) {}

  write(entry: RejectEntry): void {
    if (this.fd === null) {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
      this.fd = openSync(this.path, 'a', 0o600);
    }
    const { doc, ...rest } = entry;
    let json = JSON.stringify({ at: new Date().toISOString(), ...rest });
    if (doc !== undefined) json = `${json.slice(0, -1)},"doc":${doc}}`;
    appendWhole(this.fd, Buffer.from(`${json}\n`));
    this.count++;
  }

  sync(): void {
    if (this.fd !== null) fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd === null) return;
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
  }
}
