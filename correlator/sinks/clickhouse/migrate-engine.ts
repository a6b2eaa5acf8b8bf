// Tables made before corrections existed are ReplacingMergeTree() without a
// version: FINAL would keep an arbitrary row of a corrected record. The
// engine cannot be altered, so the rows are copied into a new table, which
// takes the old name; the old table is kept as <table>_before_version
// (drop it once satisfied).
//
// What must stay true: every row the old table acknowledged, before or
// during the migration, is in the new table afterwards, and a row written to
// the new table meanwhile (a correction) is never beaten by a copied one.
// docs/production.md §4 runs setup while the old correlator still writes.
//
// 1. The old table's highest block number M is noted, then its rows are
//    copied to <table>_migrating while writers go on. A non-replicated
//    MergeTree numbers a block when its insert commits (under the lock that
//    makes its part visible), so every row in a block <= M is in the copy.
// 2. RENAME swaps the tables: the old one becomes
//    <table>_before_version_copying, writers naming the table reach the new one.
// 3. An INSERT that resolved the name before the RENAME may still write
//    into the old table (18.16 lets it wait for the RENAME's lock and go on;
//    a current server lets a query keep the table it holds): every INSERT
//    running right after the RENAME is waited for.
// 4. The old table is now still: its parts whose highest block is above M
//    (the rows written since step 1, with any older rows a merge put in the
//    same part) are copied again. Rows copied twice are harmless: FINAL
//    keeps one row per (time, id), the highest version (schema.ts). A copied
//    row keeps its version, 0 for an older correlator's rows (the column's
//    default); a correction is written with its decision time in ms, so it
//    wins over a copy whenever the copy lands. Two rows of version 0 with
//    one key are the same record written twice (a replay), either will do.
// 5. RENAME <table>_before_version_copying -> <table>_before_version.
//
// Cost: one copy of the table plus the rows written during it, instead of a
// second full copy; a part is copied whole, so at worst the partitions
// (months) written to during the copy are copied twice, when a merge joined
// their older rows to new ones. A failure before step 2
// leaves the old table in use (the next run starts over); after it,
// <table>_before_version_copying remains and the next run, not knowing M,
// copies all its rows again and finishes.
import type { ClickHouseClient } from '@clickhouse/client';
import { randomUUID } from 'node:crypto';
import { COLUMNS } from './columns.js';
import { createTableSql, type ServerVersion } from './schema.js';
import { sqlString } from './held-rows.js';
import { engineOf, existingColumns, jsonRows, topBlock } from './system-tables.js';
import { OperationError } from '../../../lib/errors.js';

/**
 * engine_full of a table couchlog made before corrections: 18.16 prints
 * `ReplacingMergeTree() PARTITION BY ...`, a current server an engine
 * without arguments as `ReplacingMergeTree PARTITION BY ...`. Not
 * `ReplacingMergeTree(version)`, nor a replicated or Distributed table an
 * operator made (docs/production.md): those are theirs to change.
 */
export function isUnversionedReplacing(engineFull: string): boolean {
  return /^ReplacingMergeTree(\(\s*\))?(\s|$)/.test(engineFull);
}

export function migrationTables(table: string) {
  return { staging: `${table}_migrating`, copying: `${table}_before_version_copying`, kept: `${table}_before_version` };
}

export async function ensureVersionedEngine(client: ClickHouseClient, database: string, table: string, version: ServerVersion): Promise<string[]> {
  const { copying, kept } = migrationTables(table);
  const finish = `the rows not yet copied are in ${database}.${copying}; the next couchlog setup copies them and finishes`;
  await waitForEarlierRuns(client, table);
  if ((await engineOf(client, database, copying)).engine !== '') {
    await step(database, table, 'finishing an interrupted migration', finish, () => catchUp(client, database, table, null));
    return [`finished migrating ${database}.${table}: the rows of ${database}.${copying} copied again; it is kept as ${database}.${kept}`];
  }
  if (!isUnversionedReplacing((await engineOf(client, database, table)).full)) return [];
  const overAgain = `${database}.${table} is unchanged and in use; the next couchlog setup starts the migration over`;
  const copiedUpTo = await step(database, table, 'copying the rows', overAgain, () => copyToStaging(client, database, table, version));
  await step(database, table, 'renaming', `the next couchlog setup starts over or, if the rename went through, finishes`, () => swap(client, database, table));
  await step(database, table, 'catching up', finish, () => catchUp(client, database, table, copiedUpTo));
  return [`migrated ${database}.${table} to ReplacingMergeTree(version) (corrections); the old table is kept as ${database}.${kept}`];
}

/** A failure that says where the rows are and what the next run does (a timeout must not read as "not reachable"). */
async function step<T>(database: string, table: string, doing: string, then: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    const why = (err as Error).message.replace(/\.$/, '');
    throw new OperationError(`migrating ${database}.${table} to ReplacingMergeTree(version) failed while ${doing}: ${why}; no row is lost: ${then}`, {
      cause: err,
    });
  }
}

/** Step 1: the rows into a fresh staging table; returns M. */
async function copyToStaging(client: ClickHouseClient, database: string, table: string, version: ServerVersion): Promise<number> {
  const { staging } = migrationTables(table);
  await client.command({ query: `DROP TABLE IF EXISTS ${database}.${staging}` });
  await client.command({ query: createTableSql(database, staging, version) });
  const top = await topBlock(client, database, table);
  await copyRows(client, database, table, staging, '');
  return top;
}

/** Step 2. */
async function swap(client: ClickHouseClient, database: string, table: string): Promise<void> {
  const { staging, copying } = migrationTables(table);
  await client.command({ query: `RENAME TABLE ${database}.${table} TO ${database}.${copying}, ${database}.${staging} TO ${database}.${table}` });
}

/** Steps 3 to 5; `copiedUpTo` null: nothing is known to be copied (a resumed migration). */
async function catchUp(client: ClickHouseClient, database: string, table: string, copiedUpTo: number | null): Promise<void> {
  const { copying, kept } = migrationTables(table);
  await waitForInserts(client, table);
  // Part names of a table with PARTITION BY are partition_minblock_maxblock_level[_mutation], and partition ids have no underscore.
  await copyRows(client, database, copying, table, copiedUpTo === null ? '' : ` WHERE toUInt64(splitByChar('_', _part)[3]) > ${copiedUpTo}`);
  await client.command({ query: `RENAME TABLE ${database}.${copying} TO ${database}.${kept}` });
}

/** The columns both tables share: a migration resumed by a newer couchlog may find the old table without its newest columns. */
async function copyRows(client: ClickHouseClient, database: string, from: string, to: string, where: string): Promise<void> {
  const present = await existingColumns(client, database, from);
  const cols = COLUMNS.filter((c) => present.has(c.name))
    .map((c) => c.name)
    .join(', ');
  await client.command({ query: `INSERT INTO ${database}.${to} (${cols}) SELECT ${cols} FROM ${database}.${from}${where}` });
}

/**
 * Waits until the INSERTs naming the table that are running now have ended.
 * Any INSERT started before the RENAME returned is among them (a query is
 * listed from its start); a later one resolved the name to the new table.
 * system.processes lists other accounts' queries only to an account allowed
 * to see them: setup and the correlator normally share one.
 */
async function waitForInserts(client: ClickHouseClient, table: string): Promise<void> {
  await waitForQueries(client, `positionCaseInsensitive(query, 'insert') > 0 AND position(query, '${table}') > 0`);
}

/**
 * Waits until the statements of an earlier run are over: a run that timed
 * out leaves its copy or RENAME running on the server, and dropping the
 * staging table under a RENAME about to give it the table's name would drop
 * the new table.
 */
async function waitForEarlierRuns(client: ClickHouseClient, table: string): Promise<void> {
  const { staging, copying } = migrationTables(table);
  await waitForQueries(client, `position(query, '${staging}') > 0 OR position(query, '${copying}') > 0`);
}

/** Waits until the queries that match `where` now have ended (queries started later are not waited for). */
async function waitForQueries(client: ClickHouseClient, where: string): Promise<void> {
  const self = randomUUID();
  const running = await jsonRows<{ query_id: string }>(client, `SELECT query_id FROM system.processes WHERE query_id != '${self}' AND (${where})`, self);
  let ids = running.map((r) => r.query_id);
  while (ids.length > 0) {
    await new Promise((ok) => setTimeout(ok, 50));
    const list = ids.map(sqlString).join(', ');
    ids = (await jsonRows<{ query_id: string }>(client, `SELECT query_id FROM system.processes WHERE query_id IN (${list})`)).map((r) => r.query_id);
  }
}
