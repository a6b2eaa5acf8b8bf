// One pino logger for every process. Credentials are redacted wherever they
// could appear, so a log line can never carry a password or a session.
import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'password',
  '*.password',
];

export function loggerOptions(level: string, name?: string): LoggerOptions {
  return {
    level,
    ...(name ? { name } : {}),
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
}

export function createLogger(level: string, name?: string): Logger {
  return pino(loggerOptions(level, name));
}
