// cli/lifecycle.ts: parts are stopped newest first, all of them, even when one fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stopInReverse } from '../../../cli/lifecycle.js';
import { createLogger } from '../../../lib/logger.js';

test('every part is stopped in reverse order even when one fails; the first failure is thrown at the end', async () => {
  const stopped: string[] = [];
  const part = (name: string, fails = false) => ({
    stop: async () => {
      stopped.push(name);
      if (fails) throw new Error(`${name} failed`);
    },
  });
  const parts = [part('couchdb'), part('ingress', true), part('correlator'), part('forwarder', true)];
  await assert.rejects(stopInReverse(parts, createLogger('silent')), /forwarder failed/);
  assert.deepEqual(stopped, ['forwarder', 'correlator', 'ingress', 'couchdb']);
  // The list itself is left as it was (a second stop goes the same way).
  stopped.length = 0;
  await assert.rejects(stopInReverse(parts, createLogger('silent')));
  assert.deepEqual(stopped, ['forwarder', 'correlator', 'ingress', 'couchdb']);
  await stopInReverse([], createLogger('silent'));
});
