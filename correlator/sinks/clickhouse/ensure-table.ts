// The ClickHouse database and table of the correlator, created if missing
// and completed if an older couchlog made them with fewer columns or without
// a version (migrate-engine.ts); the view <table>_current follows the table's
// columns. Running it twice changes nothing.
import type { ClickHouseClient } from '@clickhouse/client';
import { COLUMNS } from './columns.js';
import { createDatabaseSql, createTableSql, currentViewSql, parseVersion, supportsLowCardinality, type ServerVersion } from './schema.js';
import { ensureVersionedEngine } from './migrate-engine.js';
import { engineOf, existingColumns, jsonRows } from './system-tables.js';
import { OperationError } from '../../../lib/errors.js';

export async function serverVersion(client: ClickHouseClient): Promise<ServerVersion & { text: string }> {
  const rows = await jsonRows<{ v: string }>(client, 'SELECT version() AS v');
  const text = rows[0]?.v ?? '0';
  return { ...parseVersion(text), text };
}

export async function ensureClickhouse(client: ClickHouseClient, database: string, table: string): Promise<string[]> {
  const version = await serverVersion(client);
  const before = await existingColumns(client, database, table);
  if (before.size === 0) {
    await client.command({ query: createDatabaseSql(database) });
    await client.command({ query: createTableSql(database, table, version) });
    await client.command({ query: currentViewSql(database, table) });
    // A migration interrupted between its two renames left no table of that name: it goes on from its copy.
    const resumed = await ensureVersionedEngine(client, database, table, version);
    return [`created ClickHouse table ${database}.${table} and view ${table}_current (server ${version.text})`, ...resumed];
  }
  const changes = await addColumns(client, database, table, before, version);
  const migrated = await ensureVersionedEngine(client, database, table, version);
  changes.push(...migrated, ...(await ensureCurrentView(client, database, table, migrated.length > 0)));
  return changes;
}

async function addColumns(client: ClickHouseClient, database: string, table: string, before: Map<string, string>, version: ServerVersion): Promise<string[]> {
  const changes: string[] = [];
  for (const col of COLUMNS) {
    if (before.has(col.name)) continue;
    const type = col.type === 'LowString' ? (supportsLowCardinality(version) ? 'LowCardinality(String)' : 'String') : col.type;
    await client.command({ query: `ALTER TABLE ${database}.${table} ADD COLUMN ${col.name} ${type}` });
    changes.push(`added column ${col.name} to ${database}.${table}`);
  }
  return changes;
}

/**
 * A view keeps the columns its table had when it was made (SELECT * is
 * expanded then): a column added since is unknown to it (Code 47). It is
 * made again when its columns are not the table's (which also repairs a view
 * an older setup left behind) or the table was migrated. Something else an
 * operator put under that name is left alone.
 */
async function ensureCurrentView(client: ClickHouseClient, database: string, table: string, migrated: boolean): Promise<string[]> {
  const view = `${table}_current`;
  const { engine } = await engineOf(client, database, view);
  if (engine !== '' && engine !== 'View') return [];
  if (engine === 'View' && !migrated && sameColumns(await existingColumns(client, database, view), await existingColumns(client, database, table))) return [];
  // 18.16 has no DROP VIEW (nor CREATE OR REPLACE); DROP TABLE drops a view on every version.
  if (engine === 'View') await client.command({ query: `DROP TABLE IF EXISTS ${database}.${view}` });
  await client.command({ query: currentViewSql(database, table) });
  return [`${engine === '' ? 'created' : 'recreated'} view ${database}.${view} with the columns of ${database}.${table}`];
}

function sameColumns(a: Map<string, string>, b: Map<string, string>): boolean {
  return a.size === b.size && [...a].every(([name, type]) => b.get(name) === type);
}

/** At start: the table must exist with every column the sink writes. */
export async function checkClickhouseTable(client: ClickHouseClient, database: string, table: string): Promise<void> {
  const cols = await existingColumns(client, database, table);
  if (cols.size === 0) throw new OperationError(`ClickHouse table ${database}.${table} does not exist: run couchlog setup`);
  const missing = COLUMNS.filter((c) => !cols.has(c.name)).map((c) => c.name);
  if (missing.length > 0) throw new OperationError(`ClickHouse table ${database}.${table} lacks columns ${missing.join(', ')}: run couchlog setup`);
}
