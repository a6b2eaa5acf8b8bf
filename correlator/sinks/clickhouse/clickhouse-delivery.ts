// Correlated records into ClickHouse over its HTTP interface. Which
// failures are worth retrying is decided here: the server being down, slow
// or overloaded is, and so is a refusal of our setup (account, table), for
// an operator to fix; a refused value is not (dead-letter).
//
// What must stay true: FINAL holds one live row per record. The table is
// keyed by (time, id), and a record's time is its source document's, which
// changes only when an admin edits or deletes that document. The engine
// then names the times earlier decisions of the record were placed at
// (`formerTimes`), and each gets a deletion row of the record's version in
// the same INSERT, except the record's own key: a higher version at the
// same key replaces a row anyway, and a deletion there would hide the
// record. No lookup: ClickHouse's table is not ordered by id, and a search
// for an id reads all of it.
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import type { Delivery } from '../batching-sink.js';
import type { FailureKind, SinkRecord } from '../sink.js';
import { dateTimeSeconds, rowTime, toJsonLine } from './rows.js';
import { OwnUserAgent } from '../../../lib/own-user-agent.js';

export interface ClickHouseTarget {
  url: string;
  user: string;
  password: string;
  database: string;
  table: string;
  timeoutMs: number;
  /**
   * The embedded ClickHouse (couchlog's own user, loopback): a connection is
   * made only to a socket of this user (lib/own-user-agent.ts), so a
   * port taken while the server restarts is never sent the password.
   */
  ownUser?: boolean;
}

/**
 * ClickHouse error codes about the rows themselves: unparsable or mistyped
 * values. Retrying cannot fix them; the record is dead-lettered.
 * (6 CANNOT_PARSE_TEXT, 25 CANNOT_PARSE_ESCAPE_SEQUENCE, 26/27 CANNOT_PARSE_*, 38 CANNOT_PARSE_DATE,
 * 41 CANNOT_PARSE_DATETIME, 53 TYPE_MISMATCH, 69 ARGUMENT_OUT_OF_BOUND,
 * 70 CANNOT_CONVERT_TYPE, 72 CANNOT_PARSE_NUMBER, 117 INCORRECT_DATA,
 * 130 CANNOT_READ_ARRAY_FROM_TEXT, 131 TOO_LARGE_STRING_SIZE.)
 */
const ROW_CODES = new Set([6, 25, 26, 27, 38, 41, 53, 69, 70, 72, 117, 130, 131]);

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
    // The client's own default is a keep-alive agent of 10 sockets.
    ...(t.ownUser && { http_agent: new OwnUserAgent({ maxSockets: 10 }) }),
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
    let rows = '';
    let corrections = 0;
    for (const r of batch) {
      rows += toJsonLine(r);
      if (r.deleted || Number(r.record.revision) > 1) corrections++;
      if (r.formerTimes !== undefined && r.formerTimes.length > 0) rows += formerRows(r);
    }
    await this.client.command({ query: `INSERT INTO ${this.target.database}.${this.target.table} FORMAT JSONEachRow\n${rows}` });
    if (corrections > 0) this.onCorrection(corrections);
  }

  classify(err: unknown): FailureKind {
    const code = clickhouseErrorCode(err);
    if (code === null) return 'retry';
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

/** Deletion rows at the record's former times (JSONEachRow lines), its own key and repeats left out. */
function formerRows(r: SinkRecord): string {
  const own = rowTime(r);
  const done = new Set<number>([own]);
  let rows = '';
  for (const t of r.formerTimes!) {
    const at = dateTimeSeconds(t);
    if (done.has(at)) continue;
    done.add(at);
    const { src_ip, src_port, revision, decided_at } = r.record;
    rows += toJsonLine({
      id: r.id,
      version: r.version,
      deleted: true,
      record: { timestamp: new Date(t).toISOString(), src_ip, src_port, deleted: true, revision, decided_at },
    });
  }
  return rows;
}
