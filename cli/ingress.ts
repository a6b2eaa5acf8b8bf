// `couchlog ingress`: builds the Fastify app and listens.
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../server/app.js';
import { tokenTable } from '../server/hec/tokens.js';
import type { Config } from '../lib/config/load.js';
import { OperationError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';

export async function startIngress(config: Config, logger: Logger): Promise<FastifyInstance> {
  const app = await buildApp(config, { logger: logger.child({ component: 'ingress' }) });
  try {
    await app.listen({ host: config.ingress.host, port: config.ingress.port });
  } catch (err) {
    await app.close();
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new OperationError(`port ${config.ingress.port} on ${config.ingress.host} is already in use`);
    throw err;
  }
  return app;
}

/**
 * SIGHUP of `couchlog ingress`: the write tokens of a freshly loaded config
 * replace the running ones (token rotation without a restart). A config
 * that does not load, or a token without its secret, keeps the old tokens.
 */
export function reloadWriteTokens(app: FastifyInstance, load: () => Config, logger: Logger): void {
  try {
    const fresh = tokenTable(load());
    app.writeTokens.replace(fresh);
    logger.info({ tokens: fresh.names() }, 'write tokens reloaded');
  } catch (err) {
    logger.error({ err: (err as Error).message }, 'write tokens not reloaded: the running ones stay');
  }
}
