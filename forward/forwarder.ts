// `couchlog forward`: follows _changes of log_<app> and sends every new
// document to a Splunk HTTP Event Collector, like seed 004's consumer group:
// the checkpoint (a file, written atomically) advances only after HEC took
// every event of the page, so after a crash or `kill -9` the forwarder
// resumes from the last page HEC acknowledged. Nothing is lost; what may
// be sent twice are the pages in flight at the crash (at most `inflight` x
// `max_events` documents): HEC has no idempotent ids. (couchlog's own HEC endpoint
// does: events carry their `_id`, so a repeat into couchlog is stored once.)
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { RetrySchedule } from '../lib/retry.js';
import type { Logger } from '../lib/logger.js';
import { HecSender, RefusedError, RetryableSendError, type HecSenderOptions } from '../lib/hec/hec-sender.js';
import { LineAppender } from '../lib/line-appender.js';
import { OperationError } from '../lib/errors.js';
import { writeFileDurably } from '../lib/durable-file.js';
import { untaggedId } from '../lib/tagged-id.js';
import { holdsWitness, parseWitness, witnessQuery, type PositionWitness } from '../lib/couch/position-witness.js';
import { PositionCheck } from '../lib/couch/position-check.js';

/** Pages read at a reduced page size before it is doubled again (see pageFailed). */
const GROW_AFTER_PAGES = 8;

/** How long stop() waits for the target to answer the page in flight. */
const STOP_GRACE_MS = 5000;

export interface ForwardMapping {
  /** Fixed HEC index, or null: the target token's default. */
  index: string | null;
  /** A document field whose string value is the index (wins over `index`). */
  indexField: string | null;
  /** null: `couchlog:log_<app>`. */
  source: string | null;
  sourcetype: string;
  /** A document field whose string value is the sourcetype. */
  sourcetypeField: string | null;
  /** A document field whose string value is the host. */
  hostField: string | null;
}

export interface ForwarderOptions {
  app: string;
  /** For logs and metrics (default: the app). */
  name?: string;
  /** CouchDB base URL and the headers of an account that may read log_<app>. */
  couchUrl: string;
  couchHeaders: Record<string, string>;
  checkpointFile: string;
  deadLetterFile: string;
  hec: HecSenderOptions;
  maxEvents: number;
  maxBytes: number;
  /** Pages being delivered at once (default 2): what may be sent twice after a crash. */
  inflight?: number;
  pollMs: number;
  backoff: { baseMs: number; maxMs: number };
  mapping: ForwardMapping;
  logger: Logger;
}

export interface ForwarderStatus {
  app: string;
  since: string;
  forwarded: number;
  deadLettered: number;
  /** Failed attempts retried: sends, _changes reads, writes of the checkpoint or dead-letter file. */
  retries: number;
  /** Changes not forwarded: deletions, design documents. */
  skipped: number;
  /** Times the checkpoint was found ahead of the database (made again, or restored) and the feed read from the start. */
  rewinds: number;
  lastError: string | null;
  /** When the forwarder last caught up with the feed (ms epoch), or null. */
  caughtUpAt: number | null;
  /** Since when (ms epoch) every attempt failed (CouchDB, HEC or the local disk), or null when the last one worked. */
  failingSince: number | null;
}

interface Page {
  results: Change[];
  last_seq: unknown;
  /** The limit it was asked with: a page that full means more may follow. */
  limit: number;
}

interface Change {
  seq: unknown;
  id: string;
  deleted?: boolean;
  doc?: Record<string, unknown>;
  changes?: Array<{ rev?: unknown }>;
}

/** A page's changes with their revisions (for its witness: lib/couch/position-check.ts). */
const revisionsOf = (page: Page) => page.results.map((c) => ({ id: c.id, rev: typeof c.changes?.[0]?.rev === 'string' ? c.changes[0].rev : null }));

/** Event times a HEC receiver takes: epoch seconds from 1970 to the end of year 9999 (couchlog's own HEC refuses others). */
const MAX_EVENT_SECONDS = 253402300799.999;

/**
 * An event time in epoch seconds: `timestamp` (s/ms/µs/ns by size), else
 * `time`, else `received_at`; the first one in range. (Found by a black-box
 * test: a document's `timestamp` of 1e30 or a `time` in year -100 went out
 * as such, and a couchlog receiver set the whole document aside.)
 */
export function eventTimeSeconds(doc: Record<string, unknown>): number | undefined {
  const inRange = (s: number) => (Number.isFinite(s) && s >= 0 && s <= MAX_EVENT_SECONDS ? s : undefined);
  const ts = doc.timestamp;
  if (typeof ts === 'number' && Number.isFinite(ts) && ts > 0) {
    const s = inRange(ts < 1e11 ? ts : ts < 1e14 ? ts / 1e3 : ts < 1e17 ? ts / 1e6 : ts / 1e9);
    if (s !== undefined) return s;
  }
  for (const key of ['time', 'received_at']) {
    const v = doc[key];
    if (typeof v === 'string') {
      const s = inRange(Date.parse(v) / 1000);
      if (s !== undefined) return s;
    }
  }
  return undefined;
}

/**
 * The HEC envelope of a stored document: the document (minus `_rev`) is the
 * event. A document stored under a tagged id (its id was taken by another
 * content) goes out with the id it was sent with: a couchlog receiver
 * refuses tagged ids from clients and tags it with its own key, the same
 * way every time, so a forward repeated stores nothing twice. (Found by a
 * black-box test: couchlog to couchlog set every such document aside.)
 */
export function envelopeOf(doc: Record<string, unknown>, app: string, m: ForwardMapping): Record<string, unknown> {
  const { _rev, ...event } = doc;
  void _rev;
  if (typeof event._id === 'string') event._id = untaggedId(event._id);
  const str = (field: string | null) => (field !== null && typeof doc[field] === 'string' && doc[field] !== '' ? (doc[field] as string) : undefined);
  const env: Record<string, unknown> = {};
  const time = eventTimeSeconds(doc);
  if (time !== undefined) env.time = Math.round(time * 1000) / 1000;
  const host = str(m.hostField);
  if (host !== undefined) env.host = host;
  env.source = m.source ?? `couchlog:log_${app}`;
  env.sourcetype = str(m.sourcetypeField) ?? m.sourcetype;
  const index = str(m.indexField) ?? m.index;
  if (index !== null && index !== undefined) env.index = index;
  env.event = event;
  return env;
}

/**
 * envelopeOf as JSON text, without copying the document (the hot path:
 * `doc` is a freshly parsed page's and loses its `_rev`).
 */
export function envelopeText(doc: Record<string, unknown>, app: string, m: ForwardMapping): string {
  const str = (field: string | null) => (field !== null && typeof doc[field] === 'string' && doc[field] !== '' ? (doc[field] as string) : undefined);
  let head = '{';
  const time = eventTimeSeconds(doc);
  if (time !== undefined) head += `"time":${Math.round(time * 1000) / 1000},`;
  const host = str(m.hostField);
  if (host !== undefined) head += `"host":${JSON.stringify(host)},`;
  head += `"source":${JSON.stringify(m.source ?? `couchlog:log_${app}`)},"sourcetype":${JSON.stringify(str(m.sourcetypeField) ?? m.sourcetype)},`;
  const index = str(m.indexField) ?? m.index;
  if (index !== null && index !== undefined) head += `"index":${JSON.stringify(index)},`;
  delete doc._rev;
  if (typeof doc._id === 'string') doc._id = untaggedId(doc._id);
  return `${head}"event":${JSON.stringify(doc)}}`;
}

/**
 * Where a page is cut into batches: [start, end) pairs of at most
 * `maxEvents` events and `maxBytes` bytes of request body (UTF-8 bytes, as
 * the target counts them: a string's length counts UTF-16 units, and a page
 * of non-ASCII text went over the target's limit by up to three times).
 * An event larger than `maxBytes` goes alone.
 */
export function batchBounds(envelopes: readonly string[], maxEvents: number, maxBytes: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let start = 0;
  while (start < envelopes.length) {
    let end = start;
    let bytes = 0;
    while (end < envelopes.length && end - start < maxEvents) {
      // +1: the newline between envelopes in the body.
      const size = Buffer.byteLength(envelopes[end]!) + 1;
      if (end > start && bytes + size > maxBytes) break;
      bytes += size;
      end++;
    }
    out.push([start, end]);
    start = end;
  }
  return out;
}

/**
 * How a batch of `length` events (more than one) that HEC refused for its
 * data is sent again: [from, to) parts, in order. With a usable
 * `invalid-event-number` N: the events before it, N alone (dead-lettered if
 * refused again), and the events after it; else in halves.
 *
 * What must stay true: nothing is taken as delivered on a refusal, so the
 * events before N are sent again. Splunk is reported to index them before
 * it stops at N (docs/forwarding.md, "Refused events"), but couchlog's own
 * HEC stores nothing of a refused request: skipping them would lose them
 * there. Cutting at N sends each of them again once; halving sent some of
 * them several times, since every refused half was indexed up to its bad
 * event again.
 */
export function refusedParts(length: number, eventNumber: number | null): Array<[number, number]> {
  if (eventNumber !== null && Number.isInteger(eventNumber) && eventNumber >= 0 && eventNumber < length) {
    const parts: Array<[number, number]> = [
      [0, eventNumber],
      [eventNumber, eventNumber + 1],
      [eventNumber + 1, length],
    ];
    return parts.filter(([from, to]) => to > from);
  }
  const half = Math.ceil(length / 2);
  return [
    [0, half],
    [half, length],
  ];
}

export class Forwarder {
  private readonly sender: HecSender;
  private readonly deadLetters: LineAppender;
  /** Documents per _changes page: max_events, halved while pages fail (see pageFailed). */
  private pageLimit: number;
  private pagesReadAtLimit = 0;
  /** Whether the feed's position is still in its database, and its witness (lib/couch/position-check.ts). */
  private readonly position: PositionCheck;
  private running = false;
  /** Sleeping waits (poll, backoff), woken by stop(). */
  private readonly wakers = new Set<() => void>();
  private readonly inflight: number;
  private loop: Promise<void> | null = null;
  readonly status: ForwarderStatus;
  readonly name: string;

  constructor(private readonly o: ForwarderOptions) {
    this.name = o.name ?? o.app;
    this.inflight = Math.max(1, o.inflight ?? 2);
    // With index_field an event names its own index, and HEC's code 7 is about that event (lib/hec/hec-sender.ts).
    this.sender = new HecSender({ ...o.hec, indexPerEvent: o.mapping.indexField !== null });
    this.deadLetters = new LineAppender(o.deadLetterFile, { mode: 0o600, sync: true });
    this.pageLimit = o.maxEvents;
    const saved = readCheckpointFile(o.checkpointFile);
    const probe = { holds: (w: PositionWitness) => this.holds(w), updateSeq: () => this.updateSeq() };
    const unknown = (err: unknown) =>
      o.logger.warn({ app: o.app, err: (err as Error).message }, `forward: could not check that the checkpoint is still in log_${o.app}; will look again`);
    this.position = new PositionCheck(probe, Date.now, saved.witness, unknown);
    this.status = {
      app: o.app,
      since: saved.since,
      forwarded: 0,
      deadLettered: 0,
      retries: 0,
      skipped: 0,
      rewinds: 0,
      lastError: null,
      caughtUpAt: null,
      failingSince: null,
    };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /**
   * Finishes the page in flight (or gives up waiting on a retry), then
   * stops. A target that has not answered within STOP_GRACE_MS is not
   * waited for: the request is aborted and the page, unconfirmed, is sent
   * again after the restart (nothing lost; it may arrive twice).
   */
  async stop(): Promise<void> {
    this.running = false;
    for (const wake of [...this.wakers]) wake();
    const finished = await Promise.race([this.loop?.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), STOP_GRACE_MS).unref())]);
    if (finished === false) {
      this.o.logger.warn(
        { app: this.o.app },
        `forward: the target did not answer within ${STOP_GRACE_MS} ms of stopping; the page in flight is sent again after the restart`,
      );
      this.sender.abort();
      await this.loop;
    }
    await this.sender.close();
    await this.deadLetters.close();
  }

  private async sleep(ms: number): Promise<void> {
    if (!this.running) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wakers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }

  private async run(): Promise<void> {
    const readRetry = new RetrySchedule(this.o.backoff);
    // Pages are read one ahead and up to `inflight` are being delivered at
    // once; the checkpoint moves in feed order, to the last page delivered
    // with every page before it.
    let cursor = this.status.since;
    let ahead: { since: string; limit: number; page: Promise<Page> } | null = null;
    const window: Array<{ seq: string; witness: PositionWitness | null; done: Promise<boolean> }> = [];
    let savedWitness = this.position.witness;
    const settle = async (): Promise<boolean> => {
      const oldest = window.shift()!;
      if (!(await oldest.done)) return false; // stopped while retrying: that page is sent again next time
      // A new witness at the same position (a database made again, read to where the old one stood) is saved too.
      if (oldest.seq !== this.status.since || oldest.witness !== savedWitness) {
        if (!(await this.untilWritten('the checkpoint', () => writeCheckpoint(this.o.checkpointFile, oldest.seq, oldest.witness)))) return false;
        this.status.since = oldest.seq;
        savedWitness = oldest.witness;
      }
      return true;
    };
    loop: while (this.running) {
      let page: Page;
      try {
        const mine: { since: string; limit: number; page: Promise<Page> } | null = ahead;
        ahead = null;
        page = mine !== null && mine.since === cursor && mine.limit === this.pageLimit ? await mine.page : await this.readPage(cursor, this.pageLimit);
        readRetry.succeeded();
        this.worked();
      } catch (err) {
        this.status.lastError = (err as Error).message;
        this.status.failingSince ??= Date.now();
        this.status.retries++;
        this.pageFailed();
        // A database deleted and made again fails reads meanwhile: the next page is checked.
        this.position.failed();
        this.o.logger.warn({ app: this.o.app, err: (err as Error).message, pageLimit: this.pageLimit }, 'forward: reading _changes failed; retrying');
        await this.sleep(readRetry.failed()!);
        continue;
      }
      if (await this.rewoundIfElsewhere(cursor, page.results.length === 0)) {
        // Pages in flight are of the old position; the checkpoint moves on as they are delivered, then back.
        cursor = '';
        continue;
      }
      const full = page.results.length >= page.limit;
      const seq = JSON.stringify(page.last_seq);
      this.pageRead();
      if (full) {
        const limit = this.pageLimit;
        const next = this.readPage(seq, limit);
        next.catch(() => {}); // read again if it failed
        ahead = { since: seq, limit, page: next };
      }
      const docs = page.results.filter((c) => c.doc && !c.deleted && !c.id.startsWith('_design/')).map((c) => c.doc!);
      this.status.skipped += page.results.length - docs.length;
      const envelopes = docs.map((d) => envelopeText(d, this.o.app, this.o.mapping));
      this.position.read(revisionsOf(page));
      window.push({ seq, witness: this.position.witness, done: this.deliver(envelopes, docs) });
      cursor = seq;
      while (window.length >= this.inflight || (!full && window.length > 0)) {
        if (!(await settle())) break loop;
      }
      if (!full) {
        this.status.caughtUpAt = Date.now();
        await this.sleep(this.o.pollMs);
      }
    }
    // Stopping: pages in flight finish (or give up while retrying); the
    // checkpoint moves as far as every page before it was delivered.
    while (window.length > 0) {
      if (!(await settle())) {
        await Promise.allSettled(window.map((w) => w.done));
        break;
      }
    }
  }

  /**
   * Whether the checkpoint's position is not in its database any more (it
   * was deleted and made again, or restored from an older copy; when and
   * how: lib/couch/position-check.ts): then the whole database is forwarded
   * again (a document already sent may arrive twice).
   */
  private async rewoundIfElsewhere(cursor: string, emptyPage: boolean): Promise<boolean> {
    const since = cursor === '' ? null : (JSON.parse(cursor) as unknown);
    const lost = await this.position.lost(since, emptyPage);
    if (lost === null) return false;
    this.status.rewinds++;
    this.o.logger.warn(
      { app: this.o.app, since, ...lost },
      `forward: the checkpoint is not in log_${this.o.app} (the database was made again, or restored from an older copy): forwarding it from the start`,
    );
    this.position.reset();
    return true;
  }

  private async holds(witness: PositionWitness): Promise<boolean> {
    const db = `log_${this.o.app}`;
    const res = await fetch(`${this.o.couchUrl}${witnessQuery(db, witness)}`, {
      headers: { accept: 'application/json', ...this.o.couchHeaders },
      signal: AbortSignal.timeout(this.o.hec.timeoutMs),
    });
    return holdsWitness(db, witness, res.status, await res.json());
  }

  private async updateSeq(): Promise<unknown> {
    const res = await fetch(`${this.o.couchUrl}/log_${this.o.app}`, {
      headers: { accept: 'application/json', ...this.o.couchHeaders },
      signal: AbortSignal.timeout(this.o.hec.timeoutMs),
    });
    const info = (await res.json()) as { update_seq?: unknown };
    if (res.status !== 200) throw new OperationError(`reading log_${this.o.app}'s update_seq: ${res.status} ${JSON.stringify(info)}`);
    return info.update_seq;
  }

  /**
   * A page the server cannot answer (documents of several MB each: PouchDB
   * Server fails with "Invalid string length", CouchDB may time out) is
   * asked again at half the size, down to one document; every
   * GROW_AFTER_PAGES pages read double it back towards max_events. A fixed
   * page size left the forwarder retrying the same page for ever.
   */
  private pageFailed(): void {
    this.pageLimit = Math.max(1, Math.floor(this.pageLimit / 2));
    this.pagesReadAtLimit = 0;
  }

  private pageRead(): void {
    if (this.pageLimit === this.o.maxEvents || ++this.pagesReadAtLimit < GROW_AFTER_PAGES) return;
    this.pagesReadAtLimit = 0;
    this.pageLimit = Math.min(this.o.maxEvents, this.pageLimit * 2);
  }

  /** A step worked (a page read, a batch sent, a file written): whatever failed before is over (--give-up-after counts from the last failure after a success). */
  private worked(): void {
    this.status.lastError = null;
    this.status.failingSince = null;
  }

  /** A write to the local disk (checkpoint, dead letter) retried until it works or the forwarder stops; false: stopped first. */
  private async untilWritten(what: string, write: () => void | Promise<void>): Promise<boolean> {
    const retry = new RetrySchedule(this.o.backoff);
    for (;;) {
      try {
        await write();
        this.worked();
        return true;
      } catch (err) {
        this.status.lastError = `${what}: ${(err as Error).message}`;
        this.status.failingSince ??= Date.now();
        this.status.retries++;
        this.o.logger.error({ app: this.o.app, err: (err as Error).message }, `forward: ${what} cannot be written; retrying`);
        if (!this.running) return false;
        await this.sleep(retry.failed()!);
        if (!this.running) return false;
      }
    }
  }

  private async readPage(checkpoint: string, limit: number): Promise<Page> {
    const since = checkpoint === '' ? '0' : (JSON.parse(checkpoint) as unknown);
    // seq_interval: CouchDB 3 encodes a sequence for the page's last change only (the checkpoint is last_seq).
    const q = new URLSearchParams({
      since: typeof since === 'string' ? since : String(since),
      limit: String(limit),
      include_docs: 'true',
      seq_interval: String(limit),
    });
    const res = await fetch(`${this.o.couchUrl}/log_${this.o.app}/_changes?${q}`, {
      headers: { accept: 'application/json', ...this.o.couchHeaders },
      signal: AbortSignal.timeout(this.o.hec.timeoutMs),
    });
    const body = (await res.json()) as { results?: Change[]; last_seq?: unknown; reason?: string };
    if (res.status !== 200 || !Array.isArray(body.results))
      throw new OperationError(`_changes of log_${this.o.app} answered ${res.status}: ${body.reason ?? ''}`);
    return { results: body.results, last_seq: body.last_seq, limit };
  }

  /** Sends a page in batches (count and bytes); false if stopped before HEC took all of it. */
  private async deliver(envelopes: string[], docs: Array<Record<string, unknown>>): Promise<boolean> {
    for (const [start, end] of batchBounds(envelopes, this.o.maxEvents, this.o.maxBytes)) {
      if (!(await this.sendBatch(envelopes.slice(start, end), docs.slice(start, end)))) return false;
    }
    return true;
  }

  /** Retries what can succeed later; narrows refused batches down to the events HEC refuses (see refusedParts). */
  private async sendBatch(envelopes: string[], docs: Array<Record<string, unknown>>): Promise<boolean> {
    const retry = new RetrySchedule(this.o.backoff);
    for (;;) {
      try {
        await this.sender.send(envelopes);
        this.status.forwarded += envelopes.length;
        this.worked();
        return true;
      } catch (err) {
        if (err instanceof RefusedError) {
          if (envelopes.length === 1) {
            return this.deadLetter(docs[0]!, envelopes[0]!, err.message);
          }
          for (const [from, to] of refusedParts(envelopes.length, err.eventNumber)) {
            if (!(await this.sendBatch(envelopes.slice(from, to), docs.slice(from, to)))) return false;
          }
          return true;
        }
        // Cut short by stop(): no failure, the page is sent again on the next start.
        if (!this.running) return false;
        const retryAfter = err instanceof RetryableSendError ? err.retryAfterMs : null;
        this.status.retries++;
        this.status.lastError = (err as Error).message;
        this.status.failingSince ??= Date.now();
        const fields = { app: this.o.app, err: (err as Error).message, attempt: retry.failures };
        if (err instanceof RetryableSendError && err.operatorMustFix)
          this.o.logger.error(fields, 'forward: the target refuses our setup (token, URL, a proxy): fix it; the events wait and are retried');
        else this.o.logger.warn(fields, 'forward: HEC send failed; retrying');
        if (!this.running) return false;
        await this.sleep(retry.failed(retryAfter)!);
        if (!this.running) return false;
      }
    }
  }

  /** Set aside once its line is on disk; false: stopped before the file could be written (the page is sent again next time). */
  private async deadLetter(doc: Record<string, unknown>, envelope: string, reason: string): Promise<boolean> {
    const line = `${JSON.stringify({ id: doc._id, reason, at: new Date().toISOString(), envelope: JSON.parse(envelope) as unknown })}\n`;
    if (!(await this.untilWritten('the dead-letter file', () => this.deadLetters.append(line)))) return false;
    this.status.deadLettered++;
    this.o.logger.error(
      { app: this.o.app, id: doc._id, reason, file: this.o.deadLetterFile },
      'forward: HEC refused an event; written to the dead-letter file',
    );
    return true;
  }
}

/** The checkpoint: the JSON of the last acknowledged page's last_seq ('' before the first). */
export function readCheckpoint(file: string): string {
  return readCheckpointFile(file).since;
}

/** The checkpoint's position and its witness (none in a checkpoint of an older couchlog). */
function readCheckpointFile(file: string): { since: string; witness: PositionWitness | null } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { since: '', witness: null };
    throw new OperationError(`forward checkpoint ${file} cannot be read: ${(err as Error).message}`);
  }
  let v: { since?: unknown; witness?: unknown } | null | undefined;
  try {
    v = JSON.parse(text) as { since?: unknown; witness?: unknown } | null;
  } catch {
    v = undefined;
  }
  // Not started over from the beginning on its own: that would send the whole database again.
  if (typeof v?.since !== 'string' || !isJsonSeq(v.since))
    throw new OperationError(
      `forward checkpoint ${file} is not a checkpoint (${text.length} bytes): restore it, or delete it to forward the whole database again`,
    );
  return { since: v.since, witness: parseWitness(v.witness) };
}

/** A sequence as the checkpoint keeps it: CouchDB's last_seq as JSON text (a number, or a string on CouchDB 3), or '' before the first page. */
function isJsonSeq(text: string): boolean {
  if (text === '') return true;
  try {
    const seq = JSON.parse(text) as unknown;
    return typeof seq === 'string' || typeof seq === 'number';
  } catch {
    return false;
  }
}

/** Written durably (fsync): a checkpoint lost or emptied by a power cut would send everything again, or stop the start. */
function writeCheckpoint(file: string, since: string, witness: PositionWitness | null): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileDurably(file, `${JSON.stringify({ since, at: new Date().toISOString(), ...(witness && { witness }) })}\n`);
}
