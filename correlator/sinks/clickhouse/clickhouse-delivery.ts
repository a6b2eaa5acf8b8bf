// Correlated records into ClickHouse over its HTTP interface. Which
// failures are worth retrying is decided here: the server being down, slow
// or overloaded is, and so is a refusal of our setup (account, table), for
// an operator to fix; a refused value is not (dead-letter).
//
// What must stay true: FINAL holds one row per record. The table is keyed
// by (time, id), and a record's time is its source document's, which
// changes only when an admin edits that document; a record built from an
// edited source (`a_rev` / `b_rev`) therefore gets, in the same INSERT,
// a deletion row at every other time ClickHouse holds it. BatchingSink
// writes two batches holding one id in order, so the lookup sees the row
// of every earlier decision.
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import type { Delivery } from '../batching-sink.js';
import type { FailureKind, SinkRecord } from '../sink.js';
import { rowTime, toJsonLine } from './rows.js';
import { deletionRows, LONGEST_LOOKUP_ID, LookupError } from './held-rows.js';

export interface ClickHouseTarget {
  url: string;
  user: string;
  password: string;
  database: string;
  table: string;
  timeoutMs: number;
}

/**
 * ClickHouse error codes about the rows themselves: unparsable or mistyped
 * values. Retrying cannot fix them; the record is dead-lettered.
 * (6 CANNOT_PARSE_TEXT, 26/27 CANNOT_PARSE_*, 38 CANNOT_PARSE_DATE,
 * 41 CANNOT_PARSE_DATETIME, 53 TYPE_MISMATCH, 69 ARGUMENT_OUT_OF_BOUND,
 * 70 CANNOT_CONVERT_TYPE, 72 CANNOT_PARSE_NUMBER, 117 INCORRECT_DATA,
 * 130 CANNOT_READ_ARRAY_FROM_TEXT, 131 TOO_LARGE_STRING_SIZE.)
 */
const ROW_CODES = new Set([6, 26, 27, 38, 41, 53, 69, 70, 72, 117, 130, 131]);

/**
 * Codes about our setup: the table, the database, a column, the
 * statement, the account. Every record would fail the same way, so they
 * are retried (loudly) until an operator fixes it, never dead-lettered: a
 * rotated password or a table being migrated must not cost the records.
 * (16 NO_SUCH_COLUMN_IN_TABLE, 60 UNKNOWN_TABLE, 62 SYNTAX_ERROR,
 * 81 UNKNOWN_DATABASE, 164 READONLY, 192–195 unknown user, wrong
 * password, required password, 291 DATABASE_ACCESS_DENIED,
 * 497 ACCESS_DENIED, 516 AUTHENTICATION_FAILED.)
 */
const SETUP_CODES = new Set([16, 60, 62, 81, 164, 192, 193, 194, 195, 291, 497, 516]);

/** The server's error code: a property on recent servers, only in the text on 18.16. */
export function clickhouseErrorCode(err: unknown): number | null {
  const e = err as { code?: unknown; message?: string };
  if (typeof e.code === 'string' && /^\d+$/.test(e.code)) return Number(e.code);
  const m = /Code: (\d+)/.exec(e.message ?? '');
  return m ? Number(m[1]) : null;
}

export function connect(t: ClickHouseTarget): ClickHouseClient {
  return createClient({
    url: t.url,
    username: t.user,
    password: t.password,
    request_timeout: t.timeoutMs,
    // Errors are ours to log (pino, with the retry decision), not the client's.
    log: { level: ClickHouseLogLevel.OFF },
  });
}

export class ClickHouseDelivery implements Delivery {
  constructor(
    private readonly client: ClickHouseClient,
    private readonly target: ClickHouseTarget,
    /** Counts corrections written (revision > 1, deletions). */
    private readonly onCorrection: (n: number) => void = () => {},
  ) {}

  async deliver(batch: SinkRecord[]): Promise<void> {
    // The rows are written as JSONEachRow text here rather than by the client (which would build and
    // stringify an object per row); the data follows the INSERT in the request body, where ClickHouse
    // reads it with its stream parser (max_query_size does not apply to it).
    const hide = await this.rowsLeftBehind(batch);
    let rows = '';
    for (const r of batch) rows += toJsonLine(r);
    for (const r of hide) rows += toJsonLine(r);
    await this.client.command({ query: `INSERT INTO ${this.target.database}.${this.target.table} FORMAT JSONEachRow\n${rows}` });
    let corrections = hide.length;
    for (const r of batch) if (r.deleted || Number(r.record.revision) > 1) corrections++;
    if (corrections > 0) this.onCorrection(corrections);
  }

  /**
   * Deletion rows for what records of edited sources left at another time.
   * Ids longer than LONGEST_LOOKUP_ID (only an admin can store a source
   * document with such an id) are not looked up.
   */
  private async rowsLeftBehind(batch: readonly SinkRecord[]): Promise<SinkRecord[]> {
    let moved: SinkRecord[] | null = null;
    for (const r of batch) {
      if (r.deleted || (r.record.a_rev === undefined && r.record.b_rev === undefined) || r.id.length > LONGEST_LOOKUP_ID) continue;
      (moved ??= []).push(r);
    }
    if (moved === null) return [];
    const keepAt = new Map(moved.map((r) => [r.id, rowTime(r)]));
    return deletionRows(this.client, this.target.database, this.target.table, moved, keepAt);
  }

  classify(failure: unknown): FailureKind {
    // The lookup before the INSERT sends no record's values: it fails for the server or our setup, never for a record.
    const lookup = failure instanceof LookupError;
    const err = lookup ? failure.cause : failure;
    const code = clickhouseErrorCode(err);
    if (code === null || (lookup && ROW_CODES.has(code))) return 'retry';
    // Every row carries the same columns: a field the table does not know is
    // a table that was not migrated (couchlog setup), not a bad record.
    if (code === 117 && /Unknown field/i.test((err as Error).message ?? '')) return 'config';
    if (ROW_CODES.has(code)) return 'permanent';
    return SETUP_CODES.has(code) ? 'config' : 'retry';
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
