// One input of a ship run (stdin, a file, a rotated file): read its lines,
// convert them, send the documents, and account for every line until the
// frontier (what --truncate removes and --state resumes from) is known.
// Every line read ends in exactly one of: stored / already stored, refused
// (reject file), unmatched (reject file, or the run fails with --strict),
// skipped (blank, --grep); a line counts as done only then.
import { OperationError } from '../lib/errors.js';
import type { ConvertSink, Converter } from './jsonformat/converter.js';
import { isBlank } from './jsonformat/format-stream.js';
import { AckTracker } from './ack-tracker.js';
import { Batcher } from './batcher.js';
import { docId, withId } from './doc-id.js';
import type { IngressClient } from './ingress-client.js';
import { readLines, type RawLine } from './line-reader.js';
import type { RejectFile } from './reject-file.js';
import type { PlannedRead } from './rotation.js';
import { Sender, type OutDoc, type Outcome } from './sender.js';
import type { ShipOptions, ShipResult } from './ship.js';
import type { TruncateResult } from './truncate.js';
import { printable } from '../lib/printable.js';

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

export interface StreamSpec {
  label: string;
  /** sourceKey(): the source's part of every document id. */
  key: string;
  chunks: AsyncIterable<Buffer | string> | Iterable<Buffer | string>;
  empty?: boolean;
  /** Byte offset of the first chunk's first byte. */
  from: number;
  totalBytes: number | null;
  includeUnterminated: boolean;
  /** The input will not grow: audit events still open at the end are emitted incomplete. */
  final: boolean;
  kind?: SourceSummary['kind'];
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

const SHOWN_CHARS = 200;

export class StreamRun {
  private readonly tracker: AckTracker;
  private readonly source: SourceSummary;
  private readonly sender: Sender<Unit>;
  private readonly batcher: Batcher<OutDoc<Unit>>;
  private readonly converter: Converter<LineMeta>;
  private shown = 0;
  private lineNo = 0;
  private strictFailure: OperationError | null = null;

  constructor(
    private readonly o: ShipOptions,
    client: IngressClient,
    private readonly rejects: RejectFile,
    private readonly counts: ShipCounts,
    private readonly result: ShipResult,
    private readonly spec: StreamSpec,
  ) {
    this.tracker = new AckTracker(spec.from);
    this.source = { source: spec.label, kind: spec.kind ?? (spec.label === 'stdin' ? 'stdin' : 'file'), from: spec.from, acked: spec.from };
    result.sources.push(this.source);
    this.batcher = new Batcher(o.batchDocs, o.batchBytes);
    this.sender = new Sender<Unit>(client, {
      concurrency: o.concurrency,
      retryForMs: o.retryForMs,
      backoff: o.backoff,
      signal: o.signal,
      onRetry: o.verbose ? (reason, ms) => o.report(`retrying in ${(ms / 1000).toFixed(1)} s: ${reason}`) : undefined,
      onOutcome: (doc, outcome) => this.onOutcome(doc, outcome),
    });
    this.converter = o.makeConverter(this.sink());
  }

  /** Returns when every document has an outcome, or the run failed (result.error). */
  async run(): Promise<{ source: SourceSummary; allDone: boolean }> {
    const progress = this.o.progress(this.spec.label, this.spec.totalBytes);
    const update = () => progress.update({ lines: this.counts.lines, bytes: this.counts.bytes, docs: this.counts.stored + this.counts.existing });
    try {
      if (!this.spec.empty) {
        for await (const lines of readLines(this.spec.chunks, this.spec.from, this.spec.includeUnterminated, this.o.maxLineBytes)) {
          this.lines(lines);
          if (this.strictFailure) break;
          await this.send(false);
          update();
          if (this.sender.failed) break;
        }
      }
      if (!this.strictFailure && !this.sender.failed) {
        this.converter.end(this.spec.final);
        await this.send(true);
      }
      await this.sender.drain();
      if (this.strictFailure) throw this.strictFailure;
    } catch (err) {
      // Let what is in flight finish: its outcomes move the frontier (--state).
      await this.sender.drain().catch(() => undefined);
      this.result.error ??= err as Error;
    } finally {
      update();
      progress.stop();
      this.counts.retries += this.sender.retries;
    }
    this.source.acked = this.tracker.frontier();
    return { source: this.source, allDone: this.tracker.allDone() };
  }

  private lines(lines: RawLine[]): void {
    for (const l of lines) {
      const idx = this.tracker.add(l.offset, l.end);
      this.counts.lines++;
      this.counts.bytes += l.end - l.offset;
      this.lineNo++;
      if (l.tooLong) {
        // Not set aside: the reject file would keep only its beginning, and --truncate would then
        // remove the rest from the log. The run stops before it; nothing after it is removed.
        this.strictFailure ??= new OperationError(
          printable(
            `${this.where({ idx, offset: l.offset, text: l.text, lineNo: this.lineNo })}: a line of ${l.end - l.offset} bytes, over --max-line-bytes ${this.o.maxLineBytes}: ` +
              'not sent and not set aside (raise --max-line-bytes, or remove the line by hand)',
          ),
        );
        return;
      }
      if (isBlank(l.text)) {
        this.counts.blank++;
        this.tracker.markDone(idx);
      } else if (this.o.grep.length > 0 && !this.o.grep.every((re) => re.test(l.text))) {
        this.counts.skipped++;
        this.tracker.markDone(idx);
      } else {
        this.converter.line(l.text, { idx, offset: l.offset, text: l.text, lineNo: this.lineNo });
        if (this.strictFailure) return;
      }
    }
  }

  /** Hands full batches (with flush, all) to the sender, which waits while too many are in flight. */
  private async send(flush: boolean): Promise<void> {
    for (const batch of this.batcher.take(flush)) await this.sender.submit(batch);
  }

  private sink(): ConvertSink<LineMeta> {
    const key = this.spec.key;
    const add = (doc: OutDoc<Unit>) => {
      this.counts.documents++;
      this.batcher.add(doc);
    };
    return {
      doc: (json, meta, existingId) => {
        const id = existingId ?? docId(key, meta.offset, meta.text);
        add({ id, json: existingId ? json : withId(json, id), unit: { indexes: meta.idx, metas: [meta] } });
      },
      event: (json, metas) => {
        if (json === null) {
          this.tracker.markDone(metas.map((m) => m.idx));
          return;
        }
        const first = metas.reduce((a, b) => (b.offset < a.offset ? b : a));
        const id = docId(
          key,
          first.offset,
          metas.map((m) => m.text),
        );
        add({ id, json: withId(json, id), unit: { indexes: metas.map((m) => m.idx), metas } });
      },
      mismatch: (meta, reason) => this.setAside(meta, reason),
    };
  }

  /** A line that cannot become a document: to the reject file (or, with --strict, the run fails). */
  private setAside(meta: LineMeta, reason: string): void {
    this.counts.unmatched++;
    if (this.o.strict) {
      this.strictFailure ??= new OperationError(printable(`${this.where(meta)}: ${reason} (--strict): ${meta.text.slice(0, SHOWN_CHARS)}`));
      return;
    }
    this.reject([meta], reason);
    this.tell(`${this.where(meta)}: ${reason}: ${meta.text.slice(0, SHOWN_CHARS)}`);
    this.tracker.markDone(meta.idx);
  }

  private onOutcome(doc: OutDoc<Unit>, outcome: Outcome): void {
    if (outcome.kind === 'stored') this.counts.stored++;
    else if (outcome.kind === 'exists') this.counts.existing++;
    else {
      this.counts.rejected++;
      this.reject(doc.unit.metas, `refused by the ingress: ${outcome.reason}`, doc.json);
      this.tell(`${this.where(doc.unit.metas[0]!)}: refused by the ingress: ${outcome.reason}`);
    }
    // Written to the reject file first: only then may --truncate remove the line.
    this.tracker.markDone(doc.unit.indexes);
  }

  private reject(metas: LineMeta[], reason: string, doc?: string): void {
    const first = metas[0]!;
    this.rejects.write({
      source: this.spec.label,
      offset: first.offset,
      ...(this.spec.from === 0 ? { line: first.lineNo } : {}),
      reason,
      text: metas.length === 1 ? first.text : metas.map((m) => m.text),
      ...(doc !== undefined ? { doc } : {}),
    });
  }

  /** Reports on stderr, up to --report-limit lines (the summary counts them all). */
  private tell(line: string): void {
    // Lines quote log text: shown so that it cannot act on the terminal or cron's mail (lib/printable.ts).
    if (this.shown++ < this.o.reportLimit) this.o.report(printable(line));
  }

  /** file:line when reading from the start, else file:byte offset. */
  private where(m: LineMeta): string {
    return `${this.spec.label}:${this.spec.from === 0 ? `${m.lineNo}` : `byte ${m.offset}`}`;
  }
}
