// DDL of the ClickHouse table, for Debian's 18.16 (tests) and current
// ClickHouse (compose). 18.16 has no IPv4/IPv6 types, no DateTime64 and only
// experimental LowCardinality, so addresses are Strings and LowCardinality
// is used from 19.x on (gated on the server version).
//
// Corrections and duplicates: a record decided early is provisional and is
// inserted again, corrected, under the same id (and a replay after a crash
// may insert one again). ReplacingMergeTree(version) keyed by (time, id)
// keeps the row with the highest version; queries use FINAL and
// `deleted = 0`, or the view `<table>_current` that does both (documented).
import { COLUMNS, type ColumnType } from './columns.js';

export interface ServerVersion {
  major: number;
  minor: number;
}

export function parseVersion(text: string): ServerVersion {
  const [major, minor] = text.split('.').map((x) => parseInt(x, 10));
  return { major: major || 0, minor: minor || 0 };
}

export function supportsLowCardinality(v: ServerVersion): boolean {
  return v.major >= 19;
}

function sqlType(t: ColumnType, v: ServerVersion): string {
  if (t === 'LowString') return supportsLowCardinality(v) ? 'LowCardinality(String)' : 'String';
  return t;
}

export function createDatabaseSql(database: string): string {
  return `CREATE DATABASE IF NOT EXISTS ${database}`;
}

export function createTableSql(database: string, table: string, v: ServerVersion): string {
  const cols = COLUMNS.map((c) => `    ${c.name} ${sqlType(c.type, v)}`).join(',\n');
  return [
    `CREATE TABLE IF NOT EXISTS ${database}.${table}`,
    '(',
    cols,
    ')',
    'ENGINE = ReplacingMergeTree(version)',
    'PARTITION BY toYYYYMM(log_date)',
    'ORDER BY (time, id)',
  ].join('\n');
}

/** The documented way to count without replay duplicates or superseded revisions. */
export function dedupedCountSql(database: string, table: string): string {
  return `SELECT count() AS c FROM ${database}.${table} FINAL WHERE deleted = 0`;
}

/** The records as they stand: latest revision of each id, deletions left out. */
export function currentViewSql(database: string, table: string): string {
  return `CREATE VIEW IF NOT EXISTS ${database}.${table}_current AS SELECT * FROM ${database}.${table} FINAL WHERE deleted = 0`;
}
