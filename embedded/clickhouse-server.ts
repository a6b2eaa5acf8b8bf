// The embedded ClickHouse: Debian's clickhouse-server in a supervised child
// process, with its own configuration, data folder and ports, listening on
// loopback only, its `default` user with the password couchlog made for it
// (secrets.env, CLICKHOUSE_PASSWORD): loopback is open to every local user.
// It dies with couchlog (setpriv --pdeathsig), and one a killed couchlog
// left running anyway is stopped at the next start (its status file names it).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../lib/logger.js';
import { SupervisedProcess } from './supervised-process.js';
import { httpUrl } from '../lib/http-url.js';
import { keepPrivate } from './private-files.js';

export interface EmbeddedClickhouseOptions {
  binary: string;
  dataDir: string;
  host: string;
  httpPort: number;
  tcpPort: number;
  startTimeoutMs: number;
  logger: Logger;
  /** The `default` user's password (stored as its SHA-256 only); null: none (a throwaway server of a test or benchmark). */
  password: string | null;
}

const SEARCH = ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin', '/opt/clickhouse/bin'];

/** Where Debian's package (or a manual install) put the server; null when it is not installed. */
export function findClickhouseServer(): string | null {
  for (const dir of SEARCH) {
    const candidate = join(dir, 'clickhouse-server');
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export class EmbeddedClickhouse extends SupervisedProcess {
  readonly url: string;

  constructor(opts: EmbeddedClickhouseOptions) {
    const dir = join(opts.dataDir, 'clickhouse');
    const configFile = join(dir, 'config.xml');
    const url = httpUrl(opts.host, opts.httpPort);
    super({
      label: 'embedded ClickHouse',
      command: opts.binary,
      args: [`--config-file=${configFile}`],
      cwd: dir,
      probeUrl: `${url}/`,
      prepare: () => writeConfig(dir, configFile, opts),
      logFile: join(dir, 'server.err.log'),
      restartDelayMs: 1000,
      restartDelayMaxMs: 30_000,
      startTimeoutMs: opts.startTimeoutMs,
      logger: opts.logger,
      routineStderr: /^(Logging \w+ to |Include not found)/,
      // Killed, not stopped, when couchlog dies: nobody is left to stop it in order, its data must survive a
      // kill anyway (the liveness probe kills a frozen one), and 18.16 takes 8 s to stop on SIGTERM.
      parentDeathSignal: 'SIGKILL',
      // ClickHouse writes its pid into <path>/status itself; ours also covers a start that died before that.
      orphans: { pidFiles: [join(dir, 'server.pid'), join(dir, 'data', 'status')], marker: `--config-file=${configFile}` },
    });
    this.url = url;
  }
}

function writeConfig(dir: string, configFile: string, o: EmbeddedClickhouseOptions): void {
  const users = join(dir, 'users.xml');
  keepPrivate([o.dataDir, dir], [configFile, users]);
  const data = join(dir, 'data') + '/';
  for (const sub of ['', 'tmp/', 'user_files/', 'format_schemas/']) mkdirSync(data + sub, { recursive: true, mode: 0o700 });
  writeFileSync(
    configFile,
    `<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>${xml(join(dir, 'server.log'))}</log>
    <errorlog>${xml(join(dir, 'server.err.log'))}</errorlog>
    <size>10M</size>
    <count>3</count>
  </logger>
  <http_port>${o.httpPort}</http_port>
  <tcp_port>${o.tcpPort}</tcp_port>
  <listen_host>${xml(o.host)}</listen_host>
  <max_connections>256</max_connections>
  <mark_cache_size>268435456</mark_cache_size>
  <path>${xml(data)}</path>
  <tmp_path>${xml(data + 'tmp/')}</tmp_path>
  <user_files_path>${xml(data + 'user_files/')}</user_files_path>
  <format_schema_path>${xml(data + 'format_schemas/')}</format_schema_path>
  <users_config>${xml(join(dir, 'users.xml'))}</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <!-- Its own files (the preprocessed users.xml holds the password's hash) are its user's only; its default is 027. -->
  <umask>077</umask>
</yandex>
`,
    { mode: 0o600 },
  );
  writeFileSync(
    users,
    `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users>
    <default>
      ${o.password === null ? '<password></password>' : `<password_sha256_hex>${createHash('sha256').update(o.password).digest('hex')}</password_sha256_hex>`}
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`,
    { mode: 0o600 },
  );
}
