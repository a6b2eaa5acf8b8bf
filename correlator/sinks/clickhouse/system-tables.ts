// What the server says about its tables (system.tables, system.columns,
// system.parts), for setup and the start-up check.
import type { ClickHouseClient } from '@clickhouse/client';

export async function jsonRows<T>(client: ClickHouseClient, query: string, queryId?: string): Promise<T[]> {
  // Names are validated identifiers (config schema); 18.16 has no query parameters.
  return (await (await client.query({ query, format: 'JSONEachRow', query_id: queryId })).json()) as T[];
}

/** Column name -> type; empty when the table (or view) does not exist. */
export async function existingColumns(client: ClickHouseClient, database: string, table: string): Promise<Map<string, string>> {
  const rows = await jsonRows<{ name: string; type: string }>(
    client,
    `SELECT name, type FROM system.columns WHERE database = '${database}' AND table = '${table}'`,
  );
  return new Map(rows.map((r) => [r.name, r.type]));
}

/** The engine's name (`View`, `ReplacingMergeTree`) and its full clause; both '' when there is no such table. */
export async function engineOf(client: ClickHouseClient, database: string, table: string): Promise<{ engine: string; full: string }> {
  const rows = await jsonRows<{ engine: string; engine_full: string }>(
    client,
    `SELECT engine, engine_full FROM system.tables WHERE database = '${database}' AND name = '${table}'`,
  );
  return { engine: rows[0]?.engine ?? '', full: rows[0]?.engine_full ?? '' };
}

/** The highest block number in the table's active parts (0 when it has none). */
export async function topBlock(client: ClickHouseClient, database: string, table: string): Promise<number> {
  const rows = await jsonRows<{ b: string }>(
    client,
    `SELECT toString(max(max_block_number)) AS b FROM system.parts WHERE database = '${database}' AND table = '${table}' AND active`,
  );
  return Number(rows[0]?.b ?? 0);
}
