// The embedded ClickHouse for `couchlog up` and `couchlog clickhouse`:
// started when Debian's clickhouse-server is installed, installed first
// when couchlog runs as root (clickhouse.embedded.install), otherwise off
// with a clear message: the correlator then runs without its ClickHouse sink.
import { spawnSync } from 'node:child_process';
import { clickhouseInUse, type Config } from '../lib/config/load.js';
import { EmbeddedClickhouse, findClickhouseServer } from '../embedded/clickhouse-server.js';
import type { Logger } from '../lib/logger.js';

export interface EmbeddedClickhouseResult {
  server: EmbeddedClickhouse | null;
  /** Why there is no embedded ClickHouse, when there is none. */
  reason: string | null;
}

function install(logger: Logger): boolean {
  logger.info('installing clickhouse-server (Debian package) for the embedded ClickHouse');
  for (const args of [
    ['update', '-q'],
    ['install', '-y', '-q', '--no-install-recommends', 'clickhouse-server'],
  ]) {
    const res = spawnSync('env', ['DEBIAN_FRONTEND=noninteractive', 'apt-get', ...args], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    if (res.status !== 0) {
      logger.warn({ err: (res.stderr ?? res.error?.message ?? '').trim().slice(-500) }, `apt-get ${args[0]} failed`);
      return false;
    }
  }
  return true;
}

export async function startEmbeddedClickhouse(config: Config, logger: Logger): Promise<EmbeddedClickhouseResult> {
  const ch = config.clickhouse;
  if (!ch.enabled) return { server: null, reason: 'clickhouse.enabled is false' };
  if (!clickhouseInUse(config)) return { server: null, reason: null };
  if (ch.url !== null) return { server: null, reason: null };
  let binary = findClickhouseServer();
  if (!binary && ch.embedded.install && process.getuid?.() === 0 && install(logger)) binary = findClickhouseServer();
  if (!binary) {
    return {
      server: null,
      reason:
        'clickhouse-server is not installed (as root: apt-get install clickhouse-server, or run couchlog up as root once): the ClickHouse sink is off (once it runs, couchlog backfill copies the records decided meanwhile)',
    };
  }
  const server = new EmbeddedClickhouse({
    binary,
    dataDir: config.data_dir,
    host: ch.embedded.host,
    httpPort: ch.embedded.http_port,
    tcpPort: ch.embedded.tcp_port,
    startTimeoutMs: ch.embedded.start_timeout_ms,
    logger: logger.child({ component: 'clickhouse' }),
    password: ch.password,
  });
  await server.start();
  return { server, reason: null };
}
