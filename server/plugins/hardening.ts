// What keeps hostile or broken clients from hurting the ingress, and the
// ingress from answering unlike itself while it stops:
// - during shutdown every request gets the ingress's own 503 (code and
//   Retry-After, like every other 503), not Fastify's bare one.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { unavailable } from '../../lib/errors.js';

export interface HardeningOptions {
  retryAfterS: number;
}

async function hardening(app: FastifyInstance, opts: HardeningOptions): Promise<void> {
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (_request, reply) => {
    if (!closing) return;
    reply.header('connection', 'close');
    throw unavailable('INGRESS_SHUTTING_DOWN', 'the ingress is shutting down; retry later', opts.retryAfterS);
  });
}

export default fp(hardening, { name: 'couchlog-hardening' });
