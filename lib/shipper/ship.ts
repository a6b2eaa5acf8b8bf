// `couchlog ship`: lines from stdin or files, through jsonformat when asked,
// in batches to the ingress, each line accounted for: stored (or already
// stored), written to the reject file with its reason, or deliberately
// skipped (blank, --grep). Only then is a file truncated (--truncate) or
// its offset saved (--state). See docs/shipper.md.
import { open, type FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';
import { CommandError } from '../errors.js';
import type { ConverterFactory, ConvertSink } from '../jsonformat/converter.js';
import { isBlank } from '../jsonformat/format-stream.js';
import { AckTracker } from './ack-tracker.js';
import type { BackoffOptions } from './backoff.js';
import { docId, sourceKey, withId } from './doc-id.js';
import { IngressClient, type IngressTarget } from './ingress-client.js';
import { readLines } from './line-reader.js';
import { acquireLock, type Lock } from './lock.js';
import type { Progress } from './progress.js';
import { RejectFile } from './reject-file.js';
import { planPath, realFs, type PlannedRead } from './rotation.js';
import { Sender, type OutDoc, type Outcome } from './sender.js';
import { fingerprintAt, loadState, saveState, type PathState, type StreamState } from './state-file.js';
import { removeAckedPrefix, type TruncateMethod, type TruncateResult } from './truncate.js';

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

export interface SourceSummary {
  source: string;
  kind: 'stdin' | 'file' | PlannedRead['kind'];
  from: number;
  /** Everything before this offset is accounted for. */
  acked: number;
  truncated?: TruncateResult;
}

export interface ShipCounts {
  lines: number;
  blank: number;
  skipped: number;
  unmatched: number;
  documents: number;
  stored: number;
  existing: number;
  rejected: number;
  retries: number;
  bytes: number;
}

export interface ShipResult {
  counts: ShipCounts;
  seconds: number;
  sources: SourceSummary[];
  notes: string[];
  /** Set when the run failed; files were not truncated (state keeps the acknowledged part). */
  error: Error | null;
}

interface LineMeta {
  idx: number;
  offset: number;
  text: string;
  lineNo: number;
}

interface Unit {
  indexes: number | number[];
  metas: LineMeta[];
}

export function checkShipOptions(o: Pick<ShipOptions, 'files' | 'truncate' | 'stateFile' | 'auditd' | 'batchDocs' | 'batchBytes' | 'concurrency'>): void {
  if (o.truncate && o.stateFile) throw new CommandError('--truncate and --state are two ways to not send a line twice: choose one', 2);
  if ((o.truncate || o.stateFile) && o.files.length === 0) throw new CommandError(`${o.truncate ? '--truncate' : '--state'} needs the log file(s) as arguments (not stdin)`, 2);
  if (o.truncate && o.auditd) throw new CommandError('--truncate is not for audit logs (auditd rotates its own files): use --state', 2);
  if (o.batchDocs < 1 || o.batchDocs > 10_000) throw new CommandError('--batch-size must be 1..10000 (the ingress takes at most 10000 documents per request)', 2);
  if (o.batchBytes < 1024) throw new CommandError('--batch-bytes must be at least 1024', 2);
  if (o.concurrency < 1 || o.concurrency > 64) throw new CommandError('--concurrency must be 1..64', 2);
}

export async function ship(o: ShipOptions): Promise<ShipResult> {
  checkShipOptions(o);
  const started = Date.now();
  const counts: ShipCounts = { lines: 0, blank: 0, skipped: 0, unmatched: 0, documents: 0, stored: 0, existing: 0, rejected: 0, retries: 0, bytes: 0 };
  const result: ShipResult = { counts, seconds: 0, sources: [], notes: [], error: null };
  const client = new IngressClient(o.target, { timeoutMs: o.timeoutMs, connections: o.concurrency });
  const rejects = new RejectFile(o.rejectFile);
  const locks: Lock[] = [];
  try {
    if (o.files.length === 0) {
      await shipStream(o, client, rejects, counts, result, {
        label: 'stdin',
        key: sourceKey(o.sourceId ?? 'stdin', 0),
        chunks: o.stdin,
        from: 0,
        totalBytes: null,
        includeUnterminated: true,
        final: true,
      });
    } else if (o.stateFile) {
      locks.push(acquireLock(`${o.stateFile}.lock`, o.stateFile));
      await shipWithState(o, client, rejects, counts, result);
    } else {
      for (const file of o.files) {
        if (o.truncate) locks.push(acquireLock(`${file}.couchlog-ship.lock`, file));
        await shipFile(o, client, rejects, counts, result, file);
        if (result.error) break;
      }
    }
  } catch (err) {
    result.error ??= err as Error;
  } finally {
    rejects.close();
    await client.close();
    for (const lock of locks) lock.release();
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
    throw new CommandError(`${file}: ${(err as Error).message}`, 1);
  }
  try {
    const size = (await fh.stat()).size;
    const summary = await shipStream(o, client, rejects, counts, result, {
      label: file,
      key: sourceKey(o.sourceId ?? path, 0),
      chunks: fh.createReadStream({ start: 0, end: Math.max(0, size - 1), autoClose: false, highWaterMark: 256 * 1024 }),
      empty: size === 0,
      from: 0,
      totalBytes: size,
      // A file being written may end in half a line: that waits for the next run.
      includeUnterminated: !o.truncate,
      final: true,
    });
    if (o.truncate && result.error === null) {
      if (!summary.allDone) throw new Error('internal: lines left unaccounted without an error');
      rejects.sync();
      summary.source.truncated = await removeAckedPrefix(fh, summary.source.acked, o.truncate);
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
    const done: Array<{ read: PlannedRead; acked: number; fingerprint: string }> = [];
    for (const read of plan.reads) {
      if (result.error) {
        done.push({ read, acked: read.from, fingerprint: await fs.fingerprint(read.path, read.from).then((f) => f ?? '') });
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
): Promise<{ read: PlannedRead; acked: number; fingerprint: string }> {
  const fh = await open(read.path, 'r');
  try {
    const st = await fh.stat();
    if (st.ino !== read.ino || st.dev !== read.dev) throw new CommandError(`${read.path} changed while starting; run again`, 1);
    const label = read.path === path ? path : `${read.path} (was ${path})`;
    const summary = await shipStream(o, client, rejects, counts, result, {
      label,
      key: sourceKey(o.sourceId ?? path, read.generation),
      chunks: fh.createReadStream({ start: read.from, end: Math.max(read.from, st.size - 1), autoClose: false, highWaterMark: 256 * 1024 }),
      empty: st.size <= read.from,
      from: read.from,
      totalBytes: st.size - read.from,
      // copytruncate's copy is complete; the others may still be written to.
      includeUnterminated: read.kind === 'copy',
      final: read.kind === 'copy',
      kind: read.kind,
    });
    return { read, acked: summary.source.acked, fingerprint: await fingerprintAt(fh, summary.source.acked) };
  } finally {
    await fh.close();
  }
}

function nextPathState(path: string, nextGeneration: number, done: Array<{ read: PlannedRead; acked: number; fingerprint: string }>): PathState {
  const stream = (d: (typeof done)[number], seenAs: string): StreamState => ({
    dev: d.read.dev,
    ino: d.read.ino,
    offset: d.acked,
    generation: d.read.generation,
    fingerprint: d.fingerprint,
    seen_as: seenAs,
  });
  const current = done.find((d) => d.read.kind === 'current');
  return {
    current: current ? stream(current, path) : null,
    rotated: done.filter((d) => d.read.kind === 'rotated').map((d) => stream(d, d.read.path)),
    next_generation: nextGeneration,
    updated_at: new Date().toISOString(),
  };
}

interface StreamSpec {
  label: string;
  key: string;
  chunks: AsyncIterable<Buffer | string> | Iterable<Buffer | string>;
  empty?: boolean;
  from: number;
  totalBytes: number | null;
  includeUnterminated: boolean;
  /** The input will not grow: audit events still open at the end are emitted incomplete. */
  final: boolean;
  kind?: SourceSummary['kind'];
}

/** Reads, converts, sends; returns when every document has an outcome or the run failed. */
async function shipStream(
  o: ShipOptions,
  client: IngressClient,
  rejects: RejectFile,
  counts: ShipCounts,
  result: ShipResult,
  spec: StreamSpec,
): Promise<{ source: SourceSummary; allDone: boolean }> {
  const tracker = new AckTracker(spec.from);
  const source: SourceSummary = { source: spec.label, kind: spec.kind ?? (spec.label === 'stdin' ? 'stdin' : 'file'), from: spec.from, acked: spec.from };
  result.sources.push(source);
  const fromStart = spec.from === 0;
  let shown = 0;
  let strictFailure: CommandError | null = null;
  const reject = (metas: LineMeta[], reason: string, doc?: string) => {
    const first = metas[0]!;
    rejects.write({
      source: spec.label,
      offset: first.offset,
      ...(fromStart ? { line: first.lineNo } : {}),
      reason,
      text: metas.length === 1 ? first.text : metas.map((m) => m.text),
      ...(doc !== undefined ? { doc } : {}),
    });
  };
  const where = (m: LineMeta) => `${spec.label}:${fromStart ? `${m.lineNo}` : `byte ${m.offset}`}`;

  const sender = new Sender<Unit>(client, {
    concurrency: o.concurrency,
    retryForMs: o.retryForMs,
    backoff: o.backoff,
    signal: o.signal,
    onRetry: o.verbose ? (reason, ms) => o.report(`retrying in ${(ms / 1000).toFixed(1)} s: ${reason}`) : undefined,
    onOutcome: (doc: OutDoc<Unit>, outcome: Outcome) => {
      if (outcome.kind === 'stored') counts.stored++;
      else if (outcome.kind === 'exists') counts.existing++;
      else {
        counts.rejected++;
        reject(doc.unit.metas, `refused by the ingress: ${outcome.reason}`, doc.json);
        if (shown++ < o.reportLimit) o.report(`${where(doc.unit.metas[0]!)}: refused by the ingress: ${outcome.reason}`);
      }
      tracker.markDone(doc.unit.indexes);
    },
  });

  let batch: Array<OutDoc<Unit>> = [];
  let batchBytes = 0;
  const ready: Array<Array<OutDoc<Unit>>> = [];
  const push = (doc: OutDoc<Unit>) => {
    counts.documents++;
    batch.push(doc);
    batchBytes += doc.json.length;
    if (batch.length >= o.batchDocs || batchBytes >= o.batchBytes) {
      ready.push(batch);
      batch = [];
      batchBytes = 0;
    }
  };
  const sink: ConvertSink<LineMeta> = {
    doc(json, meta, existingId) {
      const id = existingId ?? docId(spec.key, meta.offset, meta.text);
      push({ id, json: existingId ? json : withId(json, id), unit: { indexes: meta.idx, metas: [meta] } });
    },
    event(json, metas) {
      if (json === null) {
        tracker.markDone(metas.map((m) => m.idx));
        return;
      }
      const first = metas.reduce((a, b) => (b.offset < a.offset ? b : a));
      const id = docId(spec.key, first.offset, metas.map((m) => m.text));
      push({ id, json: withId(json, id), unit: { indexes: metas.map((m) => m.idx), metas } });
    },
    mismatch(meta, reason) {
      counts.unmatched++;
      if (o.strict) {
        strictFailure ??= new CommandError(`${where(meta)}: ${reason} (--strict): ${meta.text.slice(0, 200)}`, 1);
        return;
      }
      reject([meta], reason);
      if (shown++ < o.reportLimit) o.report(`${where(meta)}: ${reason}: ${meta.text.slice(0, 200)}`);
      tracker.markDone(meta.idx);
    },
  };
  const converter = o.makeConverter(sink);
  const progress = o.progress(spec.label, spec.totalBytes);
  const sendReady = async () => {
    while (ready.length > 0) await sender.submit(ready.shift()!);
  };
  let lineNo = 0;
  try {
    if (!spec.empty) {
      for await (const lines of readLines(spec.chunks, spec.from, spec.includeUnterminated)) {
        for (const l of lines) {
          const idx = tracker.add(l.offset, l.end);
          counts.lines++;
          counts.bytes += l.end - l.offset;
          lineNo++;
          if (isBlank(l.text)) {
            counts.blank++;
            tracker.markDone(idx);
            continue;
          }
          if (o.grep.length > 0 && !o.grep.every((re) => re.test(l.text))) {
            counts.skipped++;
            tracker.markDone(idx);
            continue;
          }
          converter.line(l.text, { idx, offset: l.offset, text: l.text, lineNo });
          if (strictFailure) break;
        }
        if (strictFailure) break;
        await sendReady();
        progress.update({ lines: counts.lines, bytes: counts.bytes, docs: counts.stored + counts.existing });
        if (sender.failed) break;
      }
    }
    if (!strictFailure && !sender.failed) {
      converter.end(spec.final);
      await sendReady();
      if (batch.length > 0) await sender.submit(batch);
      batch = [];
    }
    await sender.drain();
    if (strictFailure) throw strictFailure;
  } catch (err) {
    // Let what is in flight finish: its outcomes move the frontier (--state).
    await sender.drain().catch(() => undefined);
    result.error ??= err as Error;
  } finally {
    progress.update({ lines: counts.lines, bytes: counts.bytes, docs: counts.stored + counts.existing });
    progress.stop();
    counts.retries += sender.retries;
  }
  source.acked = tracker.frontier();
  return { source, allDone: tracker.allDone() };
}
