// A real ClickHouse (Debian's clickhouse-server) for a test file: its own
// data folder and free loopback ports, killed and removed afterwards.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
      const res = await answered(server, dataDir, sql);
      const text = await res.text();
      if (!res.ok) throw new Error(`ClickHouse: ${text}`);
      return text;
    },
    async stop() {
      // Its data is thrown away: killed, not stopped. 18.16 took 8 s to
      // shut down gracefully, paid by every test file that uses it.
      await server.stop(0);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A query's response; a request that gets no answer at all (the connection
 * refused or dropped) is tried again for up to 30 s, because the supervisor
 * restarts a ClickHouse that died and its data is on disk. Each such miss is
 * written to stderr with its cause and the server's error log, so a CI log
 * shows it; if it never answers, the error says why. (Seen once in CI, on a
 * 3-node cluster run: `fetch failed` with nothing else to go on.)
 */
async function answered(server: EmbeddedClickhouse, dataDir: string, sql: string): Promise<Response> {
  const deadline = Date.now() + 30_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fetch(`${server.url}/`, { method: 'POST', body: sql });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      const logFile = join(dataDir, 'clickhouse', 'server.err.log');
      const errLog = existsSync(logFile) ? readFileSync(logFile, 'utf8').slice(-2000) : '(no error log)';
      const why = `test ClickHouse at ${server.url} did not answer (attempt ${attempt}): ${(err as Error).message}, ${cause?.code ?? ''} ${cause?.message ?? ''}\n${errLog}`;
      process.stderr.write(`${why}\n`);
      if (Date.now() > deadline) throw new Error(why, { cause: err });
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}
