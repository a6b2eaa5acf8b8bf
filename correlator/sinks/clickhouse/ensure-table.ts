// The ClickHouse database and table of the correlator, created if missing
// and completed if an older couchlog made them with fewer columns. Nothing
// is ever dropped or rewritten, so running it twice changes nothing.
import type { ClickHouseClient } from '@clickhouse/client';
import { COLUMNS } from './columns.js';
import { createDatabaseSql, createTableSql, currentViewSql, parseVersion, supportsLowCardinality, type ServerVersion } from './schema.js';
import { OperationError } from '../../../lib/errors.js';

export async function serverVersion(client: ClickHouseClient): Promise<ServerVersion & { text: string }> {
  const rows = (await (await client.query({ query: 'SELECT version() AS v', format: 'JSONEachRow' })).json()) as Array<{ v: string }>;
  const text = rows[0]?.v ?? '0';
  return { ...parseVersion(text), text };
}

export async function existingColumns(client: ClickHouseClient, database: string, table: string): Promise<Map<string, string>> {
  const rows = (await (
    await client.query({
      // Names are validated identifiers (config schema); 18.16 has no query parameters.
      query: `SELECT name, type FROM system.columns WHERE database = '${database}' AND table = '${table}'`,
      format: 'JSONEachRow',
    })
  ).json()) as Array<{ name: string; type: string }>;
  return new Map(rows.map((r) => [r.name, r.type]));
}

export async function ensureClickhouse(client: ClickHouseClient, database: string, table: string): Promise<string[]> {
  const version = await serverVersion(client);
  const changes: string[] = [];
  const before = await existingColumns(client, database, table);
  if (before.size === 0) {
    await client.command({ query: createDatabaseSql(database) });
    await client.command({ query: createTableSql(database, table, version) });
    await client.command({ query: currentViewSql(database, table) });
    return [`created ClickHouse table ${database}.${table} and view ${table}_current (server ${version.text})`];
  }
  for (const col of COLUMNS) {
    if (before.has(col.name)) continue;
    const type = col.type === 'LowString' ? (supportsLowCardinality(version) ? 'LowCardinality(String)' : 'String') : col.type;
    await client.command({ query: `ALTER TABLE ${database}.${table} ADD COLUMN ${col.name} ${type}` });
    changes.push(`added column ${col.name} to ${database}.${table}`);
  }
  changes.push(...(await ensureVersionedEngine(client, database, table, version)));
  await client.command({ query: currentViewSql(database, table) });
  return changes;
}

async function engineOf(client: ClickHouseClient, database: string, table: string): Promise<string> {
  const rows = (await (
    await client.query({ query: `SELECT engine_full FROM system.tables WHERE database = '${database}' AND name = '${table}'`, format: 'JSONEachRow' })
  ).json()) as Array<{ engine_full: string }>;
  return rows[0]?.engine_full ?? '';
}

/**
 * Tables made before corrections existed are ReplacingMergeTree() without a
 * version: FINAL would keep an arbitrary row of a corrected record. The
 * engine cannot be altered, so the rows are copied into a new table, which
 * takes the old name; the old table is kept as <table>_before_version
 * (drop it once satisfied). Rows copied get version 0: any correction wins.
 */
async function ensureVersionedEngine(client: ClickHouseClient, database: string, table: string, version: ServerVersion): Promise<string[]> {
  const engine = await engineOf(client, database, table);
  // Only couchlog's own old table is migrated; a Distributed or replicated
  // table made by an operator (docs/production.md) is theirs to change.
  if (!/^ReplacingMergeTree\(\s*\)/.test(engine)) return [];
  const staging = `${table}_migrating`;
  const kept = `${table}_before_version`;
  await client.command({ query: `DROP TABLE IF EXISTS ${database}.${staging}` });
  await client.command({ query: createTableSql(database, staging, version) });
  const cols = COLUMNS.map((c) => c.name).join(', ');
  await client.command({ query: `INSERT INTO ${database}.${staging} (${cols}) SELECT ${cols} FROM ${database}.${table}` });
  await client.command({ query: `RENAME TABLE ${database}.${table} TO ${database}.${kept}, ${database}.${staging} TO ${database}.${table}` });
  return [`migrated ${database}.${table} to ReplacingMergeTree(version) (corrections); the old table is kept as ${database}.${kept}`];
}

/** At start: the table must exist with every column the sink writes. */
export async function checkClickhouseTable(client: ClickHouseClient, database: string, table: string): Promise<void> {
  const cols = await existingColumns(client, database, table);
  if (cols.size === 0) throw new OperationError(`ClickHouse table ${database}.${table} does not exist: run couchlog setup`);
  const missing = COLUMNS.filter((c) => !cols.has(c.name)).map((c) => c.name);
  if (missing.length > 0) throw new OperationError(`ClickHouse table ${database}.${table} lacks columns ${missing.join(', ')}: run couchlog setup`);
}
