// Refuses request paths that could mean one thing to the ingress's router
// and another to CouchDB: dot segments (plain or percent-encoded), empty
// segments, backslashes and control characters. Routing decisions are then
// made on the same path CouchDB will see.
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { badRequest } from '../../lib/errors.js';

// A dot segment is one between separators, and %2f is a separator to CouchDB.
const DOT_SEGMENT = /(^|\/|%2f)(\.|%2e){1,2}(\/|%2f|$)/i;
const BAD_CHARS = /[\\\x00-\x1f\x7f]|%5c|%00/i;

export function badPathReason(url: string): string | null {
  const path = url.split('?', 1)[0]!;
  if (!path.startsWith('/')) return 'the request path must start with "/"';
  if (path.includes('//')) return 'empty path segments ("//") are not allowed';
  if (DOT_SEGMENT.test(path)) return 'dot segments ("." and "..") are not allowed';
  if (BAD_CHARS.test(path)) return 'backslashes and control characters are not allowed in the path';
  return null;
}

async function pathGuard(app: FastifyInstance): Promise<void> {
  app.addHook('onRequest', async (request) => {
    const reason = badPathReason(request.raw.url ?? '/');
    if (reason) throw badRequest('INGRESS_BAD_PATH', reason);
  });
}

export default fp(pathGuard, { name: 'couchlog-path-guard' });
