// --state: what to read this run for one log path, given what was read last
// time. The cases, and why nothing is lost or sent twice:
// - same file (device+inode), its bytes before the saved offset unchanged
//   (fingerprint): read from the offset;
// - rotated by rename (logrotate's default "create"): the path is a new
//   file; the old one is found by its inode among its neighbours (e.g.
//   fail2ban.log.1) and read from the saved offset, then the new file from
//   0 under a new generation. The writer keeps appending to the old file
//   until it is told to reopen, so the old file stays tracked (`rotated`)
//   and is read again each run until it disappears (deleted, compressed);
// - truncated in place (copytruncate, `echo "" > log`): same inode, but
//   shorter than the offset or with other bytes before it. A neighbour
//   whose bytes before the offset match the fingerprint is copytruncate's
//   copy and is read from the offset; then the file from 0, new generation.
//   Until the copy is acknowledged to its end it stays in `rotated` (marked
//   `copy`) and is found again by its inode: the path's own stream has moved
//   on to the new generation, so nothing else would lead a later run back
//   to the copy's rest after a run that failed or was stopped in it.
// A new generation gives the same offsets new ids; ids of an old stream's
// lines keep that stream's generation wherever the file has moved to.
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { PathState, StreamState } from './state-file.js';

export interface FileStat {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

/** What planning needs from the filesystem (tests give their own). */
export interface FsView {
  stat(path: string): Promise<FileStat | null>;
  /** Fingerprint of [offset-256, offset), as fingerprintAt. */
  fingerprint(path: string, offset: number): Promise<string | null>;
  /** Full paths of the other entries in the directory of `path`. */
  neighbours(path: string): Promise<string[]>;
}

export type ReadKind = 'current' | 'rotated' | 'copy';

export interface PlannedRead {
  kind: ReadKind;
  /** Where the bytes are now. */
  path: string;
  dev: number;
  ino: number;
  generation: number;
  from: number;
}

export interface Plan {
  reads: PlannedRead[];
  nextGeneration: number;
  /** What the user should know (a file gone before its new lines were read). */
  notes: string[];
}

const COMPRESSED = /\.(gz|bz2|xz|zst|lz4|Z|zip)$/;

export async function planPath(path: string, entry: PathState | undefined, fs: FsView): Promise<Plan> {
  let nextGeneration = entry?.next_generation ?? 1;
  const newGeneration = () => nextGeneration++;
  const reads: PlannedRead[] = [];
  const notes: string[] = [];
  const seen = new Set<string>();
  const add = (r: PlannedRead) => {
    const key = `${r.dev}:${r.ino}`;
    if (seen.has(key)) return;
    seen.add(key);
    reads.push(r);
  };

  for (const r of entry?.rotated ?? []) {
    const found = await findStream(path, r, fs);
    if (found) add({ kind: r.copy ? 'copy' : 'rotated', path: found, dev: r.dev, ino: r.ino, generation: r.generation, from: r.offset });
    // Said once: it leaves the state with this run (usually deleted or compressed by logrotate after everything was shipped).
    else if (r.copy)
      notes.push(
        `${r.seen_as} (copytruncate's copy of ${path}, inode ${r.ino}) is gone or was rewritten before it was shipped whole; its lines from byte ${r.offset} on could not be shipped`,
      );
    else
      notes.push(
        `${r.seen_as} (rotated from ${path}, inode ${r.ino}) is gone or was rewritten; lines added to it after the last run (if any) could not be shipped`,
      );
  }

  const cur = await fs.stat(path);
  const c = entry?.current ?? null;
  if (c === null) {
    if (cur) add({ kind: 'current', path, dev: cur.dev, ino: cur.ino, generation: entry ? newGeneration() : 0, from: 0 });
    // Not an error: a log may not exist before its first line. But a misspelt name in a cron job
    // would otherwise ship nothing, silently, forever; said on every run, as nothing was shipped.
    else if (reads.length === 0)
      notes.push(
        `${path} does not exist (or is not a file): nothing shipped from it (check the name; a log not written yet is shipped from its first line once it exists, and creating it empty silences this note)`,
      );
    return { reads, nextGeneration, notes };
  }
  if (cur && cur.dev === c.dev && cur.ino === c.ino) {
    if (cur.size >= c.offset && (await fs.fingerprint(path, c.offset)) === c.fingerprint) {
      add({ kind: 'current', path, dev: cur.dev, ino: cur.ino, generation: c.generation, from: c.offset });
      return { reads, nextGeneration, notes };
    }
    const copy = await findCopy(path, c, fs, seen);
    if (copy) add({ kind: 'copy', path: copy.path, dev: copy.dev, ino: copy.ino, generation: c.generation, from: c.offset });
    else if (c.offset > 0)
      notes.push(
        `${path} was truncated or rewritten since the last run; no copy of it was found, so lines added after the last run and before that (if any) could not be shipped`,
      );
    add({ kind: 'current', path, dev: cur.dev, ino: cur.ino, generation: newGeneration(), from: 0 });
    return { reads, nextGeneration, notes };
  }
  const old = await findStream(path, c, fs);
  if (old) add({ kind: 'rotated', path: old, dev: c.dev, ino: c.ino, generation: c.generation, from: c.offset });
  else notes.push(`${path} was rotated and the previous file (inode ${c.ino}) is gone; lines added to it after the last run (if any) could not be shipped`);
  if (cur) add({ kind: 'current', path, dev: cur.dev, ino: cur.ino, generation: newGeneration(), from: 0 });
  return { reads, nextGeneration, notes };
}

/** Where a stream (device+inode) is now: where it was last seen, else a neighbour; null if gone or rewritten. */
async function findStream(path: string, s: StreamState, fs: FsView): Promise<string | null> {
  const candidates = [s.seen_as, ...(await fs.neighbours(path))];
  for (const p of candidates) {
    const st = await fs.stat(p);
    if (!st || st.dev !== s.dev || st.ino !== s.ino) continue;
    if (st.size < s.offset || (await fs.fingerprint(p, s.offset)) !== s.fingerprint) return null;
    return p;
  }
  return null;
}

/** copytruncate's copy: a neighbour named after the file whose bytes before the offset are the ones read (and not a stream already planned). */
async function findCopy(path: string, c: StreamState, fs: FsView, planned: ReadonlySet<string>): Promise<{ path: string; dev: number; ino: number } | null> {
  if (c.offset === 0) return null;
  const base = basename(path);
  let best: { path: string; dev: number; ino: number; mtimeMs: number } | null = null;
  for (const p of await fs.neighbours(path)) {
    const name = basename(p);
    if (!name.startsWith(base) || name === base || COMPRESSED.test(name)) continue;
    const st = await fs.stat(p);
    if (!st || (st.dev === c.dev && st.ino === c.ino) || planned.has(`${st.dev}:${st.ino}`) || st.size < c.offset) continue;
    if ((await fs.fingerprint(p, c.offset)) !== c.fingerprint) continue;
    if (!best || st.mtimeMs > best.mtimeMs) best = { path: p, dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs };
  }
  return best;
}

/** The real filesystem. */
export function realFs(fingerprint: (path: string, offset: number) => Promise<string | null>): FsView {
  return {
    async stat(p) {
      try {
        const st = await stat(p);
        return st.isFile() ? { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs } : null;
      } catch {
        return null;
      }
    },
    fingerprint,
    async neighbours(p) {
      const dir = dirname(p);
      try {
        return (await readdir(dir)).map((name) => join(dir, name)).filter((q) => q !== p);
      } catch {
        return [];
      }
    },
  };
}
