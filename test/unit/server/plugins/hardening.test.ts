// The failed-login limit in server/plugins/hardening.ts counts a refused
// guess whatever order its response's 'close' event and the onResponse
// hooks come in: with another async onResponse hook ahead of hardening's
// (it waits), 'close' comes first. Before, 'close' gave the place back as
// "not failed" and the later verdict was ignored: no refused guess ever
// counted, and the limit never tripped. A real Fastify on loopback, as the
// ingress runs it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify, { type FastifyInstance } from 'fastify';
import hardening from '../../../../server/plugins/hardening.js';
import { FailureLimiter } from '../../../../server/auth/failure-limiter.js';

let app: FastifyInstance;
let url: string;

before(async () => {
  app = Fastify();
  // Registered first, so it runs before hardening's hook and delays it past 'close'.
  app.addHook('onResponse', async () => {
    await sleep(30);
  });
  await app.register(hardening, {
    retryAfterS: 1,
    limiter: new FailureLimiter({ max: 3, windowMs: 60_000 }),
    knownGood: () => false,
    shutdownDeadlineMs: 1000,
    corsOrigins: [],
  });
  app.get('/secret', async (_request, reply) => reply.code(401).send({ error: 'unauthorized', reason: 'Name or password is incorrect.' }));
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});
after(() => app?.close());

test('refused guesses count even when the response closes before the onResponse hooks run', async () => {
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) {
    const res = await fetch(`${url}/secret`, { headers: { authorization: `Basic ${Buffer.from(`mallory:guess${i}`).toString('base64')}` } });
    statuses.push(res.status);
    await res.arrayBuffer();
  }
  assert.deepEqual(statuses, [401, 401, 401, 429, 429]);
});
