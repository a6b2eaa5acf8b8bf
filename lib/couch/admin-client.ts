// Administrative access to CouchDB or PouchDB Server through nano. The two
// servers differ where couchlog touches their configuration: PouchDB Server
// keeps it under /_config, CouchDB 3 under /_node/_local/_config.
import nano from 'nano';
import { OperationError } from '../errors.js';
import { couchUrl, requirePassword, type Config } from '../config/load.js';

export type Flavor = 'pouchdb-server' | 'couchdb';

export interface Reply<T = unknown> {
  status: number;
  body: T;
}

export interface ServerInfo {
  flavor: Flavor;
  version: string;
}

export class AdminClient {
  private readonly server: nano.ServerScope;
  private info: ServerInfo | undefined;

  constructor(
    readonly baseUrl: string,
    user: string | null,
    password: string | null,
  ) {
    const url = new URL(baseUrl);
    if (user !== null && password !== null) {
      url.username = encodeURIComponent(user);
      url.password = encodeURIComponent(password);
    }
    this.server = nano({ url: url.toString() });
  }

  /** A request whose HTTP errors come back as values; only unreachability throws. */
  async call<T = unknown>(method: string, path: string, body?: unknown, attempt = 1): Promise<Reply<T>> {
    try {
      const res = await this.server.request({ method, path: path.replace(/^\//, ''), body });
      return { status: method === 'PUT' || method === 'POST' ? 201 : 200, body: res as T };
    } catch (err) {
      const e = err as { statusCode?: number; error?: string; reason?: string; message: string };
      if (typeof e.statusCode === 'number') {
        return { status: e.statusCode, body: { error: e.error, reason: e.reason ?? e.message } as T };
      }
      // A kept-alive connection the server closed as it was reused: a read is sent again, once.
      if (attempt === 1 && (method === 'GET' || method === 'HEAD') && /other side closed|ECONNRESET|socket hang up/.test(e.message))
        return this.call<T>(method, path, body, 2);
      throw new OperationError(`cannot reach CouchDB at ${this.baseUrl}: ${e.message}`);
    }
  }

  /** Like call(), but any HTTP error is an OperationError naming what failed. */
  async must<T = unknown>(what: string, method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.call<T>(method, path, body);
    if (res.status >= 400) throw failed(what, res);
    return res.body;
  }

  async serverInfo(): Promise<ServerInfo> {
    if (this.info) return this.info;
    const root = await this.must<Record<string, unknown>>('reading the server root', 'GET', '/');
    const vendor = root.vendor as { version?: string } | undefined;
    this.info =
      'express-pouchdb' in root
        ? { flavor: 'pouchdb-server', version: String(root.version ?? vendor?.version ?? '?') }
        : { flavor: 'couchdb', version: String(root.version ?? '?') };
    return this.info;
  }

  async configPath(section: string, key: string): Promise<string> {
    const { flavor } = await this.serverInfo();
    const base = flavor === 'couchdb' ? '/_node/_local/_config' : '/_config';
    return `${base}/${encodeURIComponent(section)}/${encodeURIComponent(key)}`;
  }
}

/** The admin client of the configured CouchDB. */
export function adminClient(config: Config): AdminClient {
  return new AdminClient(couchUrl(config), config.couchdb.admin.user, requirePassword(config, 'admin'));
}

/** The error of a reply that was not what the caller could go on with. */
export function failed(what: string, res: Reply<unknown>): OperationError {
  const b = res.body as { error?: string; reason?: string };
  return new OperationError(`${what} failed: ${res.status} ${b.error ?? ''} ${b.reason ?? ''}`.trim());
}
