// A real ClickHouse (Debian's clickhouse-server) for a test file: its own
// data folder and free loopback ports, stopped and removed afterwards.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedClickhouse, findClickhouseServer } from '../../embedded/clickhouse-server.js';
import { createLogger } from '../../lib/logger.js';
import { freePort } from '../../bench/free-port.js';

export interface TestClickhouse {
  url: string;
  server: EmbeddedClickhouse;
  /** Runs a query over HTTP and returns the TSV/JSON text. */
  query(sql: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startClickhouse(): Promise<TestClickhouse> {
  const binary = findClickhouseServer();
  if (!binary) throw new Error('clickhouse-server is not installed: apt-get install clickhouse-server (.ci/run does)');
  const dataDir = mkdtempSync(join(tmpdir(), 'couchlog-ch-'));
  const server = new EmbeddedClickhouse({
    binary,
    dataDir,
    host: '127.0.0.1',
    httpPort: await freePort(),
    tcpPort: await freePort(),
    startTimeoutMs: 60_000,
    password: null,
    logger: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent', 'test-clickhouse'),
  });
  await server.start();
  return {
    url: server.url,
    server,
    async query(sql: string) {
      const res = await fetch(`${server.url}/`, { method: 'POST', body: sql });
      const text = await res.text();
      if (!res.ok) throw new Error(`ClickHouse: ${text}`);
      return text;
    },
    async stop() {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
