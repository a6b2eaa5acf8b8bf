// The embedded CouchDB-compatible server plus the ingress, for benchmarks:
// the same code `couchlog up` runs, on given ports, with request logs
// written at `info` (as in production) but to /dev/null.
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { ensureSecrets, loadConfig, type Config } from '../config/load.js';
import { basicAuth } from '../couch/basic-auth.js';
import { startEmbeddedCouch } from '../commands/couchdb.js';
import type { EmbeddedCouch } from '../embedded/pouchdb-server.js';
import { loggerOptions } from '../logger.js';
import { runSetup } from '../setup/run-setup.js';
import { buildApp } from '../../server/app.js';

export interface BenchStack {
  config: Config;
  couch: EmbeddedCouch;
  app: FastifyInstance;
  ingressUrl: string;
  /** The writer's credentials, for loads straight into CouchDB. */
  writer: Record<string, string>;
  stop(): Promise<void>;
}

export interface BenchToken {
  name: string;
  secret: string;
  ack?: boolean;
}

export async function startBenchStack(o: {
  dataDir: string;
  apps: string[];
  couchPort: number;
  ingressPort: number;
  /** Write tokens per app (HEC benchmark). */
  tokens?: Record<string, BenchToken[]>;
}): Promise<BenchStack> {
  const env = { COUCHLOG_DATA: o.dataDir, COUCHLOG_COUCHDB_PORT: String(o.couchPort), COUCHLOG_INGRESS_PORT: String(o.ingressPort), COUCHLOG_LOG_LEVEL: 'info' };
  const { config } = loadConfig({ env, cwd: o.dataDir });
  config.apps = Object.fromEntries(
    o.apps.map((app) => [app, { reports: [], tokens: (o.tokens?.[app] ?? []).map((t) => ({ name: t.name, secret: t.secret, ack: t.ack ?? false })) }]),
  );
  config.clickhouse.enabled = false;
  ensureSecrets(config);
  const logger = pino(loggerOptions('info', 'bench'), pino.destination('/dev/null'));
  const couch = await startEmbeddedCouch(config, logger);
  let app: FastifyInstance | null = null;
  try {
    await runSetup(config);
    app = await buildApp(config, { logger });
    await app.listen({ host: '127.0.0.1', port: o.ingressPort });
  } catch (err) {
    await app?.close();
    await couch.stop();
    throw err;
  }
  const ingress = app;
  return {
    config,
    couch,
    app: ingress,
    ingressUrl: `http://127.0.0.1:${o.ingressPort}`,
    writer: { authorization: basicAuth(config.users.writer.user, config.users.writer.password!), 'content-type': 'application/json' },
    async stop() {
      await ingress.close();
      await couch.stop();
    },
  };
}
