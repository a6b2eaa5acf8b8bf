// The one small interface every output implements, and the record it takes.

export interface SinkRecord {
  /** Deterministic (derived from the source documents): writing it twice is harmless. */
  id: string;
  /** Ends with `revision` and `decided_at`; a deletion holds `deleted: true` and the fields that locate it. */
  record: Record<string, unknown>;
  /** Strictly increasing per correlator: of two writes of one id, the higher version is the later decision. */
  version: number;
  /** A provisional record that no longer exists. */
  deleted: boolean;
  /**
   * Event times (epoch ms) at which earlier decisions of this id were
   * placed: its source document was edited or deleted by an admin. A sink
   * that keys records by time as well as id (ClickHouse) deletes them there.
   */
  formerTimes?: readonly number[];
}

export interface Sink {
  readonly name: string;
  /**
   * Resolves once every record is acknowledged: durably written, or (for
   * errors retrying cannot fix) set aside in a dead-letter file, or dropped
   * by an explicit overflow policy — each counted. Retriable failures are
   * retried with backoff for as long as it takes: it never rejects.
   */
  write(records: SinkRecord[]): Promise<void>;
  /** Records accepted and not yet acknowledged. */
  readonly backlog: number;
  /** The pipeline stops reading while any sink is full (backpressure). */
  readonly full: boolean;
  /** Wall-clock ms since the sink started failing, null when healthy. */
  readonly failingSince: number | null;
  /** SIGHUP: reopen files (logrotate). */
  reopen?(): Promise<void>;
  /** Sends what is queued, waits for it (retrying) and releases resources. */
  close(): Promise<void>;
  /**
   * Shutdown waited long enough for close(): stop retrying now, so the
   * process can end. What is held stays unacknowledged (the checkpoint
   * saved keeps it, to be decided again after the restart).
   */
  abandon?(): void;
}

/**
 * What an adapter says about a failed delivery: `retry` (the server is down,
 * slow or busy), `config` (it refuses our setup: credentials, permissions, a
 * missing table, a wrong URL; retried too, but logged as an error for the
 * operator, since the records must not be thrown away for it) or
 * `permanent` (it refuses the record itself: dead-letter).
 */
export type FailureKind = 'retry' | 'config' | 'permanent';
