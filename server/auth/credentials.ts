// What counts as a caller's credentials: an Authorization header (Basic or
// Bearer, CouchDB decides) or CouchDB's AuthSession cookie. Nothing else in
// a request may make the ingress act on someone's behalf.
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export interface Credentials {
  authorization?: string;
  /** Only the `AuthSession=...` pair, never the caller's other cookies. */
  cookie?: string;
}

export function extractCredentials(headers: IncomingHttpHeaders): Credentials | null {
  const creds: Credentials = {};
  const auth = headers.authorization;
  if (typeof auth === 'string' && auth.trim() !== '') creds.authorization = auth;
  const session = authSessionCookie(headers.cookie);
  if (session) creds.cookie = session;
  return creds.authorization || creds.cookie ? creds : null;
}

function authSessionCookie(header: string | undefined): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const pair = part.trim();
    if (pair.startsWith('AuthSession=') && pair.length > 'AuthSession='.length) return pair;
  }
  return undefined;
}

/** Headers that present these credentials to CouchDB. */
export function credentialHeaders(creds: Credentials): Record<string, string> {
  const headers: Record<string, string> = {};
  if (creds.authorization) headers.authorization = creds.authorization;
  if (creds.cookie) headers.cookie = creds.cookie;
  return headers;
}

/** What identifies these credentials without holding them: the same for the same header values. */
export function credentialKey(creds: Credentials): string {
  return createHash('sha256')
    .update(creds.authorization ?? '')
    .update('\n')
    .update(creds.cookie ?? '')
    .digest('base64');
}
