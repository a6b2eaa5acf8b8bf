// The checkpoint, a _local document (not replicated, not in _changes) of
// the correlator's state database couchlog_state_<app>, where only the
// correlator's role is a member (setup/ensure-correlator-dbs.ts says why it is not
// in log_<app>): each feed's position and next index, and a snapshot of the
// engine's state as document ids (the documents themselves are fetched again
// on restart).
//
// The snapshot is stored gzipped, as one base64 string (`state_gzip`): as
// JSON it is a few MB of small arrays that the server must parse, copy and
// store on every save, and read and parse again on the next one (PouchDB
// Server compares revisions of a _local document by reading it): 120–130 ms
// of the embedded server's CPU for a 2 MB snapshot, 160–170 ms of Apache
// CouchDB 3.5's. As one string it is about half the bytes and nearly
// nothing to parse (17–19 ms and 54–58 ms). The feed positions stay plain
// JSON, readable by an operator. A checkpoint of an older couchlog (`state`
// as JSON) is still read; an older couchlog cannot read this one and reads
// its feeds again from the start (docs/production.md, rolling back).
//
// What must stay true: save() refuses a document above MAX_CHECKPOINT_BYTES
// (CouchDB 3's max_document_size is 8 MB) rather than fail half-way; a
// snapshot that cannot be decoded is reported as an error, never taken as
// "no state" (the caller would then read from the start with a wrong cursor);
// a missing state database, or one without its epoch or closed to the
// correlator, is an error that says to run setup, not "no checkpoint" (every
// start would read the feeds from the start and no save would succeed); a
// checkpoint of another epoch is not taken.
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import type { CouchHttp } from '../../lib/couch/http.js';
import { OperationError } from '../../lib/errors.js';
import { STATE_EPOCH_DOC } from '../../lib/config/load.js';
import type { EngineSnapshot, Side } from '../engine/types.js';
import type { PositionWitness } from '../../lib/couch/position-witness.js';
import type { WriterClaim } from './writer-claim.js';
import { isStoredLocalWrite } from '../../lib/couch/write-status.js';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

export interface Checkpoint {
  /** `witness`: a change read before `since` (lib/couch/position-check.ts says which); absent in older checkpoints and before a first change. */
  feeds: Record<Side, { db: string; since: string; next_index: number; witness?: PositionWitness }>;
  state: EngineSnapshot;
  saved_at: string;
}

/** CouchDB 3's default max_document_size is 8 MB; stay clear of it. */
export const MAX_CHECKPOINT_BYTES = 7_500_000;

/** What load() found: the checkpoint, or null with why a stored one was not taken. */
export interface Loaded {
  checkpoint: Checkpoint | null;
  ignored: string | null;
}

export class CheckpointStore {
  private rev: string | undefined;
  /** The state database's epoch as load() read it; every save carries it. */
  private epoch: string | undefined;

  /**
   * @param db the state database the checkpoint lives in (couchlog_state_<app>)
   * @param outputDb the correlated records' database (log_<app>), which holdsRecords() looks into
   */
  constructor(
    private readonly http: CouchHttp,
    private readonly db: string,
    private readonly outputDb: string,
    private readonly name: string,
    private readonly headers: Record<string, string>,
    /** Which instance writes this checkpoint, claimed before every save (feed/writer-claim.ts); absent in tools that only read. */
    private readonly claim: WriterClaim | null = null,
  ) {}

  private get path(): string {
    return `/${encodeURIComponent(this.db)}/_local/${encodeURIComponent(this.name)}`;
  }

  /**
   * The checkpoint, unless there is none or it is not of the state
   * database's current epoch (`ignored` says why): setup starts a new epoch
   * whenever it finds the database's _security not as it wants it, so a
   * checkpoint written by whoever could get in until then is not taken.
   */
  async load(): Promise<Loaded> {
    this.epoch = await this.readEpoch();
    const res = await this.http.request<StoredCheckpoint & { _rev?: string }>('GET', this.path, { headers: this.headers });
    if (res.status === 404) return { checkpoint: null, ignored: null };
    if (res.status === 401 || res.status === 403) throw this.noAccess(res.status);
    if (res.status !== 200) throw new OperationError(`reading the checkpoint ${this.db}/_local/${this.name}: ${res.status}`);
    this.rev = res.body._rev;
    const where = `${this.db}/_local/${this.name}`;
    if (res.body.epoch !== this.epoch)
      return {
        checkpoint: null,
        ignored: `${where} is of another epoch of ${this.db} (written before couchlog setup last secured it, or by someone else): not read`,
      };
    return { checkpoint: { feeds: res.body.feeds, state: await decodeState(res.body, where), saved_at: res.body.saved_at }, ignored: null };
  }

  private async readEpoch(): Promise<string> {
    const res = await this.http.request<{ epoch?: unknown }>('GET', `/${encodeURIComponent(this.db)}/_local/${STATE_EPOCH_DOC}`, { headers: this.headers });
    if (res.status === 200 && typeof res.body.epoch === 'string') return res.body.epoch;
    if (res.status === 401 || res.status === 403) throw this.noAccess(res.status);
    if (res.status !== 200 && res.status !== 404) throw new OperationError(`reading ${this.db}/_local/${STATE_EPOCH_DOC}: ${res.status}`);
    const info = await this.http.request('GET', `/${encodeURIComponent(this.db)}`, { headers: this.headers });
    if (info.status === 404)
      throw new OperationError(
        `the correlator's state database ${this.db} does not exist: run couchlog setup (it keeps the correlator's checkpoints since 2026-12-04)`,
      );
    throw new OperationError(`the correlator's state database ${this.db} has no epoch (_local/${STATE_EPOCH_DOC}): run couchlog setup`);
  }

  private noAccess(status: number): OperationError {
    return new OperationError(
      `the correlator's state database ${this.db} cannot be read with the correlator's account: ${status}: run couchlog setup (it lets the correlator's role in)`,
    );
  }

  /** Where couchlog kept this checkpoint until 2026-12-04. */
  get oldPlace(): string {
    return `${this.outputDb}/_local/${this.name}`;
  }

  /** Whether there is a document where couchlog kept this checkpoint until 2026-12-04 (never read: the output database's members can write it). */
  async oldCheckpointLeft(): Promise<boolean> {
    const res = await this.http.request('GET', `/${encodeURIComponent(this.outputDb)}/_local/${encodeURIComponent(this.name)}`, { headers: this.headers });
    return res.status === 200;
  }

  /**
   * Whether the database already holds correlated records (ids A-… and B-…,
   * design documents aside): a run that died before its first checkpoint
   * may have written them.
   */
  async holdsRecords(): Promise<boolean> {
    const qs = new URLSearchParams({ startkey: '"A-"', endkey: '"B-\ufff0"', limit: '1' });
    const res = await this.http.request<{ rows?: unknown[] }>('GET', `/${encodeURIComponent(this.outputDb)}/_all_docs?${qs}`, { headers: this.headers });
    if (res.status !== 200) throw new OperationError(`reading ${this.outputDb}/_all_docs: ${res.status}`);
    return (res.body.rows?.length ?? 0) > 0;
  }

  /**
   * Saves the checkpoint; `final` for the last save of a clean stop. False
   * (nothing saved) when it is final and another instance is seen claiming
   * the checkpoint too (feed/writer-claim.ts).
   */
  async save(cp: Checkpoint, final = false): Promise<boolean> {
    const stored = { ...(await encodeCheckpoint(cp)), ...(this.epoch === undefined ? {} : { epoch: this.epoch }) };
    const body = JSON.stringify({ ...stored, ...(this.rev ? { _rev: this.rev } : {}) });
    if (body.length > MAX_CHECKPOINT_BYTES) {
      throw new OperationError(`the checkpoint would be ${body.length} bytes, above ${MAX_CHECKPOINT_BYTES}: lower correlator.buffers`);
    }
    // Throws SecondInstanceError, before anything is written, when another instance that started first writes here.
    if (final) {
      if ((await this.claim?.release()) === 'held-by-another') return false;
    } else {
      await this.claim?.claim();
    }
    let res = await this.http.request<{ rev?: string }>('PUT', this.path, { headers: this.headers, body });
    if (res.status === 409) {
      // Someone else (an earlier run) moved it: take its revision and write ours.
      await this.currentRev();
      res = await this.http.request<{ rev?: string }>('PUT', this.path, { headers: this.headers, body: JSON.stringify({ ...stored, _rev: this.rev }) });
    }
    // 202: a loaded cluster stored it on fewer copies than its write quorum so far. It is saved; a start
    // that reads an older copy meanwhile re-reads a little more, which decides nothing differently.
    if (!isStoredLocalWrite(res.status)) throw new OperationError(`saving the checkpoint: ${res.status} ${JSON.stringify(res.body)}`);
    this.rev = res.body.rev;
    return true;
  }

  /** The stored revision only (whatever the document holds, even a snapshot this version cannot read). */
  private async currentRev(): Promise<void> {
    const res = await this.http.request<{ _rev?: string }>('GET', this.path, { headers: this.headers });
    if (res.status === 404) this.rev = undefined;
    else if (res.status === 200) this.rev = res.body._rev;
    else throw new OperationError(`reading the checkpoint ${this.db}/_local/${this.name}: ${res.status}`);
  }
}

/** The document as stored: the snapshot gzipped (this version) or as JSON (older ones). */
export interface StoredCheckpoint {
  feeds: Checkpoint['feeds'];
  saved_at: string;
  /** base64 of the gzipped JSON of the engine snapshot. */
  state_gzip?: string;
  /** The snapshot as JSON (checkpoints written before state_gzip). */
  state?: EngineSnapshot;
  /** The state database's epoch when it was saved: another one is not read. */
  epoch?: string;
}

export async function encodeCheckpoint(cp: Checkpoint): Promise<StoredCheckpoint> {
  // Level 1: the ids are random and compress about 2× at any level; higher levels only cost time.
  const gz = await gzipAsync(JSON.stringify(cp.state), { level: 1 });
  return { feeds: cp.feeds, saved_at: cp.saved_at, state_gzip: gz.toString('base64') };
}

export async function decodeState(doc: StoredCheckpoint, where: string): Promise<EngineSnapshot> {
  // From the server, so whatever is stored: only an absent state_gzip means the older form.
  const gz: unknown = doc.state_gzip;
  if (gz === undefined) return doc.state as EngineSnapshot;
  try {
    if (typeof gz !== 'string') throw new OperationError(`state_gzip is ${gz === null ? 'null' : typeof gz}, not a string`);
    return JSON.parse((await gunzipAsync(Buffer.from(gz, 'base64'))).toString('utf8')) as EngineSnapshot;
  } catch (err) {
    throw new OperationError(
      `the checkpoint ${where} holds a snapshot that cannot be read (${(err as Error).message}); delete it to read the feeds from the start`,
    );
  }
}
