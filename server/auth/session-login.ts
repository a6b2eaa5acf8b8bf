// `POST /_session` (the login) is proxied to CouchDB, but a login naming the
// writer account is judged here: CouchDB 3.4+ locks an account out after 5
// failed logins from one address, and behind a local proxy every caller has
// the ingress's address, so a few wrong guesses would lock out the writer
// the ingress itself writes as. The writer never needs a session; a wrong
// password for it is refused without asking CouchDB.
import { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import { tooLarge, unauthorized } from '../../lib/errors.js';

/** Larger login bodies are refused (a name and a password fit easily). */
export const MAX_LOGIN_BODY = 64 * 1024;

export interface LoginGuardOptions {
  /** 'wrong' for the writer's name with a wrong password (CredentialVerifier.writerLogin). */
  writerLogin: (name: string, password: unknown) => 'not-writer' | 'ok' | 'wrong';
}

/** The name and password of a login body (JSON or form), as CouchDB reads them. */
export function loginOf(contentType: string, body: string): { name?: unknown; password?: unknown } {
  const type = contentType.toLowerCase();
  if (type.startsWith('application/x-www-form-urlencoded')) {
    const form = new URLSearchParams(body);
    return { name: form.get('name') ?? undefined, password: form.get('password') ?? undefined };
  }
  try {
    const value = JSON.parse(body) as unknown;
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      const v = value as Record<string, unknown>;
      return { name: v.name, password: v.password };
    }
  } catch {
    // CouchDB answers the bad body itself
  }
  return {};
}

/**
 * Reads the login body (it is forwarded afterwards, unchanged) and refuses a
 * wrong password for the writer account. Call from the proxy's preHandler.
 */
export async function guardLogin(request: FastifyRequest, opts: LoginGuardOptions): Promise<void> {
  const stream = request.body as NodeJS.ReadableStream | undefined;
  if (!stream || typeof (stream as Readable).on !== 'function') return;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += buf.length;
    if (size > MAX_LOGIN_BODY) throw tooLarge('INGRESS_LOGIN_TOO_LARGE', 'the login body is too large');
    chunks.push(buf);
  }
  const raw = Buffer.concat(chunks);
  request.body = Readable.from([raw]);
  const { name, password } = loginOf(String(request.headers['content-type'] ?? ''), raw.toString('utf8'));
  if (typeof name !== 'string' || opts.writerLogin(name, password) !== 'wrong') return;
  throw unauthorized('AUTH_INVALID', 'Name or password is incorrect.');
}
