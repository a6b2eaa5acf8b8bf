// Which log databases the write routes may write to: the apps of the
// config, or, with auto_create, any valid name up to a maximum count,
// created (with security object and design documents) on first write.
import { forbidden, notFound } from '../../lib/errors.js';

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

  /** Resolves when writes to `app` may go ahead; throws 404/403 otherwise. */
  async admit(app: string): Promise<void> {
    if (this.ready.has(app)) return;
    if (this.reserved.has(app)) {
      throw forbidden('INGRESS_RESERVED_APP', `log_${app} is written by couchlog itself, not through the ingress`);
    }
    if (!this.opts.autoCreate) {
      throw notFound('INGRESS_UNKNOWN_APP', `Database does not exist: log_${app} is not a configured app`);
    }
    let pending = this.creating.get(app);
    if (!pending) {
      pending = this.create(app).finally(() => this.creating.delete(app));
      this.creating.set(app, pending);
    }
    await pending;
  }

  private async create(app: string): Promise<void> {
    if (this.autoCreated === null) {
      const existing = await this.opts.listApps();
      this.autoCreated = new Set(existing.filter((a) => !this.configured.has(a) && !this.reserved.has(a)));
    }
    if (!this.autoCreated.has(app) && this.autoCreated.size >= this.opts.autoCreateMax) {
      throw forbidden('INGRESS_APP_LIMIT', `auto_create limit reached (${this.opts.autoCreateMax} apps); add log_${app} to the config`);
    }
    await this.opts.createApp(app);
    this.autoCreated.add(app);
    this.ready.add(app);
  }
}
