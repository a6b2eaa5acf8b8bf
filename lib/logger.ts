// One pino logger for every process. Credentials are redacted wherever they
// could appear, so a log line can never carry a password or a session.
//
// Two formats (config `log_format`, `couchlog --log-format`):
//  - json: one JSON object per line (systemd, docker, pipes, log shippers);
//  - pretty: one short human line per event (pino-pretty), colour only when
//    the output is a terminal;
//  - auto (the default): pretty when stdout is a terminal, else json.
import { pino, type Logger, type LoggerOptions } from 'pino';
import pretty from 'pino-pretty';
import { colourWanted } from './config/terminal.js';

export type { Logger } from 'pino';

export const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'password',
  '*.password',
];

/**
 * Query parameters that carry a secret (Splunk's `?token=` for HEC
 * clients that cannot set a header, and the usual suspects): their values
 * never reach a log line, whether the request succeeded or not.
 */
const SECRET_PARAMS = new Set(['token', 'access_token', 'password', 'pass', 'passwd', 'secret', 'api_key', 'apikey', 'auth', 'authorization']);

/**
 * `url` for a log line: the value of every secret-bearing query parameter
 * replaced (compared decoded, case-insensitive). `;` separates parameters
 * as `&` does (CouchDB reads it so), and `token[]` or `token[0]` (array
 * syntax some clients send) is `token`: a value hidden from one parser
 * must not be shown because another one reads the query differently.
 */
export function loggableUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  // Separators kept at the odd indexes, so the query is rebuilt as it came.
  const parts = url.slice(q + 1).split(/([&;])/);
  let changed = false;
  for (let i = 0; i < parts.length; i += 2) {
    const part = parts[i]!;
    const eq = part.indexOf('=');
    const rawKey = eq < 0 ? part : part.slice(0, eq);
    let key: string;
    try {
      key = decodeURIComponent(rawKey.replace(/\+/g, ' '));
    } catch {
      key = rawKey;
    }
    if (
      SECRET_PARAMS.has(
        key
          .replace(/\[[^\]]*\]$/, '')
          .trim()
          .toLowerCase(),
      )
    ) {
      parts[i] = `${rawKey}=[redacted]`;
      changed = true;
    }
  }
  return changed ? `${url.slice(0, q)}?${parts.join('')}` : url;
}

export function loggerOptions(level: string, name?: string): LoggerOptions {
  return {
    level,
    ...(name ? { name } : {}),
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
}

export interface LoggerOutput {
  format?: LogFormat;
  /** Where lines go (default: stdout, written synchronously so they keep their order with the banner). */
  fd?: number;
  /** Whether that output is a terminal (default: asked of the fd). */
  isTTY?: boolean;
}

/** The format `auto` stands for on this output. */
export function resolveLogFormat(format: LogFormat, isTTY: boolean): 'pretty' | 'json' {
  return format === 'auto' ? (isTTY ? 'pretty' : 'json') : format;
}

export function createLogger(level: string, name?: string, out: LoggerOutput = {}): Logger {
  const fd = out.fd ?? 1;
  const isTTY = out.isTTY ?? (fd === 1 ? process.stdout.isTTY === true : fd === 2 ? process.stderr.isTTY === true : false);
  const format = resolveLogFormat(out.format ?? 'json', isTTY);
  if (format === 'json') {
    // Explicit format only: library callers (tests) keep pino's default destination.
    if (out.format === undefined) return pino(loggerOptions(level, name));
    return pino(loggerOptions(level, name), pino.destination({ dest: fd, sync: true }));
  }
  const colour = isTTY && colourWanted();
  return pino(loggerOptions(level, name), prettyStream(fd, colour));
}

export interface CliLogger {
  logger: Logger;
  /** The format in force (auto resolved). */
  format: 'pretty' | 'json';
  /** Lets routine (info and below) lines through again after a quiet startup. */
  endStartup: () => void;
}

const ROUTINE = /"level":(10|20|30),/;

/**
 * The logger of a long-running command. With `quietStartup` and the pretty
 * format, routine lines are held back until endStartup(): the command
 * prints its own short account of what started instead, and warnings and
 * errors (what failed and why) still show at once. JSON lines are never held.
 */
export function createCliLogger(level: string, name: string, format: LogFormat, quietStartup = false, fd: 1 | 2 = 1): CliLogger {
  const isTTY = (fd === 1 ? process.stdout : process.stderr).isTTY === true;
  const resolved = resolveLogFormat(format, isTTY);
  if (resolved === 'json' || !quietStartup) {
    return { logger: createLogger(level, name, { format: resolved, fd, isTTY }), format: resolved, endStartup: () => {} };
  }
  const colour = isTTY && colourWanted();
  const target = prettyStream(fd, colour);
  let quiet = true;
  const gate = {
    write(line: string): void {
      if (quiet && ROUTINE.test(line)) return;
      target.write(line);
    },
  };
  return { logger: pino(loggerOptions(level, name), gate), format: resolved, endStartup: () => (quiet = false) };
}

function prettyStream(fd: number, colour: boolean) {
  return pretty({
    destination: fd,
    sync: true,
    colorize: colour,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss',
    // pid and hostname are the same on every line; the component leads the
    // message; a request's fields are in its message already.
    ignore: 'pid,hostname,name,component,reqId,http',
    messageFormat: '{if component}{component}: {end}{msg}',
  });
}
