// Where each password in force came from (the environment, the secrets
// file, or the config file), for the startup banner: it names the place,
// never the password. Here because only the config module reads process.env.
import { CLICKHOUSE_PASSWORD_NAME, type Config } from './load.js';
import { SECRET_KEYS, readSecretsFile, type SecretRole } from './secrets.js';

export type PasswordSource = 'environment' | 'file' | 'config';

/** Where the password in force for a role came from: the environment, the secrets file, or the config file. */
export function passwordSources(config: Config, env: NodeJS.ProcessEnv = process.env): Record<SecretRole, PasswordSource> {
  const stored = readSecretsFile(config.data_dir);
  const out = {} as Record<SecretRole, PasswordSource>;
  for (const role of Object.keys(SECRET_KEYS) as SecretRole[]) {
    const key = SECRET_KEYS[role];
    const value = role === 'admin' ? config.couchdb.admin.password : config.users[role].password;
    out[role] = env[key] && env[key] === value ? 'environment' : stored[key] !== undefined && stored[key] === value ? 'file' : 'config';
  }
  return out;
}

/** Where the embedded ClickHouse's password came from, as passwordSources says for the accounts. */
export function clickhousePasswordSource(config: Config, env: NodeJS.ProcessEnv = process.env): PasswordSource {
  const value = config.clickhouse.password;
  if (env[CLICKHOUSE_PASSWORD_NAME] && env[CLICKHOUSE_PASSWORD_NAME] === value) return 'environment';
  return readSecretsFile(config.data_dir)[CLICKHOUSE_PASSWORD_NAME] === value ? 'file' : 'config';
}
