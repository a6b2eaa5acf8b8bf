// `couchlog ship`: lines from stdin or files, through jsonformat when asked,
// in batches to the ingress, each line accounted for: stored (or already
// stored), written to the reject file with its reason, or deliberately
// skipped (blank, --grep). Only then is a file truncated (--truncate) or
// its offset saved (--state). See docs/shipper.md.
import { open, type FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';
import { UsageError, OperationError } from '../lib/errors.js';
import type { ConverterFactory } from './jsonformat/converter.js';
import type { BackoffOptions } from '../lib/retry.js';
import { sourceKey } from './doc-id.js';
import { IngressClient, type IngressTarget } from './ingress-client.js';
import { acquireLock, type Lock } from './lock.js';
import type { Progress } from './progress.js';
import { RejectFile } from './reject-file.js';
import { planPath, realFs, type PlannedRead } from './rotation.js';
import { fingerprintAt, loadState, saveState, type PathState, type StreamState } from './state-file.js';
import { StreamRun, type ShipCounts, type SourceSummary } from './stream-run.js';
import { removeAckedPrefix, type TruncateMethod } from './truncate.js';
import { LinePrefixDigest } from './prefix-digest.js';
import { readGeneration, saveGeneration } from './truncate-generation.js';

export type { ShipCounts, SourceSummary } from './stream-run.js';

export interface ShipOptions {
  target: IngressTarget;
  /** Files to read; none: stdin. */
  files: string[];
  stdin: AsyncIterable<Buffer | string> | Iterable<Buffer | string>;
  makeConverter: ConverterFactory;
  /** --format auditd: events span lines (refused with --truncate). */
  auditd: boolean;
  /** Only lines matching every one are shipped (a chain of greps); the others count as skipped. */
  grep: RegExp[];
  strict: boolean;
  reportLimit: number;
  batchDocs: number;
  batchBytes: number;
  /** A longer line stops the run (line-reader.ts keeps only its beginning). */
  maxLineBytes: number;
  concurrency: number;
  timeoutMs: number;
  retryForMs: number;
  backoff: BackoffOptions;
  /** Remove what was acknowledged from each file; null: leave files alone. */
  truncate: TruncateMethod | null;
  stateFile: string | null;
  /** Identity of the source in document ids (default: the file's absolute path, or "stdin"). */
  sourceId: string | null;
  rejectFile: string;
  progress: (label: string, totalBytes: number | null) => Progress;
  /** A line for stderr. */
  report: (line: string) => void;
  verbose: boolean;
  signal?: AbortSignal;
}

export interface ShipResult {
  counts: ShipCounts;
  seconds: number;
  sources: SourceSummary[];
  notes: string[];
  /** Set when the run failed; files were not truncated (state keeps the acknowledged part). */
  error: Error | null;
  /** Entries the reject file took (unmatched lines and refused documents written with their reason). */
  rejectsWritten: number;
}

export function checkShipOptions(o: Pick<ShipOptions, 'files' | 'truncate' | 'stateFile' | 'auditd' | 'batchDocs' | 'batchBytes' | 'concurrency'>): void {
  if (o.truncate && o.stateFile) throw new UsageError('--truncate and --state are two ways to not send a line twice: choose one');
  if ((o.truncate || o.stateFile) && o.files.length === 0)
    throw new UsageError(`${o.truncate ? '--truncate' : '--state'} needs the log file(s) as arguments (not stdin)`);
  if (o.truncate && o.auditd) throw new UsageError('--truncate is not for audit logs (auditd rotates its own files): use --state');
  if (o.batchDocs < 1 || o.batchDocs > 10_000) throw new UsageError('--batch-size must be 1..10000 (the ingress takes at most 10000 documents per request)');
  if (o.batchBytes < 1024) throw new UsageError('--batch-bytes must be at least 1024');
  if (o.concurrency < 1 || o.concurrency > 64) throw new UsageError('--concurrency must be 1..64');
}

export async function ship(o: ShipOptions): Promise<ShipResult> {
  checkShipOptions(o);
  const started = Date.now();
  const counts: ShipCounts = { lines: 0, blank: 0, skipped: 0, unmatched: 0, documents: 0, stored: 0, existing: 0, rejected: 0, retries: 0, bytes: 0 };
  const result: ShipResult = { counts, seconds: 0, sources: [], notes: [], error: null, rejectsWritten: 0 };
  const client = new IngressClient(o.target, { timeoutMs: o.timeoutMs, connections: o.concurrency });
  const rejects = new RejectFile(o.rejectFile);
  const locks: Lock[] = [];
  try {
    if (o.files.length === 0) {
      await new StreamRun(o, client, rejects, counts, result, {
        label: 'stdin',
        key: sourceKey(o.sourceId ?? 'stdin', 0),
        chunks: o.stdin,
        from: 0,
        totalBytes: null,
        includeUnterminated: true,
        final: true,
      }).run();
    } else if (o.stateFile) {
      locks.push(await acquireLock(`${o.stateFile}.lock`, o.stateFile));
      await shipWithState(o, client, rejects, counts, result);
    } else {
      for (const file of o.files) {
        if (o.truncate) locks.push(await acquireLock(`${file}.couchlog-ship.lock`, file));
        await shipFile(o, client, rejects, counts, result, file);
        if (result.error) break;
      }
    }
  } catch (err) {
    result.error ??= err as Error;
  } finally {
    result.rejectsWritten = rejects.count;
    rejects.close();
    await client.close();
    for (const lock of locks) await lock.release();
  }
  result.seconds = (Date.now() - started) / 1000;
  return result;
}

/** A whole file, plain or --truncate. */
async function shipFile(o: ShipOptions, client: IngressClient, rejects: RejectFile, counts: ShipCounts, result: ShipResult, file: string): Promise<void> {
  const path = resolve(file);
  let fh: FileHandle;
  try {
    fh = await open(path, o.truncate ? 'r+' : 'r');
  } catch (err) {
    throw new OperationError(`${file}: ${(err as Error).message}`);
  }
  try {
    const size = (await fh.stat()).size;
    const generation = o.truncate ? readGeneration(path) : 0;
    const read = new LinePrefixDigest();
    const summary = await new StreamRun(o, client, rejects, counts, result, {
      label: file,
      key: sourceKey(o.sourceId ?? path, generation),
      chunks: read.tap(fh.createReadStream({ start: 0, end: Math.max(0, size - 1), autoClose: false, highWaterMark: 256 * 1024 })),
      empty: size === 0,
      from: 0,
      totalBytes: size,
      // A file being written may end in half a line: that waits for the next run.
      includeUnterminated: !o.truncate,
      final: true,
    }).run();
    if (o.truncate && result.error === null) {
      if (!summary.allDone) throw new Error('internal: lines left unaccounted without an error');
      rejects.sync();
      summary.source.truncated = await removeAckedPrefix(fh, summary.source.acked, o.truncate, read.digest());
      if (summary.source.acked > 0) saveGeneration(path, generation + 1);
      if (summary.source.truncated.fallbackReason && o.verbose) {
        o.report(`${file}: collapse-range not available (${summary.source.truncated.fallbackReason}): used copy-truncate, see docs/shipper.md`);
      }
    }
  } finally {
    await fh.close();
  }
}

async function shipWithState(o: ShipOptions, client: IngressClient, rejects: RejectFile, counts: ShipCounts, result: ShipResult): Promise<void> {
  const stateFile = o.stateFile!;
  const state = loadState(stateFile);
  const fs = realFs(async (p, offset) => {
    try {
      const fh = await open(p, 'r');
      try {
        return await fingerprintAt(fh, offset);
      } finally {
        await fh.close();
      }
    } catch {
      return null;
    }
  });
  for (const file of o.files) {
    const path = resolve(file);
    const plan = await planPath(path, state.files[path], fs);
    result.notes.push(...plan.notes);
    const done: DoneRead[] = [];
    for (const read of plan.reads) {
      if (result.error) {
        const end = (await fs.stat(read.path))?.size ?? Infinity;
        done.push({ read, acked: read.from, end, fingerprint: await fs.fingerprint(read.path, read.from).then((f) => f ?? '') });
        continue;
      }
      done.push(await shipPlannedRead(o, client, rejects, counts, result, path, read));
    }
    state.files[path] = nextPathState(path, plan.nextGeneration, done);
    // Saved even after a failure: what was acknowledged need not be sent again.
    rejects.sync();
    saveState(stateFile, state);
    if (result.error) break;
  }
}

async function shipPlannedRead(
  o: ShipOptions,
  client: IngressClient,
  rejects: RejectFile,
  counts: ShipCounts,
  result: ShipResult,
  path: string,
  read: PlannedRead,
): Promise<DoneRead> {
  const fh = await open(read.path, 'r');
  // The lines are read through a handle of their own: a run that stops early (the ingress gone)
  // destroys its stream, which closes the handle under it whatever autoClose says, and `fh` must
  // stay open to fingerprint where the acknowledged part ends (found by a black-box test: a failed
  // run saved no --state at all, EBADF, and the next run sent everything again).
  const lines = await open(read.path, 'r');
  try {
    const st = await fh.stat();
    const again = await lines.stat();
    if (st.ino !== read.ino || st.dev !== read.dev || again.ino !== st.ino || again.dev !== st.dev)
      throw new OperationError(`${read.path} changed while starting; run again`);
    const label = read.path === path ? path : `${read.path} (was ${path})`;
    const summary = await new StreamRun(o, client, rejects, counts, result, {
      label,
      key: sourceKey(o.sourceId ?? path, read.generation),
      chunks: lines.createReadStream({ start: read.from, end: Math.max(read.from, st.size - 1), autoClose: false, highWaterMark: 256 * 1024 }),
      empty: st.size <= read.from,
      from: read.from,
      totalBytes: st.size - read.from,
      // copytruncate's copy is complete; the others may still be written to.
      includeUnterminated: read.kind === 'copy',
      final: read.kind === 'copy',
      kind: read.kind,
    }).run();
    return { read, acked: summary.source.acked, end: st.size, fingerprint: await fingerprintAt(fh, summary.source.acked) };
  } finally {
    await fh.close();
    await lines.close().catch(() => undefined); // closed already when its stream was destroyed
  }
}

/** One planned read after this run: acknowledged up to `acked` of the `end` bytes it had. */
interface DoneRead {
  read: PlannedRead;
  acked: number;
  end: number;
  fingerprint: string;
}

function nextPathState(path: string, nextGeneration: number, done: DoneRead[]): PathState {
  const stream = (d: DoneRead, seenAs: string): StreamState => ({
    dev: d.read.dev,
    ino: d.read.ino,
    offset: d.acked,
    generation: d.read.generation,
    fingerprint: d.fingerprint,
    seen_as: seenAs,
    ...(d.read.kind === 'copy' ? { copy: true as const } : {}),
  });
  const current = done.find((d) => d.read.kind === 'current');
  // A copy not acknowledged to its end is kept: `current` is saved under its new generation from
  // here on, so the next run would not look for the copy again and its rest would be lost (found
  // by a review: a run failing after a copytruncate lost the copied lines silently, exit 0 after).
  const followed = done.filter((d) => d.read.kind === 'rotated' || (d.read.kind === 'copy' && d.acked < d.end));
  return {
    current: current ? stream(current, path) : null,
    rotated: followed.map((d) => stream(d, d.read.path)),
    next_generation: nextGeneration,
    updated_at: new Date().toISOString(),
  };
}
