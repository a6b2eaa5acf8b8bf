// What ClickHouse holds for given record ids, and the deletion rows that
// hide it. The table is keyed by (time, id): a row is only replaced (FINAL)
// by a row of a higher version at the same key, so hiding a record means
// placing a deletion row at each time ClickHouse holds it — the time comes
// from ClickHouse, not from the caller. Used by `couchlog backfill` for
// tombstones (a full read of the table per group of ids: the table is not
// ordered by id, so the live sink never asks it).
import type { ClickHouseClient } from '@clickhouse/client';
import type { SinkRecord } from '../sink.js';

/** A ClickHouse string literal (18.16 has no query parameters). */
export function sqlString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

interface HeldRow {
  id: string;
  t: number | string;
  src_ip: string;
  src_port: number | string;
  v: number | string;
  /** Whether the latest row of the id is a deletion already. */
  d: number | string;
}

/** Bytes of ids per lookup: the IN list stays far below max_query_size (256 KiB on 18.16) whatever the ids. */
const LOOKUP_BYTES = 64_000;
/** Longer ids (only an admin can store one) cannot be looked up within that: their tombstones are left out, and counted. */
export const LONGEST_LOOKUP_ID = 16_000;

/** The ids in groups whose quoted literals stay under LOOKUP_BYTES. */
function lookupGroups(ids: readonly string[]): string[][] {
  const groups: string[][] = [];
  let group: string[] = [];
  let bytes = 0;
  for (const id of ids) {
    const n = Buffer.byteLength(sqlString(id)) + 1;
    if (group.length > 0 && bytes + n > LOOKUP_BYTES) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(id);
    bytes += n;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

/** A failed lookup, named as ClickHouse's (its own text says only "Code: 62, ..."). */
export class LookupError extends Error {
  constructor(override readonly cause: unknown) {
    super(`ClickHouse, looking up the rows of deleted records: ${(cause as Error).message}`);
  }
}

/**
 * Deletion rows for tombstones: one per (id, time) ClickHouse holds with a
 * lower version than the tombstone's and not deleted already, placed at
 * that row's key. A tombstone without a version (deleted by hand, not by
 * the correlator: version 0) deletes whatever ClickHouse holds for its id.
 */
export async function deletionRows(client: ClickHouseClient, database: string, table: string, tombstones: readonly SinkRecord[]): Promise<SinkRecord[]> {
  const byId = new Map(tombstones.map((t) => [t.id, t]));
  const out: SinkRecord[] = [];
  for (const ids of lookupGroups([...byId.keys()])) {
    const query =
      `SELECT id, toUnixTimestamp(time) AS t, any(src_ip) AS src_ip, any(src_port) AS src_port, max(version) AS v, argMax(deleted, version) AS d ` +
      `FROM ${database}.${table} WHERE id IN (${ids.map(sqlString).join(',')}) GROUP BY id, t`;
    let rows: HeldRow[];
    try {
      rows = (await (await client.query({ query, format: 'JSONEachRow' })).json()) as HeldRow[];
    } catch (err) {
      throw new LookupError(err);
    }
    for (const row of rows) {
      const tomb = byId.get(row.id);
      if (tomb === undefined || Number(row.d) === 1) continue;
      const held = Number(row.v);
      const version = tomb.version === 0 ? held + 1 : tomb.version;
      if (held >= version) continue;
      out.push({
        id: row.id,
        version,
        deleted: true,
        record: {
          timestamp: new Date(Number(row.t) * 1000).toISOString(),
          src_ip: row.src_ip,
          src_port: Number(row.src_port),
          deleted: true,
          ...(tomb.version === 0 ? {} : { revision: tomb.record.revision, decided_at: tomb.record.decided_at }),
        },
      });
    }
  }
  return out;
}
