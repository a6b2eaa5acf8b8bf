// The ClickHouse database and table of the correlator, created if missing
// and completed if an older couchlog made them with fewer columns. Nothing
// is ever dropped or rewritten, so running it twice changes nothing.
import type { ClickHouseClient } from '@clickhouse/client';
import { COLUMNS } from '../../correlator/clickhouse/columns.js';
import { createDatabaseSql, createTableSql, parseVersion, supportsLowCardinality, type ServerVersion } from '../../correlator/clickhouse/schema.js';
import { CommandError } from '../errors.js';

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
    return [`created ClickHouse table ${database}.${table} (server ${version.text})`];
  }
  for (const col of COLUMNS) {
    if (before.has(col.name)) continue;
    const type = col.type === 'LowString' ? (supportsLowCardinality(version) ? 'LowCardinality(String)' : 'String') : col.type;
    await client.command({ query: `ALTER TABLE ${database}.${table} ADD COLUMN ${col.name} ${type}` });
    changes.push(`added column ${col.name} to ${database}.${table}`);
  }
  return changes;
}

/** At start: the table must exist with every column the sink writes. */
export async function checkClickhouseTable(client: ClickHouseClient, database: string, table: string): Promise<void> {
  const cols = await existingColumns(client, database, table);
  if (cols.size === 0) throw new CommandError(`ClickHouse table ${database}.${table} does not exist: run couchlog setup`);
  const missing = COLUMNS.filter((c) => !cols.has(c.name)).map((c) => c.name);
  if (missing.length > 0) throw new CommandError(`ClickHouse table ${database}.${table} lacks columns ${missing.join(', ')}: run couchlog setup`);
}
