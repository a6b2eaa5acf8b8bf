// A proxied request's body read whole before the proxy forwards it (the
// login guard, readers' key lists), then handed on unchanged as a fresh
// stream. Bounded: what is larger is refused, never buffered.
import { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import type { CouchlogError } from '../../lib/errors.js';

/** The body's bytes, or null when the request has no body stream. `tooLarge` is thrown past `maxBytes`. */
export async function bufferBody(request: FastifyRequest, maxBytes: number, tooLarge: () => CouchlogError): Promise<Buffer | null> {
  const stream = request.body as NodeJS.ReadableStream | undefined;
  if (!stream || typeof (stream as Readable).on !== 'function') return null;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += buf.length;
    if (size > maxBytes) throw tooLarge();
    chunks.push(buf);
  }
  const raw = Buffer.concat(chunks);
  request.body = Readable.from([raw]);
  return raw;
}
