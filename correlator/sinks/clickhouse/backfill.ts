// `couchlog backfill`: log_correlated's records into ClickHouse, for the
// records ClickHouse missed — decided while the ClickHouse sink was off (the
// embedded ClickHouse did not start, the sink was disabled), dropped by
// `drop_on_overflow`, or lost with a table that was dropped or restored
// from an older backup. log_correlated is the complete copy; ClickHouse is
// the analysts' one.
//
// What must stay true:
//  - a record reaches ClickHouse as the live sink sends it: the same row
//    (toJsonLine) with the same version (from decided_at), so whatever the
//    order in which backfill and a running correlator write, FINAL keeps the
//    latest decision; running it twice, or next to the correlator, is safe;
//  - a tombstone deletes the rows ClickHouse holds for its id with a lower
//    version, at their (time, id) key — the tombstone does not keep the
//    time, the row does; an id ClickHouse never held needs nothing; a
//    record deleted by hand (an admin's DELETE: no bookkeeping in the
//    tombstone) is deleted in ClickHouse too;
//  - under audit protection only records with the correlator's valid
//    signature are copied: anything else stored there is counted and
//    named, never made to look like the correlator's;
//  - the position reached (`since`) is only moved past a page once
//    ClickHouse acknowledged all of it, so an interrupted run resumes there.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClickHouseClient } from '@clickhouse/client';
import { backoffDelay } from '../../../lib/retry.js';
import { clickhouseErrorCode } from './clickhouse-delivery.js';
import type { ChangesFeed, FeedPage } from '../../feed/changes-feed.js';
import type { SignatureCheck } from '../../../lib/audit/record-signature.js';
import type { Sink, SinkRecord } from '../sink.js';
import { isRecordId, recordOfStored } from '../couchdb/stored-record.js';
import { deletionRows, LONGEST_LOOKUP_ID, type LookupError } from './held-rows.js';

export { LONGEST_LOOKUP_ID };

export interface BackfillOptions {
  /** log_correlated's _changes, read with an account that may. */
  feed: ChangesFeed;
  /** The ClickHouse sink (batching, retries, dead letters) the records go to. */
  sink: Sink;
  /** For the rows a tombstone deletes. */
  client: ClickHouseClient;
  database: string;
  table: string;
  /** Where to start in log_correlated's _changes ('0': from the start). */
  since: string;
  /** Only records decided at or after this (epoch ms); null: all. */
  decidedSince: number | null;
  /** Under audit protection, the signature check; null: every record is taken. */
  checkSignature: ((doc: Record<string, unknown>) => SignatureCheck) | null;
  /** Called after each page ClickHouse acknowledged. */
  onPage?: (p: BackfillProgress) => void;
  /** Stops after the page in progress (the position reached stays resumable). */
  signal?: AbortSignal;
  /** How long the lookups for tombstones are retried while ClickHouse fails. */
  giveUpAfterMs: number;
  /** Records handed to the sink before the oldest page is waited for (the sink's max_batch_size and more). */
  inFlight: number;
}

export interface BackfillProgress {
  /** Changes of log_correlated read. */
  read: number;
  /** Records sent and acknowledged (dead letters and drops are the sink's to count). */
  copied: number;
  /** Deletion rows written for tombstones of records ClickHouse held. */
  deleted: number;
  /** Records decided before --decided-since. */
  older: number;
  /** Tombstones of ids too long to look up in ClickHouse (longer than LONGEST_LOOKUP_ID): not deleted there. */
  skipped: number;
  /** Under audit protection: documents without the correlator's valid signature, not copied. */
  unsigned: number;
  /** A few of those ids, for the operator (couchlog audit lists them all). */
  unsignedIds: string[];
  /** Resume here: every change up to it is in ClickHouse. */
  since: string;
  /** Changes still to read, when the server says. */
  pending: number | null;
  /** True once a page came back short (log_correlated read to its end as of then). */
  done: boolean;
}

const UNSIGNED_LISTED = 20;
/** Pages written at once (see backfill()). */
const PAGES_IN_FLIGHT = 4;
const MAX_PAGES_IN_FLIGHT = 64;

/** deletionRows, retried with backoff while ClickHouse fails, for at most giveUpAfterMs (the sink's own failures have the same bound). */
async function deletionRowsRetried(o: BackfillOptions, tombstones: readonly SinkRecord[]): Promise<SinkRecord[]> {
  if (tombstones.length === 0) return [];
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await deletionRows(o.client, o.database, o.table, tombstones);
    } catch (err) {
      // A query ClickHouse cannot parse (62) fails the same way every time: no retry.
      if (Date.now() - started >= o.giveUpAfterMs || o.signal?.aborted || clickhouseErrorCode((err as LookupError).cause) === 62) throw err;
      await sleep(Math.min(backoffDelay(attempt, { baseMs: 500, maxMs: 30_000 }), Math.max(0, o.giveUpAfterMs - (Date.now() - started))));
    }
  }
}

/** A tombstone without the correlator's bookkeeping (an admin's DELETE): version 0, see deletionRows. */
function deletedByHand(id: string): SinkRecord {
  return { id, version: 0, deleted: true, record: { deleted: true } };
}

/** What one page gives: the records to send, the tombstones to place, and what was left out. */
function sortPage(page: FeedPage, o: BackfillOptions, p: BackfillProgress): { records: SinkRecord[]; tombstones: SinkRecord[] } {
  const records: SinkRecord[] = [];
  const tombstones: SinkRecord[] = [];
  for (const ch of page.changes) {
    if (!isRecordId(ch.id) || ch.doc === null || ch.doc === undefined) continue;
    if (o.checkSignature && o.checkSignature(ch.doc) !== 'valid') {
      p.unsigned++;
      if (p.unsignedIds.length < UNSIGNED_LISTED) p.unsignedIds.push(ch.id);
      continue;
    }
    const rec = recordOfStored(ch.id, ch.doc, ch.deleted === true) ?? (ch.deleted === true ? deletedByHand(ch.id) : null);
    if (rec === null) continue;
    if (o.decidedSince !== null && rec.version !== 0 && rec.version < o.decidedSince) {
      p.older++;
      continue;
    }
    if (rec.deleted && ch.id.length > LONGEST_LOOKUP_ID) {
      p.skipped++;
      continue;
    }
    (rec.deleted ? tombstones : records).push(rec);
  }
  return { records, tombstones };
}

/**
 * Reads log_correlated from `since` to its end (as of the last page) and
 * sends every record to the sink, a page at a time, the next page read
 * while the previous one is written. Feed and ClickHouse errors reject
 * (the progress passed to onPage says where to resume).
 */
export async function backfill(o: BackfillOptions): Promise<BackfillProgress> {
  const p: BackfillProgress = {
    read: 0,
    copied: 0,
    deleted: 0,
    older: 0,
    skipped: 0,
    unsigned: 0,
    unsignedIds: [],
    since: o.since,
    pending: null,
    done: false,
  };
  // Pages handed to the sink and not yet acknowledged, oldest first: several at once let the sink merge
  // them into INSERTs of up to max_batch_size (one page at a time made an INSERT per page: 0.34x of a plain
  // read of log_correlated); the position moves past a page only once it and every page before it are in.
  const window: Array<{ written: Promise<void>; page: FeedPage; records: number; deletions: number }> = [];
  const settle = async (): Promise<void> => {
    const w = window.shift()!;
    await w.written;
    p.read += w.page.changes.length;
    p.copied += w.records;
    p.deleted += w.deletions;
    p.since = w.page.lastSeq;
    p.pending = w.page.pending;
    p.done = !w.page.full;
    o.onPage?.(p);
  };
  let next: Promise<FeedPage> | null = o.feed.poll(o.since);
  while (next !== null) {
    const page: FeedPage = await next;
    next = page.full && !o.signal?.aborted ? o.feed.poll(page.lastSeq) : null;
    // A read ahead that fails while this page is written is reported when it is awaited, not as unhandled.
    next?.catch(() => {});
    const { records, tombstones } = sortPage(page, o, p);
    const deletions = await deletionRowsRetried(o, tombstones);
    window.push({ written: o.sink.write(records.concat(deletions)), page, records: records.length, deletions: deletions.length });
    // At least PAGES_IN_FLIGHT pages, and with small pages as many as make up `inFlight` records (so the sink
    // sends full batches instead of waiting for its flush interval), at most MAX_PAGES_IN_FLIGHT.
    const held = window.reduce((n, w) => n + w.records + w.deletions, 0);
    if (window.length >= MAX_PAGES_IN_FLIGHT || (window.length >= PAGES_IN_FLIGHT && held >= o.inFlight)) await settle();
  }
  while (window.length > 0) await settle();
  return p;
}
