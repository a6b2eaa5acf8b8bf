// Correlated records into ClickHouse over its HTTP interface. Which
// failures are worth retrying is decided here: the server being down, slow
// or overloaded is; a refused schema or value is not (dead-letter).
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import type { Delivery } from '../batching-sink.js';
import type { FailureKind, SinkRecord } from '../sink.js';
import { toJsonLine } from './rows.js';

export interface ClickHouseTarget {
  url: string;
  user: string;
  password: string;
  database: string;
  table: string;
  timeoutMs: number;
}

/**
 * ClickHouse error codes that retrying cannot fix: unparsable or mistyped
 * values, missing columns, tables or databases, syntax, access.
 * (6 CANNOT_PARSE_TEXT, 16 NO_SUCH_COLUMN_IN_TABLE, 26/27 CANNOT_PARSE_*,
 * 38 CANNOT_PARSE_DATE, 41 CANNOT_PARSE_DATETIME, 53 TYPE_MISMATCH,
 * 60 UNKNOWN_TABLE, 62 SYNTAX_ERROR, 69 ARGUMENT_OUT_OF_BOUND,
 * 70 CANNOT_CONVERT_TYPE, 72 CANNOT_PARSE_NUMBER, 81 UNKNOWN_DATABASE,
 * 117 INCORRECT_DATA, 130 CANNOT_READ_ARRAY_FROM_TEXT, 131 TOO_LARGE_STRING_SIZE,
 * 192/193/194/195 user and password errors, 497 ACCESS_DENIED.)
 */
const PERMANENT_CODES = new Set([6, 16, 26, 27, 38, 41, 53, 60, 62, 69, 70, 72, 81, 117, 130, 131, 192, 193, 194, 195, 497]);

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
    let rows = '';
    for (const r of batch) rows += toJsonLine(r);
    await this.client.command({ query: `INSERT INTO ${this.target.database}.${this.target.table} FORMAT JSONEachRow\n${rows}` });
    let corrections = 0;
    for (const r of batch) if (r.deleted || Number(r.record.revision) > 1) corrections++;
    if (corrections > 0) this.onCorrection(corrections);
  }

  classify(err: unknown): FailureKind {
    const code = clickhouseErrorCode(err);
    return code !== null && PERMANENT_CODES.has(code) ? 'permanent' : 'retry';
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
