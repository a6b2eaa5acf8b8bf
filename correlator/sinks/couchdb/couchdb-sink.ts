// Correlated records into CouchDB (log_correlated), under their
// deterministic ids. A record decided early is provisional: a correction
// comes later under the same id (revision 2, 3..., or a deletion), and is
// written over the stored one with its current _rev.
//
// What must stay true:
//  - first revisions go out in one _bulk_docs without _rev (the common
//    case costs one request); a conflict there means the id is stored
//    already (a replay after a crash, or a correction that overtook it);
//  - everything else is an upsert against what is stored (over a
//    tombstone: without _rev, the only way CouchDB 3 takes it): nothing is
//    written when the stored content is the same (bookkeeping aside), or
//    when the stored record was decided later (batches in flight may be
//    acknowledged out of order; `decided_at` orders the decisions);
//  - a conflict while upserting (the stored record moved) is read again,
//    a bounded number of times, then retried by the batching sink;
//  - a batch writes only the latest decision of each id it holds: an
//    earlier one is superseded, and writing it (again, when the batch is
//    retried after its deletion was stored) would bring a deleted record
//    back, since CouchDB takes a write without _rev over a tombstone;
//  - a write CouchDB answers 202 (a cluster stored it on fewer copies than
//    its write quorum) is read back from every copy (r = n), which repairs
//    the copies that lack it, before it counts as delivered: the reads
//    above and the connection lookups are quorum reads, and must see it;
//  - every deletion written is checked again once the cluster has settled
//    (tombstone-watch.ts): a slow copy may apply the earlier write of the
//    record late, over the tombstone;
//  - with a signing key every document written, tombstones included,
//    carries its signature over exactly what is stored and the revision
//    generation it is stored at (lib/audit/record-signature.ts): a write
//    with `_rev: n-…` makes n+1, a new one 1, one without _rev over a
//    tombstone t-… t+1. First revisions are signed for 1 without reading
//    first; one that CouchDB stored at another generation (a tombstone was
//    there) is written again at once, signed for where it lands, and so is
//    any stored record whose content is the correlator's but whose
//    signature does not hold where it stands. Conflicts and retries read
//    again and sign again.
import type { CouchHttp } from '../../../lib/couch/http.js';
import { matchResults } from '../../../lib/couch/bulk-results.js';
import { fingerprint } from '../../engine/fingerprint.js';
import { revGeneration, SIGNATURE_FIELD } from '../../../lib/audit/record-signature.js';
import type { Delivery } from '../batching-sink.js';
import type { FailureKind, SinkRecord } from '../sink.js';
import { TombstoneWatch } from './tombstone-watch.js';
import { storedDoc as toDoc } from './stored-record.js';
import { OperationError } from '../../../lib/errors.js';
import { isStoredWrite } from '../../../lib/couch/write-status.js';

/** Some documents were refused for a reason retrying cannot fix. */
export class PermanentDeliveryError extends Error {
  override readonly name = 'PermanentDeliveryError';
}

/**
 * CouchDB refuses the correlator's account, not the records (its password,
 * its role log_correlator, the database's members): the operator's to fix.
 * The records wait and are retried, loudly; dead-lettering them would move
 * the checkpoint past every record of the outage.
 */
export class SinkSetupError extends OperationError {
  override readonly name = 'SinkSetupError';
}

/** validate_doc_update's refusals of the account rather than of a record (design-docs/append-only.ts). */
const ACCOUNT_REFUSAL = /^only (the correlator|admins) /;

/**
 * What per-document refusals of a _bulk_docs mean for the batch: an
 * account refusal or a missing result (no answer is not a refusal: the
 * ingress answers it 503 too) is retried; only refusals of the records
 * themselves go on to the dead letters.
 */
export function refusalError(refused: ReadonlyArray<{ id: string; error: string; reason: string }>): Error | null {
  if (refused.length === 0) return null;
  const example = (r: { id: string; error: string; reason: string }) => `${refused.length} document(s) refused, e.g. ${r.id}: ${r.error} ${r.reason}`;
  const account = refused.find((r) => r.error === 'unauthorized' || (r.error === 'forbidden' && ACCOUNT_REFUSAL.test(r.reason)));
  if (account) return new SinkSetupError(`${example(account)} (the correlator's account in CouchDB: its role log_correlator, the database's members)`);
  const unknown = refused.find((r) => r.error === 'unknown');
  if (unknown) return new OperationError(example(unknown));
  return new PermanentDeliveryError(example(refused[0]!));
}

interface Stored {
  rev: string;
  deleted: boolean;
  doc: Record<string, unknown> | null;
  /** The other live branches' revisions (read only when asked for). */
  conflicts: string[];
}

/** A document to write, and the revision generation CouchDB will store it at (what it is signed for). */
interface Outgoing {
  doc: Record<string, unknown>;
  generation: number;
}

/** What a _bulk_docs did not do as asked. */
interface BulkOutcome {
  /** Not written: the stored document moved. */
  conflicted: Set<string>;
  /** Written, but at another generation than signed for (a tombstone was there): to be written again. */
  misplaced: Set<string>;
}

/** The generation a write over `rev` creates (a write with that _rev, or without _rev over that tombstone). */
function after(rev: string): number {
  return (revGeneration(rev) ?? 0) + 1;
}

/** One live branch of a stored record. */
interface Leaf {
  rev: string;
  doc: Record<string, unknown>;
}

/**
 * The live branches of a deleted record to delete again: all but the one
 * newest decision made after the deletion, if there is one. A late copy
 * can leave the earlier content as a branch beside a newer decision; the
 * winner among branches is CouchDB's pick by revision hash, not the newest
 * decision, and a later deletion of the winner would bring that branch up.
 */
export function staleLeaves(deletion: SinkRecord, leaves: readonly Leaf[]): Leaf[] {
  const decided = (l: Leaf) => (typeof l.doc.decided_at === 'string' ? l.doc.decided_at : '');
  const deletedAt = String(deletion.record.decided_at ?? '');
  let keep: Leaf | null = null;
  for (const l of leaves) {
    if (decided(l) <= deletedAt) continue;
    if (keep === null || decided(l) > decided(keep) || (decided(l) === decided(keep) && l.rev > keep.rev)) keep = l;
  }
  return leaves.filter((l) => l !== keep);
}

const UPSERT_ROUNDS = 5;
/** Documents read back at once after a 202. */
const REPAIR_CONCURRENCY = 8;

/** The tombstone the correlator writes for a deletion: its bookkeeping only. */
function tombstone(r: SinkRecord): Record<string, unknown> {
  return { _id: r.id, _deleted: true, revision: r.record.revision, decided_at: r.record.decided_at };
}

/** The last record of each id, in batch order (the fan-out queues decisions in the order they were made). */
export function latestOfEach(batch: readonly SinkRecord[]): SinkRecord[] {
  const last = new Map<string, number>();
  batch.forEach((r, i) => last.set(r.id, i));
  return last.size === batch.length ? [...batch] : batch.filter((r, i) => last.get(r.id) === i);
}

export interface CouchDbDeliveryOptions {
  /** Counts corrections actually written (revision > 1, deletions). */
  onCorrection?: (n: number) => void;
  /** With a signing key: the signature of each document as written at a revision generation (lib/audit/record-signature.ts). */
  sign?: ((doc: Record<string, unknown>, generation: number) => string) | null;
  /** Counts documents CouchDB answered 202 for (read back from every copy). */
  onPartialWrite?: (n: number) => void;
  /** Counts deleted records found live again, and deleted again. */
  onResurrection?: (n: number) => void;
  /** A check of deleted records failed (it is made again at the next tick; `givenUp` of them no longer). */
  onCheckFailed?: (err: unknown, givenUp: number) => void;
  /** When each deletion is checked again (default 2 s, 15 s, 60 s after it was written). */
  recheckDelaysMs?: readonly number[];
}

/** How often due checks of deleted records run. */
const RECHECK_TICK_MS = 1000;

export class CouchDbDelivery implements Delivery {
  private readonly onCorrection: (n: number) => void;
  private readonly sign: ((doc: Record<string, unknown>, generation: number) => string) | null;
  private readonly onPartialWrite: (n: number) => void;
  private readonly onResurrection: (n: number) => void;
  private readonly onCheckFailed: (err: unknown, givenUp: number) => void;
  private readonly watch: TombstoneWatch;
  private readonly ticker: NodeJS.Timeout;
  private checking: Promise<void> | null = null;

  constructor(
    private readonly http: CouchHttp,
    private readonly db: string,
    private readonly headers: Record<string, string>,
    o: CouchDbDeliveryOptions = {},
  ) {
    this.onCorrection = o.onCorrection ?? (() => {});
    this.sign = o.sign ?? null;
    this.onPartialWrite = o.onPartialWrite ?? (() => {});
    this.onResurrection = o.onResurrection ?? (() => {});
    this.onCheckFailed = o.onCheckFailed ?? (() => {});
    this.watch = new TombstoneWatch(o.recheckDelaysMs ?? [2_000, 15_000, 60_000]);
    this.ticker = setInterval(() => void this.recheck(), Math.min(RECHECK_TICK_MS, ...(o.recheckDelaysMs ?? [RECHECK_TICK_MS])));
    this.ticker.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.ticker);
    await this.checking;
  }

  /** Deletions waiting for a check (a gauge for tests and /health). */
  get watched(): number {
    return this.watch.size;
  }

  /**
   * Deletes again the deleted records whose check is due and that are live
   * with content decided before their deletion. A check that fails
   * (CouchDB unreachable) is made again at the next tick.
   */
  recheck(): Promise<void> {
    this.checking ??= this.recheckDue().finally(() => (this.checking = null));
    return this.checking;
  }

  private async recheckDue(): Promise<void> {
    const due = this.watch.takeDue();
    if (due.length === 0) return;
    try {
      const { leaves, unread } = await this.liveLeaves(due.map((r) => r.id));
      const docs: Outgoing[] = [];
      const deleted = new Map<string, { rec: SinkRecord; stale: number }>();
      for (const r of due) {
        if (unread.has(r.id)) continue;
        const at = String(r.record.decided_at ?? '');
        for (const leaf of staleLeaves(r, leaves.get(r.id) ?? [])) {
          docs.push({ doc: { ...tombstone(r), _rev: leaf.rev }, generation: after(leaf.rev) });
          // Only earlier content is a resurrection; a second branch of a newer decision is only tidied away.
          const entry = deleted.get(r.id) ?? { rec: r, stale: 0 };
          if (!(typeof leaf.doc.decided_at === 'string' && leaf.doc.decided_at > at)) entry.stale += 1;
          deleted.set(r.id, entry);
        }
      }
      // With a _rev, CouchDB stores at that revision's generation + 1: nothing lands elsewhere here.
      const conflicted = docs.length > 0 ? (await this.bulk(docs)).conflicted : new Set<string>();
      this.onResurrection([...deleted.values()].filter((d) => !conflicted.has(d.rec.id)).reduce((n, d) => n + d.stale, 0));
      // Moved meanwhile (a newer decision being written), or its branches unreadable: looked at again at the next tick.
      const again = due.filter((r) => conflicted.has(r.id) || unread.has(r.id));
      this.watch.checked(due.filter((r) => !again.includes(r)));
      const givenUp = this.watch.retry(again);
      if (unread.size > 0 || givenUp > 0)
        this.onCheckFailed(
          new OperationError(
            `${again.length} deleted record(s) could not be checked (e.g. ${again[0]?.id}): ${unread.size} unreadable, ${conflicted.size} moved meanwhile`,
          ),
          givenUp,
        );
    } catch (err) {
      this.onCheckFailed(err, this.watch.retry(due));
    }
  }

  /**
   * The live leaves of each record: the winner, and the conflicting
   * branches a late copy left (read only for the records that have any;
   * those whose branches cannot be read are `unread`).
   */
  private async liveLeaves(ids: string[]): Promise<{ leaves: Map<string, Leaf[]>; unread: Set<string> }> {
    const stored = await this.current(ids, true);
    const leaves = new Map<string, Leaf[]>();
    const unread = new Set<string>();
    for (const [id, cur] of stored) {
      if (cur.conflicts.length === 0) {
        if (!cur.deleted && cur.doc) leaves.set(id, [{ rev: cur.rev, doc: cur.doc }]);
        continue;
      }
      const res = await this.http
        .request<unknown>('GET', `${this.base}/${encodeURIComponent(id)}?open_revs=all`, { headers: { ...this.headers, accept: 'application/json' } })
        .catch(() => null);
      if (res === null || res.status !== 200 || !Array.isArray(res.body)) {
        unread.add(id);
        continue;
      }
      const live: Leaf[] = [];
      for (const l of res.body as Array<{ ok?: Record<string, unknown> }>) if (l.ok && l.ok._deleted !== true) live.push({ rev: String(l.ok._rev), doc: l.ok });
      leaves.set(id, live);
    }
    return { leaves, unread };
  }

  private get base(): string {
    return `/${encodeURIComponent(this.db)}`;
  }

  async deliver(all: SinkRecord[]): Promise<void> {
    const batch = latestOfEach(all);
    await this.write(batch);
    // A newer decision written after a deletion does not end its watch: a late copy can still bring the
    // earlier content back, as a branch beside it.
    this.watch.add(batch.filter((r) => r.deleted));
  }

  private async write(batch: SinkRecord[]): Promise<void> {
    const fresh = batch.filter((r) => !r.deleted && r.record.revision === 1);
    let upserts = batch.filter((r) => r.deleted || r.record.revision !== 1);
    if (fresh.length > 0) {
      // Signed for generation 1 without reading first (the in-order path stays one request); over a tombstone
      // it lands higher and is written again below, right away.
      const out = await this.bulk(fresh.map((r) => ({ doc: toDoc(r), generation: 1 })));
      upserts = upserts.concat(fresh.filter((r) => out.conflicted.has(r.id) || out.misplaced.has(r.id)));
    }
    for (let round = 0; round < UPSERT_ROUNDS && upserts.length > 0; round++) {
      const stored = await this.current(upserts.map((r) => r.id));
      const docs: Outgoing[] = [];
      const byId = new Map<string, SinkRecord>();
      for (const r of upserts) {
        const doc = this.upsertDoc(r, stored.get(r.id));
        if (doc) {
          docs.push(doc);
          byId.set(r.id, r);
        }
      }
      if (docs.length === 0) return;
      const out = await this.bulk(docs);
      this.onCorrection(docs.length - out.conflicted.size);
      upserts = [...byId.values()].filter((r) => out.conflicted.has(r.id) || out.misplaced.has(r.id));
    }
    if (upserts.length > 0) throw new OperationError(`${upserts.length} correlated record(s) kept changing under the correlator (e.g. ${upserts[0]!.id})`);
  }

  /** The document to write over what is stored, or null when nothing needs writing. */
  private upsertDoc(r: SinkRecord, cur: Stored | undefined): Outgoing | null {
    const live = cur !== undefined && !cur.deleted && cur.doc !== null;
    // Over a tombstone a record is written without _rev, which extends the tombstone's branch: CouchDB 3
    // refuses the tombstone's own _rev there as a conflict (PouchDB Server takes both). Should the record
    // have come back meanwhile, the write conflicts and is read again.
    // A deletion of a record that reads as absent is written anyway: a CouchDB cluster may answer
    // from a replica that has not seen it yet; if it exists, the write conflicts and is read again.
    if (!live) {
      const generation = cur ? after(cur.rev) : 1;
      if (!r.deleted) return { doc: toDoc(r), generation };
      // Already deleted: nothing to do. (A deletion is never stored at another generation than signed for: it is
      // written without _rev only when nothing is read, and over a tombstone CouchDB 3 and PouchDB Server both
      // refuse it as a conflict, with or without _rev.)
      return cur ? null : { doc: tombstone(r), generation };
    }
    const doc = cur.doc!;
    if (typeof doc.decided_at === 'string' && typeof r.record.decided_at === 'string' && doc.decided_at > r.record.decided_at) return null;
    if (r.deleted) return { doc: { ...tombstone(r), _rev: cur.rev }, generation: after(cur.rev) };
    const storedRev = typeof doc.revision === 'number' ? doc.revision : 1;
    if (fingerprint(doc) === fingerprint(r.record)) {
      if (this.wellSigned(cur)) return null;
      // The same decision, stored where its signature does not hold (a first revision that landed over a
      // tombstone): written again as it is, signed for its new place; `revision` is not a correction's.
      return { doc: { ...toDoc(r), _rev: cur.rev, revision: Math.max(Number(r.record.revision) || 1, storedRev) }, generation: after(cur.rev) };
    }
    const revision = Math.max(Number(r.record.revision) || 1, storedRev + 1);
    return { doc: { ...toDoc(r), _rev: cur.rev, revision }, generation: after(cur.rev) };
  }

  /** Without a key, anything stored is; with one, whether a stored record's signature holds at its own generation. */
  private wellSigned(cur: Stored): boolean {
    if (!this.sign || cur.doc === null) return true;
    const generation = revGeneration(cur.rev);
    return generation !== null && cur.doc[SIGNATURE_FIELD] === this.sign(cur.doc, generation);
  }

  /** Writes documents, signed for their generation; answers what conflicted or landed elsewhere, throws on anything else refused. */
  private async bulk(out: Outgoing[]): Promise<BulkOutcome> {
    const docs = out.map((o) => o.doc);
    if (this.sign) for (const o of out) o.doc[SIGNATURE_FIELD] = this.sign(o.doc, o.generation);
    const res = await this.http.request<unknown>('POST', `${this.base}/_bulk_docs`, { headers: this.headers, body: JSON.stringify({ docs }) });
    if (res.status === 400 || res.status === 413) throw new PermanentDeliveryError(`CouchDB refused the batch: ${res.status} ${JSON.stringify(res.body)}`);
    if (res.status === 401 || res.status === 403)
      throw new SinkSetupError(`CouchDB refused the correlator's account: ${res.status} ${JSON.stringify(res.body)}`);
    if (!isStoredWrite(res.status)) throw new OperationError(`CouchDB answered ${res.status}: ${JSON.stringify(res.body)}`);
    const results = matchResults(docs as Array<{ _id: string }>, res.body);
    if (res.status === 202) await this.onEveryCopy(results.filter((r) => 'ok' in r).map((r) => r.id));
    const refusal = refusalError(results.filter((r) => 'error' in r && r.error !== 'conflict') as Array<{ id: string; error: string; reason: string }>);
    if (refusal) throw refusal;
    const misplaced = new Set<string>();
    if (this.sign) results.forEach((r, i) => 'rev' in r && revGeneration(r.rev) !== out[i]!.generation && misplaced.add(r.id));
    return { conflicted: new Set(results.filter((r) => 'error' in r).map((r) => r.id)), misplaced };
  }

  /**
   * Reads each document with r = 3 (at most n): CouchDB waits for every
   * copy that answers and writes the newest revision to those that lack it
   * before it replies. A copy that stays down catches up by internal
   * replication once it is back.
   */
  private async onEveryCopy(ids: string[]): Promise<void> {
    this.onPartialWrite(ids.length);
    for (let i = 0; i < ids.length; i += REPAIR_CONCURRENCY) {
      await Promise.all(
        ids.slice(i, i + REPAIR_CONCURRENCY).map(async (id) => {
          const res = await this.http.request('GET', `${this.base}/${encodeURIComponent(id)}?r=3`, { headers: this.headers });
          if (res.status !== 200 && res.status !== 404)
            throw new OperationError(`reading ${id} back from every copy after a 202: ${res.status} ${JSON.stringify(res.body)}`);
        }),
      );
    }
  }

  private async current(ids: string[], conflicts = false): Promise<Map<string, Stored>> {
    const res = await this.http.request<{
      rows?: Array<{ id?: string; key?: string; value?: { rev: string; deleted?: boolean }; doc?: Record<string, unknown> | null; error?: string }>;
    }>('POST', `${this.base}/_all_docs?include_docs=true${conflicts ? '&conflicts=true' : ''}`, { headers: this.headers, body: JSON.stringify({ keys: ids }) });
    if (res.status === 401 || res.status === 403)
      throw new SinkSetupError(`CouchDB refused the correlator's account: ${res.status} ${JSON.stringify(res.body)}`);
    if (res.status !== 200) throw new OperationError(`reading ${ids.length} correlated records: ${res.status} ${JSON.stringify(res.body)}`);
    const out = new Map<string, Stored>();
    for (const row of res.body.rows ?? []) {
      if (!row.value || row.error) continue;
      const doc = row.doc ?? null;
      const branches = Array.isArray(doc?._conflicts) ? (doc._conflicts as unknown[]).map(String) : [];
      out.set(row.key ?? row.id!, { rev: row.value.rev, deleted: row.value.deleted === true, doc, conflicts: branches });
    }
    return out;
  }

  classify(err: unknown): FailureKind {
    return err instanceof PermanentDeliveryError ? 'permanent' : err instanceof SinkSetupError ? 'config' : 'retry';
  }
}
