// Parsers of command-line option values, shared by the couchlog commands
// and the bench scripts: a bad value is refused with a message naming the
// option (commander reports it and exits), never used as NaN.
import { Command, InvalidArgumentError } from 'commander';
import { EXIT_CODES } from './run-cli.js';

/** A commander parser for an integer >= min (digits; `_` may group them: 100_000). */
export function intAtLeast(min: number, flag = 'the value'): (value: string) => number {
  const must = min === 0 ? 'a non-negative integer' : min === 1 ? 'a positive integer' : `an integer >= ${min}`;
  return (value: string) => {
    const digits = value.trim().replace(/_/g, '');
    const n = Number(digits);
    if (!/^\d+$/.test(digits) || !Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${flag} must be ${must}, got "${value}"`);
    return n;
  };
}

/** A commander parser for a TCP port (1-65535). */
export function port(flag: string): (value: string) => number {
  const int = intAtLeast(1, flag);
  return (value: string) => {
    const n = int(value);
    if (n > 65535) throw new InvalidArgumentError(`${flag} must be a port number (1-65535), got "${value}"`);
    return n;
  };
}

/** A commander parser for a non-negative number of seconds (fractions allowed). */
export const seconds = (flag: string) => (value: string) => {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${flag} must be a number of seconds`);
  return n;
};

/**
 * The shortest timeout an option takes, as the config's *_timeout_ms keys.
 * A timeout of 0 is no timeout at all to undici: a stalled server would
 * hold the run (and its lock) forever. (For --audit-timeout, 0 would emit
 * every record as an event of its own.)
 */
export const MIN_TIMEOUT_MS = 100;

/** The shortest retry delay an option takes, as the config's backoff_*_ms keys: 0 retries in a tight loop. */
export const MIN_BACKOFF_MS = 10;

/** A commander parser for a timeout in seconds (fractions allowed), at least MIN_TIMEOUT_MS. */
export const timeoutSeconds = (flag: string) => {
  const parse = seconds(flag);
  return (value: string) => {
    const n = parse(value);
    if (n * 1000 < MIN_TIMEOUT_MS) throw new InvalidArgumentError(`${flag} must be at least ${MIN_TIMEOUT_MS / 1000} seconds, got "${value}"`);
    return n;
  };
};

/** A commander parser for a whole number of milliseconds, at least `min`. */
export function msAtLeast(min: number, flag: string): (value: string) => number {
  const int = intAtLeast(0, flag);
  return (value: string) => {
    const n = int(value);
    if (n < min) throw new InvalidArgumentError(`${flag} must be at least ${min} ms, got "${value}"`);
    return n;
  };
}

/** A repeatable option's values, in order. */
export const collect = (value: string, previous: string[]) => [...previous, value];

/** Exit code 2 for any usage error of `cmd` and of its subcommands (commander's own exits with 1), 0 for --help. */
export function usageErrorsExit2(cmd: Command): Command {
  for (const sub of cmd.commands) usageErrorsExit2(sub);
  return cmd.exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : EXIT_CODES.usage);
  });
}

/** Stops a script: the message, prefixed with the script's name, and exit code 2. */
export function usageError(script: string, message: string): never {
  process.stderr.write(`${script}: ${message}\n`);
  process.exit(EXIT_CODES.usage);
}
