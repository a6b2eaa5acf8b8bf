// `POST /_session` (the login) is proxied to CouchDB, but a login naming the
// writer account is judged here: CouchDB 3.4+ locks an account out after 5
// failed logins from one address, and behind a local proxy every caller has
// the ingress's address, so a few wrong guesses would lock out the writer
// the ingress itself writes as. The writer never needs a session; a wrong
// password for it is refused without asking CouchDB.
import type { FastifyRequest } from 'fastify';
import { badRequest, forbidden, tooLarge, unauthorized, unsupportedMediaType } from '../../lib/errors.js';
import { bufferBody } from './buffered-body.js';

/** Larger login bodies are refused (a name and a password fit easily). */
export const MAX_LOGIN_BODY = 64 * 1024;

export interface LoginGuardOptions {
  /** 'wrong' for the writer's name with a wrong password (CredentialVerifier.writerLogin). */
  writerLogin: (name: string, password: unknown) => 'not-writer' | 'ok' | 'wrong';
  /** ingress.cors_origins: other sites allowed to call with credentials, and so to log in. */
  corsOrigins: ReadonlySet<string>;
}

/**
 * Login CSRF: a page on another site can make a browser POST a login form
 * here, and SameSite=Lax lets a top-level POST set the cookie: the victim
 * is then logged in as the attacker's account (and what they type or view
 * goes there). Browsers say where a request comes from (Origin on every
 * POST, Sec-Fetch-Site in current ones); a login from another site that
 * is not an allowed CORS origin is refused. Clients that send neither
 * (curl, scripts) are no browser to forge and go on. Hosts are compared
 * without ports: a proxy on a non-standard port often forwards `$host`.
 */
export function crossSiteLogin(request: FastifyRequest, corsOrigins: ReadonlySet<string>): boolean {
  const origin = request.headers.origin;
  if (typeof origin === 'string' && corsOrigins.has(origin)) return false;
  if (request.headers['sec-fetch-site'] === 'cross-site') return true;
  if (typeof origin !== 'string') return false;
  try {
    return new URL(origin).hostname.toLowerCase() !== request.hostname.toLowerCase();
  } catch {
    // "null" (a sandboxed frame, a data: page) or garbage: not a site of ours.
    return true;
  }
}

/**
 * Every name and password a login body gives (JSON or form), as CouchDB
 * could read them: `name`, or `username` (CouchDB takes it when `name` is
 * absent); forms split on `&` and on `;` (mochiweb does both); a body that
 * gives a member twice, or both names, is `ambiguous` (decoders differ on
 * which one counts).
 */
export function loginOf(contentType: string, body: string): { names: unknown[]; passwords: unknown[]; ambiguous: boolean } {
  const type = contentType.toLowerCase();
  if (type.startsWith('application/x-www-form-urlencoded')) {
    const names: string[] = [];
    const passwords: string[] = [];
    for (const part of body.split(/[&;]/)) {
      const eq = part.indexOf('=');
      const key = formDecode(eq < 0 ? part : part.slice(0, eq));
      const value = eq < 0 ? '' : formDecode(part.slice(eq + 1));
      if (key === 'name' || key === 'username') names.push(value);
      else if (key === 'password') passwords.push(value);
    }
    return { names, passwords, ambiguous: names.length > 1 || passwords.length > 1 };
  }
  try {
    const value = JSON.parse(body) as unknown;
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      const v = value as Record<string, unknown>;
      const keys = topLevelKeys(body);
      const count = (...names: string[]) => keys.filter((x) => names.includes(x)).length;
      const names = [...('name' in v ? [v.name] : []), ...('username' in v ? [v.username] : [])];
      return { names, passwords: 'password' in v ? [v.password] : [], ambiguous: count('name', 'username') > 1 || count('password') > 1 };
    }
  } catch {
    // CouchDB answers the bad body itself
  }
  return { names: [], passwords: [], ambiguous: false };
}

function formDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

/** The member names of a JSON object text (valid JSON: JSON.parse read it), in order, repeats included. */
export function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) keys.push(JSON.parse(text.slice(i, j + 1)) as string);
      expectKey = false;
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      expectKey = c === '{' && depth === 1;
    } else if (c === '}' || c === ']') depth--;
    else if (c === ',' && depth === 1) expectKey = true;
  }
  return keys;
}

/**
 * Reads the login body (it is forwarded afterwards, unchanged) and refuses a
 * wrong password for the writer account, or any login CouchDB could read as
 * the writer's that is not exactly the writer's own: two names or
 * passwords, a compressed body. Call from the proxy's preHandler.
 */
export async function guardLogin(request: FastifyRequest, opts: LoginGuardOptions): Promise<void> {
  if (crossSiteLogin(request, opts.corsOrigins)) throw forbidden('INGRESS_LOGIN_CROSS_SITE', 'a login from another site is refused (Origin)');
  if (request.body === undefined || request.body === null) return;
  // CouchDB inflates a gzip login; this guard would read bytes.
  const encoding = String(request.headers['content-encoding'] ?? 'identity')
    .trim()
    .toLowerCase();
  if (encoding !== 'identity' && encoding !== '')
    throw unsupportedMediaType('INGRESS_LOGIN_ENCODING', 'a login body is not accepted compressed (Content-Encoding)');
  const raw = await bufferBody(request, MAX_LOGIN_BODY, () => tooLarge('INGRESS_LOGIN_TOO_LARGE', 'the login body is too large'));
  if (raw === null) return;
  const login = loginOf(String(request.headers['content-type'] ?? ''), raw.toString('utf8'));
  if (login.ambiguous) throw badRequest('INGRESS_LOGIN_AMBIGUOUS', 'the login gives its name or password twice');
  const [name] = login.names;
  if (typeof name !== 'string' || opts.writerLogin(name, login.passwords[0]) !== 'wrong') return;
  throw unauthorized('AUTH_INVALID', 'Name or password is incorrect.');
}
