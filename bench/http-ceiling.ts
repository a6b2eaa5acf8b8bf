// The most single-document POSTs per second this machine can carry at all:
// the same load client, in the same process as the ingress would be, against
// a Fastify route that parses the body and answers at once (no checks, no
// CouchDB). It is the physical anchor for single POSTs: the ingress cannot
// beat it, and on a 2-core machine it sits below what CouchDB can store
// with _bulk_docs.
import Fastify from 'fastify';
import { runLoad, type LoadResult } from './load.js';
import { freePort } from './free-port.js';

export async function httpCeiling(o: { total: number; concurrency: number; body: (i: number) => string }): Promise<LoadResult> {
  const app = Fastify({ logger: false });
  app.post('/log_ceiling', async (_req, reply) => {
    reply.code(201);
    return { ok: true, id: 'ceiling', rev: '1-0' };
  });
  const port = await freePort();
  await app.listen({ host: '127.0.0.1', port });
  try {
    return await runLoad({
      url: `http://127.0.0.1:${port}`,
      path: '/log_ceiling',
      headers: { 'content-type': 'application/json' },
      body: o.body,
      docsPerRequest: 1,
      total: o.total,
      concurrency: o.concurrency,
      ok: [201],
    });
  } finally {
    await app.close();
  }
}
