// --state FILE: per log file, where the next run starts. Written atomically
// (temporary file, fsync, rename), so a crash leaves the old state or the
// new one, never half of one; an old state only means lines sent again
// under the same ids, which stores nothing twice.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { OperationError } from '../lib/errors.js';
import { writeFileDurably } from '../lib/durable-file.js';

/** One stream of bytes: a file, identified by device and inode, read up to `offset`. */
export interface StreamState {
  dev: number;
  ino: number;
  /** Everything before this byte is acknowledged. */
  offset: number;
  /** Part of the documents' ids; a new one for every new stream of a path. */
  generation: number;
  /** sha256 of the bytes just before offset: tells a rewritten file from the same one. */
  fingerprint: string;
  /** Where the file was last seen (a rotated file's new name). */
  seen_as: string;
  /**
   * A copytruncate copy not shipped whole yet (a run failed or was stopped
   * in it), read again as a copy: complete, so a last line without its \n
   * is shipped too. Absent on other streams (and in older state files).
   */
  copy?: true;
}

export interface PathState {
  current: StreamState | null;
  /**
   * Rotated files the writer may still append to (it keeps its descriptor
   * until told to reopen), and copytruncate copies with lines not yet
   * acknowledged: `current` has moved on to a new generation by then, so
   * this is the only place left that says where the copy's lines are.
   */
  rotated: StreamState[];
  next_generation: number;
  updated_at: string;
}

export interface ShipState {
  version: 1;
  files: Record<string, PathState>;
}

export const FINGERPRINT_BYTES = 256;

export function emptyState(): ShipState {
  return { version: 1, files: {} };
}

export function loadState(file: string): ShipState {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
    throw new OperationError(`--state ${file}: ${(err as Error).message}`);
  }
  try {
    const state = JSON.parse(text) as ShipState;
    if (state.version !== 1 || typeof state.files !== 'object' || state.files === null) throw new Error('not a couchlog ship state (version 1)');
    return state;
  } catch (err) {
    throw new OperationError(
      `--state ${file} is not readable: ${(err as Error).message}; move it away to start over (documents already stored are not sent twice)`,
    );
  }
}

export function saveState(file: string, state: ShipState): void {
  writeFileDurably(file, `${JSON.stringify(state, null, 2)}\n`);
}

/** Fingerprint of the bytes [offset - 256, offset) of an open file ("" at offset 0). */
export async function fingerprintAt(fh: FileHandle, offset: number): Promise<string> {
  if (offset <= 0) return '';
  const from = Math.max(0, offset - FINGERPRINT_BYTES);
  const buf = Buffer.alloc(offset - from);
  const { bytesRead } = await fh.read(buf, 0, buf.length, from);
  if (bytesRead < buf.length) return `short:${bytesRead}`;
  return createHash('sha256').update(buf).digest('hex');
}
