// Which log databases the write routes may write to: the apps of the
// config, or, with auto_create, any valid name up to a maximum count,
// created (with security object and design documents) on first write.
import { CouchlogError, forbidden, notFound, unavailable } from '../../lib/errors.js';

export interface AppRegistryOptions {
  apps: string[];
  /** Databases that are never written through the ingress (the correlator's output). */
  reserved: string[];
  autoCreate: boolean;
  autoCreateMax: number;
  /** Creates and secures log_<app> (setup's ensureAppDatabase). */
  createApp: (app: string) => Promise<void>;
  /** Names of the existing log_* databases, to count earlier auto-created ones. */
  listApps: () => Promise<string[]>;
  /** Retry-After of the 503 when CouchDB cannot be asked (default 5 s). */
  retryAfterS?: number;
}

export class AppRegistry {
  private readonly ready = new Set<string>();
  private readonly configured: Set<string>;
  private readonly reserved: Set<string>;
  private readonly creating = new Map<string, Promise<void>>();
  private autoCreated: Set<string> | null = null;

  constructor(private readonly opts: AppRegistryOptions) {
    this.configured = new Set(opts.apps);
    this.reserved = new Set(opts.reserved.filter((a) => !this.configured.has(a)));
    for (const app of opts.apps) this.ready.add(app);
  }

  /**
   * Throws 404/403 at once for apps that can never be written (unknown
   * without auto_create, reserved); creates nothing. Called before the
   * request is authenticated and its body read.
   */
  check(app: string): void {
    if (this.ready.has(app)) return;
    if (this.reserved.has(app)) {
      throw forbidden('INGRESS_RESERVED_APP', `log_${app} is written by couchlog itself, not through the ingress`);
    }
    if (!this.opts.autoCreate) {
      throw notFound('INGRESS_UNKNOWN_APP', `Database does not exist: log_${app} is not a configured app`);
    }
  }

  /**
   * Resolves when writes to `app` may go ahead, creating it with auto_create;
   * throws 404/403 otherwise. Called only once the request is authenticated
   * and valid, so a refused request never leaves a database behind.
   */
  async admit(app: string): Promise<void> {
    this.check(app);
    if (this.ready.has(app)) return;
    let pending = this.creating.get(app);
    if (!pending) {
      pending = this.create(app).finally(() => this.creating.delete(app));
      this.creating.set(app, pending);
    }
    await pending;
  }

  private listing: Promise<Set<string>> | null = null;

  private async create(app: string): Promise<void> {
    try {
      if (this.autoCreated === null) {
        // One listing for all concurrent first writes.
        this.listing ??= this.opts.listApps().then((existing) => new Set(existing.filter((a) => !this.configured.has(a) && !this.reserved.has(a))));
        try {
          const listed = await this.listing;
          this.autoCreated ??= listed;
        } finally {
          this.listing = null;
        }
      }
      // Counted synchronously from here to the end of the creation, so the
      // limit holds however many first writes run at once.
      if (!this.autoCreated.has(app)) {
        if (this.autoCreated.size >= this.opts.autoCreateMax) {
          throw forbidden('INGRESS_APP_LIMIT', `auto_create limit reached (${this.opts.autoCreateMax} apps); add log_${app} to the config`);
        }
        this.autoCreated.add(app);
        try {
          await this.opts.createApp(app);
        } catch (err) {
          this.autoCreated.delete(app);
          throw err;
        }
      } else {
        await this.opts.createApp(app);
      }
      this.ready.add(app);
    } catch (err) {
      if (err instanceof CouchlogError) throw err;
      throw unavailable(
        'INGRESS_AUTO_CREATE_FAILED',
        `log_${app} could not be created: ${(err as Error).message}; retry later`,
        this.opts.retryAfterS ?? 5,
        err,
      );
    }
  }
}
