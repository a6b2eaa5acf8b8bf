// The write tokens of the config (apps.<app>.tokens), looked up by the
// SHA-256 of the presented secret and confirmed with a constant-time
// comparison: how long a lookup takes says nothing about a secret.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Config } from '../../lib/config/load.js';
import { tokenSecretKey } from '../../lib/config/load.js';
import { secretsPath } from '../../lib/config/secrets.js';
import { ConfigError } from '../../lib/errors.js';

export interface WriteToken {
  /** The token's name (logs, metrics, ack channels), never its secret. */
  name: string;
  /** Apps it may write to; the first is where events without `index` go. */
  apps: string[];
  ack: boolean;
}

interface Entry {
  token: WriteToken;
  digest: Buffer;
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

export class TokenTable {
  private byDigest = new Map<string, Entry>();

  constructor(tokens: Array<WriteToken & { secret: string }>) {
    for (const t of tokens) {
      const digest = sha256(t.secret);
      this.byDigest.set(digest.toString('hex'), { token: { name: t.name, apps: t.apps, ack: t.ack }, digest });
    }
  }

  /** Takes another table's tokens (SIGHUP reload): requests from now on see only those. */
  replace(other: TokenTable): void {
    this.byDigest = other.byDigest;
  }

  /** Token names, for logs (never secrets). */
  names(): string[] {
    return [...this.byDigest.values()].map((e) => e.token.name);
  }

  get size(): number {
    return this.byDigest.size;
  }

  /** The token whose secret this is, or null. */
  find(secret: string): WriteToken | null {
    const digest = sha256(secret);
    const entry = this.byDigest.get(digest.toString('hex'));
    if (!entry || !timingSafeEqual(entry.digest, digest)) return null;
    return entry.token;
  }
}

/** The token table of a config; a token without a secret is a configuration error. */
export function tokenTable(config: Config): TokenTable {
  const merged = new Map<string, WriteToken & { secret: string }>();
  const problems: string[] = [];
  for (const [app, settings] of Object.entries(config.apps)) {
    for (const t of settings.tokens) {
      if (t.secret === null) {
        problems.push(
          `apps.${app}.tokens: no secret for token "${t.name}": set ${tokenSecretKey(t.name)} in the environment or in ${secretsPath(config.data_dir)}`,
        );
        continue;
      }
      const seen = merged.get(t.name);
      if (seen) {
        if (!seen.apps.includes(app)) seen.apps.push(app);
        seen.ack ||= t.ack;
      } else {
        merged.set(t.name, { name: t.name, apps: [app], ack: t.ack, secret: t.secret });
      }
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const secrets = new Map<string, string>();
  for (const t of merged.values()) {
    const other = secrets.get(t.secret);
    if (other !== undefined) problems.push(`apps: tokens "${other}" and "${t.name}" have the same secret`);
    secrets.set(t.secret, t.name);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return new TokenTable([...merged.values()]);
}

export type PresentedToken = { kind: 'none' } | { kind: 'malformed' } | { kind: 'token'; secret: string; scheme: 'splunk' | 'bearer' | 'basic' };

/**
 * The token an Authorization header presents: `Splunk <t>`, `Bearer <t>`,
 * or Basic with the token as password (any user name), as Splunk accepts.
 */
export function presentedToken(authorization: string | undefined): PresentedToken {
  if (authorization === undefined || authorization.trim() === '') return { kind: 'none' };
  const m = /^\s*(\S+)\s+(\S+)\s*$/.exec(authorization);
  if (!m) return { kind: 'malformed' };
  const scheme = m[1]!.toLowerCase();
  const value = m[2]!;
  if (scheme === 'splunk') return { kind: 'token', secret: value, scheme: 'splunk' };
  if (scheme === 'bearer') return { kind: 'token', secret: value, scheme: 'bearer' };
  if (scheme === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return { kind: 'malformed' };
    return { kind: 'token', secret: decoded.slice(colon + 1), scheme: 'basic' };
  }
  return { kind: 'malformed' };
}
