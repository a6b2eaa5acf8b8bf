// The ClickHouse part of `couchlog setup`. Whether ClickHouse is there is
// decided by one short query; the DDL after it, and a migration's copy
// (minutes on a large table), run with clickhouse.setup_timeout_ms. A failure
// after that first answer is an error (couchlog setup exits 1), never "not
// reachable": a migration given up half-way passed for a server that was
// down (a note, exit 0), and the next run started it over, forever.
import { clickhouseUrl, type Config } from '../lib/config/load.js';
import { connect, type ClickHouseTarget } from '../correlator/sinks/clickhouse/clickhouse-delivery.js';
import { ensureClickhouse, serverVersion } from '../correlator/sinks/clickhouse/ensure-table.js';
import { OperationError } from '../lib/errors.js';

/** How long the first query may take before ClickHouse counts as not reachable. */
export const PROBE_TIMEOUT_MS = 10_000;

export interface ClickhouseSetup {
  changes: string[];
  /** ClickHouse not reachable, when it is the embedded one (couchlog up starts it and runs setup again). */
  notes: string[];
  /** ClickHouse not reachable at the URL the config names: couchlog setup exits 1. */
  unfinished: string[];
}

export async function setupClickhouse(config: Config): Promise<ClickhouseSetup> {
  const url = clickhouseUrl(config);
  const done: ClickhouseSetup = { changes: [], notes: [], unfinished: [] };
  if (!(await answers(config, url))) {
    const note = `ClickHouse at ${url} is not reachable: its table was not created (the correlator's ClickHouse sink needs it)`;
    (config.clickhouse.url !== null ? done.unfinished : done.notes).push(note);
    return done;
  }
  const client = connect(target(config, config.clickhouse.setup_timeout_ms));
  try {
    done.changes.push(...(await ensureClickhouse(client, config.clickhouse.database, config.clickhouse.table)));
  } catch (err) {
    throw new OperationError(`ClickHouse setup at ${url} failed: ${(err as Error).message}${timeoutHint(err, config)}`, { cause: err });
  } finally {
    await client.close();
  }
  return done;
}

async function answers(config: Config, url: string): Promise<boolean> {
  const probe = connect(target(config, PROBE_TIMEOUT_MS));
  try {
    await serverVersion(probe);
    return true;
  } catch (err) {
    if (isUnreachable(err)) return false;
    throw new OperationError(`ClickHouse setup at ${url} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    await probe.close();
  }
}

function target(config: Config, timeoutMs: number): ClickHouseTarget {
  const { user, password, database, table } = config.clickhouse;
  return { url: clickhouseUrl(config), user, password: password ?? '', database, table, timeoutMs, ownUser: config.clickhouse.url === null };
}

function isUnreachable(err: unknown): boolean {
  const code = (err as { code?: string }).code ?? '';
  return ['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENOTFOUND', 'ETIMEDOUT'].includes(code) || /timeout|ECONNREFUSED/i.test((err as Error).message ?? '');
}

function timeoutHint(err: unknown, config: Config): string {
  if (!/timeout/i.test((err as Error).message ?? '')) return '';
  return ` (clickhouse.setup_timeout_ms is ${config.clickhouse.setup_timeout_ms}: raise it for a large table)`;
}
