// Loads, overrides and validates the configuration once. This is the only
// module that reads process.env: everything else receives a Config.
import { readFileSync, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { ZodError } from 'zod';
import { ConfigError } from '../errors.js';
import { httpUrl } from '../http-url.js';
import { APP_NAME_MAX_LENGTH, APP_NAME_PATTERN, configSchema, MIN_PASSWORD, type Config } from './schema.js';
import { SECRET_KEYS, type SecretRole, generatePassword, readSecretsFile, secretsPath, writeSecretsFile } from './secrets.js';

export type { Config } from './schema.js';

export type Env = Record<string, string | undefined>;

export interface LoadOptions {
  /** --config FILE; else COUCHLOG_CONFIG; else ./couchlog.yml when present; else defaults only. */
  file?: string | undefined;
  env?: Env;
  cwd?: string;
}

export interface LoadedConfig {
  config: Config;
  /** The file the configuration came from, or null for built-in defaults. */
  file: string | null;
  /** Whether data_dir is the built-in ./data (neither the file nor COUCHLOG_DATA named one): relative to wherever the command runs. */
  dataDirDefaulted: boolean;
}

/** Environment variables and the config path each one overrides. */
const ENV_OVERRIDES: ReadonlyArray<[string, string[], 'string' | 'int']> = [
  ['COUCHLOG_DATA', ['data_dir'], 'string'],
  ['COUCHLOG_LOG_LEVEL', ['log_level'], 'string'],
  ['COUCHLOG_LOG_FORMAT', ['log_format'], 'string'],
  ['COUCHDB_URL', ['couchdb', 'url'], 'string'],
  ['COUCHDB_USER', ['couchdb', 'admin', 'user'], 'string'],
  ['COUCHDB_PASSWORD', ['couchdb', 'admin', 'password'], 'string'],
  ['COUCHLOG_WRITER_USER', ['users', 'writer', 'user'], 'string'],
  ['COUCHLOG_WRITER_PASSWORD', ['users', 'writer', 'password'], 'string'],
  ['COUCHLOG_READER_USER', ['users', 'reader', 'user'], 'string'],
  ['COUCHLOG_READER_PASSWORD', ['users', 'reader', 'password'], 'string'],
  ['COUCHLOG_CORRELATOR_USER', ['users', 'correlator', 'user'], 'string'],
  ['COUCHLOG_CORRELATOR_PASSWORD', ['users', 'correlator', 'password'], 'string'],
  ['COUCHLOG_INGRESS_PORT', ['ingress', 'port'], 'int'],
  ['COUCHLOG_COUCHDB_PORT', ['couchdb', 'embedded', 'port'], 'int'],
  ['COUCHLOG_INGRESS_HOST', ['ingress', 'host'], 'string'],
  ['COUCHLOG_CORRELATOR_METRICS_HOST', ['correlator', 'metrics', 'host'], 'string'],
  ['COUCHLOG_CORRELATOR_METRICS_PORT', ['correlator', 'metrics', 'port'], 'int'],
  ['CLICKHOUSE_URL', ['clickhouse', 'url'], 'string'],
  ['CLICKHOUSE_USER', ['clickhouse', 'user'], 'string'],
  ['CLICKHOUSE_PASSWORD', ['clickhouse', 'password'], 'string'],
  ['COUCHLOG_CLICKHOUSE_HTTP_PORT', ['clickhouse', 'embedded', 'http_port'], 'int'],
  ['COUCHLOG_CLICKHOUSE_TCP_PORT', ['clickhouse', 'embedded', 'tcp_port'], 'int'],
];

export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const file = pickFile(options.file ?? env.COUCHLOG_CONFIG, cwd);
  const raw = file === null ? {} : readYaml(file);
  const problems: string[] = [];
  const fromEnv = applyEnv(raw, env, problems);
  if (problems.length > 0) throw new ConfigError(problems);

  let config: Config;
  try {
    config = configSchema.parse(raw);
  } catch (err) {
    if (err instanceof ZodError) throw new ConfigError(formatZodIssues(err, file, fromEnv));
    throw err;
  }
  config.data_dir = resolve(cwd, config.data_dir);
  fillFromSecretsFile(config);
  fillTokenSecrets(config, env);
  fillSigningKey(config, env);
  fillIdTagKey(config, env);
  fillClickhousePassword(config);
  return { config, file, dataDirDefaulted: !fromEnv.has('data_dir') && raw.data_dir === undefined };
}

/**
 * A named secret (e.g. a forwarder's HEC token): from the environment, else
 * from <data_dir>/secrets.env; null when neither has it.
 */
export function namedSecret(config: Config, name: string, env: Env = process.env): string | null {
  return env[name] || readSecretsFile(config.data_dir)[name] || null;
}

/** The environment variable (and secrets.env key) holding a write token's secret. */
export function tokenSecretKey(name: string): string {
  return `COUCHLOG_TOKEN_${name.toUpperCase()}`;
}

/**
 * Write tokens without a secret in the file take it from the environment,
 * else from <data_dir>/secrets.env. A token listed under several apps gets
 * the same secret everywhere (a different one in the file is refused).
 */
const MIN_TOKEN_SECRET = 16;

function fillTokenSecrets(config: Config, env: Env): void {
  const entries = Object.values(config.apps).flatMap((a) => a.tokens);
  if (entries.length === 0) return;
  const stored = readSecretsFile(config.data_dir);
  const known = new Map<string, string | null>();
  const problems: string[] = [];
  for (const [app, settings] of Object.entries(config.apps)) {
    for (const token of settings.tokens) {
      const key = tokenSecretKey(token.name);
      if (token.secret === null) {
        token.secret = env[key] || stored[key] || null;
        // The same rule as a secret in the file: a short token is a guessable one.
        if (token.secret !== null && token.secret.length < MIN_TOKEN_SECRET)
          problems.push(`apps.${app}.tokens: token "${token.name}": ${key} must be at least ${MIN_TOKEN_SECRET} characters`);
      }
      if (known.has(token.name) && known.get(token.name) !== token.secret) {
        problems.push(`apps.${app}.tokens: token "${token.name}" has a different secret under another app`);
      }
      known.set(token.name, token.secret);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
}

/** The environment variable (and secrets.env key) of the key of tagged ids (ingress.id_tag_key). */
export const ID_TAG_KEY_NAME = 'COUCHLOG_ID_TAG_KEY';

/** The length the schema asks of a key in the file (ingress.id_tag_key, correlator.outputs.couchdb.signing_key). */
const MIN_KEY = 32;

/**
 * A key the file leaves null: from the environment, else secrets.env, held
 * to the rule of one in the file. A refusal names the config path, the
 * variable and where it was found, never the value.
 */
function keyFromEnv(config: Config, env: Env, name: string, path: string): string | null {
  const fromEnv = env[name] || null;
  const key = fromEnv ?? (readSecretsFile(config.data_dir)[name] || null);
  if (key !== null && key.length < MIN_KEY) {
    const where = fromEnv !== null ? 'the environment' : secretsPath(config.data_dir);
    throw new ConfigError([`${path}: ${name} must be at least ${MIN_KEY} characters (from ${where})`]);
  }
  return key;
}

/** ingress.id_tag_key from the environment, else secrets.env, held to the rule of one in the file. */
function fillIdTagKey(config: Config, env: Env): void {
  if (config.ingress.id_tag_key !== null) return;
  config.ingress.id_tag_key = keyFromEnv(config, env, ID_TAG_KEY_NAME, 'ingress.id_tag_key');
}

/** The environment variable (and secrets.env key) holding the correlated records' signing key. */
export const SIGNING_KEY_NAME = 'COUCHLOG_SIGNING_KEY';

/** The secrets.env key of the embedded ClickHouse's password (CLICKHOUSE_PASSWORD sets it, as for an external one). */
export const CLICKHOUSE_PASSWORD_NAME = 'CLICKHOUSE_PASSWORD';

/** correlator.outputs.couchdb.signing_key from the environment, else secrets.env, held to the rule of one in the file. */
function fillSigningKey(config: Config, env: Env): void {
  const sink = config.correlator.outputs.couchdb;
  if (sink.signing_key !== null) return;
  sink.signing_key = keyFromEnv(config, env, SIGNING_KEY_NAME, 'correlator.outputs.couchdb.signing_key');
}

/**
 * ClickHouse is set up, run and given a password only when the correlator
 * writes to it: with its ClickHouse output off, setup probing a server
 * nobody uses printed a misleading note on every run.
 */
export function clickhouseInUse(config: Config): boolean {
  return config.clickhouse.enabled && config.correlator.outputs.clickhouse.enabled;
}

/** The embedded ClickHouse is run with a password (made once, like the accounts'): any local user could read and write it otherwise. */
function embeddedClickhouseNeedsPassword(config: Config): boolean {
  return clickhouseInUse(config) && config.clickhouse.url === null;
}

function fillClickhousePassword(config: Config): void {
  if (!embeddedClickhouseNeedsPassword(config)) return;
  config.clickhouse.password ??= readSecretsFile(config.data_dir)[CLICKHOUSE_PASSWORD_NAME] || null;
}

function pickFile(explicit: string | undefined, cwd: string): string | null {
  if (explicit) {
    const path = resolve(cwd, explicit);
    if (!existsSync(path)) throw new ConfigError([`config file not found: ${path}`]);
    return path;
  }
  const local = resolve(cwd, 'couchlog.yml');
  return existsSync(local) ? local : null;
}

function readYaml(file: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    if (err instanceof YAMLParseError) throw new ConfigError([`${file}: ${err.message}`]);
    throw new ConfigError([`${file}: ${(err as Error).message}`]);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new ConfigError([`${file}: the top level must be a mapping of keys`]);
  }
  return doc as Record<string, unknown>;
}

/** Sets what the environment overrides; returns the variable behind each path it set ("a.b" -> NAME). */
function applyEnv(raw: Record<string, unknown>, env: Env, problems: string[]): Map<string, string> {
  const fromEnv = new Map<string, string>();
  for (const [name, path, kind] of ENV_OVERRIDES) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    let parsed: string | number = value;
    if (kind === 'int') {
      if (!/^\d+$/.test(value)) {
        problems.push(`${name}: expected an integer, got "${value}"`);
        continue;
      }
      parsed = Number(value);
    }
    setPath(raw, path, parsed, problems, name);
    fromEnv.set(path.join('.'), name);
  }
  return fromEnv;
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown, problems: string[], envName: string): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (next === undefined || next === null) {
      node[key] = {};
    } else if (typeof next !== 'object' || Array.isArray(next)) {
      problems.push(`${envName}: cannot override ${path.join('.')}: ${key} is not a mapping`);
      return;
    }
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

function formatZodIssues(err: ZodError, file: string | null, fromEnv: ReadonlyMap<string, string>): string[] {
  return err.issues.map((issue) => {
    const path = issue.path.length ? issue.path.join('.') : '(top level)';
    // A value the environment gave is blamed on its variable, not on the file.
    const variable = fromEnv.get(path);
    const where = variable ? `${variable} (${path}): ` : file ? `${file}: ` : '';
    if (variable) return `${where}${issue.message}`;
    if (issue.code === 'unrecognized_keys') {
      const keys = issue.keys.map((k) => (issue.path.length ? `${path}.${k}` : k));
      return `${where}unknown key${keys.length > 1 ? 's' : ''}: ${keys.join(', ')}`;
    }
    return `${where}${path}: ${issue.message}`;
  });
}

const ROLE_PATHS: Record<SecretRole, (c: Config) => { user: string; password: string | null }> = {
  admin: (c) => c.couchdb.admin,
  writer: (c) => c.users.writer,
  reader: (c) => c.users.reader,
  correlator: (c) => c.users.correlator,
};

const ROLE_PASSWORD_PATHS: Record<SecretRole, string> = {
  admin: 'couchdb.admin.password',
  writer: 'users.writer.password',
  reader: 'users.reader.password',
  correlator: 'users.correlator.password',
};

/** Passwords neither the file nor the environment gave, from secrets.env: held to the same rule as theirs. */
function fillFromSecretsFile(config: Config): void {
  const stored = readSecretsFile(config.data_dir);
  const problems: string[] = [];
  for (const role of Object.keys(SECRET_KEYS) as SecretRole[]) {
    const creds = ROLE_PATHS[role](config);
    const value = stored[SECRET_KEYS[role]];
    if (creds.password !== null || !value) continue;
    if (value.length < MIN_PASSWORD)
      problems.push(`${ROLE_PASSWORD_PATHS[role]}: ${SECRET_KEYS[role]} must be at least ${MIN_PASSWORD} characters (from ${secretsPath(config.data_dir)})`);
    creds.password = value;
  }
  if (problems.length > 0) throw new ConfigError(problems);
}

export interface EnsuredSecrets {
  /** Roles whose passwords were generated now. */
  generated: SecretRole[];
  /** Where generated passwords are kept. */
  file: string;
}

/**
 * Gives every account a password, generating and storing the missing ones
 * once. An external CouchDB's admin password cannot be invented: it must be
 * given (COUCHDB_PASSWORD or couchdb.admin.password).
 */
export function ensureSecrets(config: Config): EnsuredSecrets {
  const file = secretsPath(config.data_dir);
  const missing = (Object.keys(SECRET_KEYS) as SecretRole[]).filter((role) => ROLE_PATHS[role](config).password === null);
  if (missing.includes('admin') && config.couchdb.url !== null) {
    throw new ConfigError(['couchdb.admin.password: required with an external CouchDB (set COUCHDB_PASSWORD)']);
  }
  // Records of log_correlated are signed when it is protected by audit; the key is made once, like a password.
  const sink = config.correlator.outputs.couchdb;
  const needsKey = sink.protection === 'audit' && sink.signing_key === null;
  const needsClickhouse = embeddedClickhouseNeedsPassword(config) && config.clickhouse.password === null;
  const needsIdTagKey = config.ingress.id_tag_key === null;
  if (missing.length === 0 && !needsKey && !needsClickhouse && !needsIdTagKey) return { generated: [], file };
  const stored = readSecretsFile(config.data_dir);
  for (const role of missing) {
    const password = generatePassword();
    ROLE_PATHS[role](config).password = password;
    stored[SECRET_KEYS[role]] = password;
  }
  if (needsKey) stored[SIGNING_KEY_NAME] = sink.signing_key = generatePassword() + generatePassword();
  if (needsClickhouse) stored[CLICKHOUSE_PASSWORD_NAME] = config.clickhouse.password = generatePassword();
  if (needsIdTagKey) stored[ID_TAG_KEY_NAME] = config.ingress.id_tag_key = generatePassword() + generatePassword();
  writeSecretsFile(config.data_dir, stored);
  return { generated: missing, file };
}

/** The password of a role, or a clear error naming where to set it. */
export function requirePassword(config: Config, role: SecretRole): string {
  const password = ROLE_PATHS[role](config).password;
  if (password === null) {
    throw new ConfigError([
      `no password for the ${role} account: set ${SECRET_KEYS[role]}, put it in the config file, ` +
        `or run "couchlog setup" once to generate it in ${secretsPath(config.data_dir)}`,
    ]);
  }
  return password;
}

/** The CouchDB base URL (no credentials, no trailing slash). */
export function couchUrl(config: Config): string {
  if (config.couchdb.url !== null) return config.couchdb.url.replace(/\/+$/, '');
  const { host, port } = config.couchdb.embedded;
  return httpUrl(host, port);
}

export function dbName(app: string): string {
  return `log_${app}`;
}

/** A name dbName() can give: `log_` and an app name (schema.ts). */
export function isLogDb(db: string): boolean {
  const app = db.slice('log_'.length);
  return db.startsWith('log_') && app.length <= APP_NAME_MAX_LENGTH && APP_NAME_PATTERN.test(app);
}

/**
 * Where the correlator writing log_<app> keeps its checkpoints: a database of
 * its own, of which only the correlator's role is a member. Not `log_…`: the
 * ingress routes those, and readers and writers are members of them (and so
 * may write their _local documents).
 */
export function correlatorStateDb(app: string): string {
  return `couchlog_state_${app}`;
}

/** The _local document of the state database naming its current epoch: only checkpoints of that epoch are read (setup/ensure-correlator-dbs.ts). */
export const STATE_EPOCH_DOC = 'epoch';

/** The checkpoint's name of one correlator instance (one per shard). */
export function checkpointName(shard: { index: number; count: number }): string {
  return shard.count > 1 ? `correlator-${shard.index}-of-${shard.count}` : 'correlator';
}

/** The ClickHouse HTTP endpoint: the configured one, else the embedded server's. */
export function clickhouseUrl(config: Config): string {
  if (config.clickhouse.url !== null) return config.clickhouse.url.replace(/\/+$/, '');
  const { host, http_port } = config.clickhouse.embedded;
  return httpUrl(host, http_port);
}
