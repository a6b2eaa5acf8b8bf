// `couchlog ingress`: builds the Fastify app and listens.
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../server/app.js';
import type { Config } from '../config/load.js';
import { CommandError } from '../errors.js';
import type { Logger } from '../logger.js';

export async function startIngress(config: Config, logger: Logger): Promise<FastifyInstance> {
  const app = await buildApp(config, { logger: logger.child({ component: 'ingress' }) });
  try {
    await app.listen({ host: config.ingress.host, port: config.ingress.port });
  } catch (err) {
    await app.close();
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') throw new CommandError(`port ${config.ingress.port} on ${config.ingress.host} is already in use`);
    throw err;
  }
  return app;
}
