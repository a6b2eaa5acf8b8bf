// How every couchlog entry point ends: a typed error becomes one line on
// stderr and its exit code; anything else is a bug and shows its stack.
import type { Command } from 'commander';
import { ConfigError, CouchlogError, InterruptedError, OperationError, UsageError } from '../lib/errors.js';
import { redactUrlCredentials } from '../lib/http-url.js';
// options.ts takes EXIT_CODES from here: both are used only once a command runs, so the cycle is harmless.
import { usageErrorsExit2 } from './options.js';

/** Every exit code a couchlog command ends with (docs/errors.md lists the same). */
export const EXIT_CODES = {
  /** The work could not be done (OperationError), or a bug. */
  failure: 1,
  /** Bad options, arguments or configuration (UsageError, ConfigError, commander's own usage errors): nothing was done. */
  usage: 2,
  /** couchlog audit found documents changed, deleted or not signed; couchlog backfill left unsigned ones out. */
  auditFindings: 3,
  /** Stopped by SIGINT/SIGTERM before the work was done (InterruptedError). */
  interrupted: 130,
} as const;

/** The exit code of an error that ends a command, and whether it is reported in one line (anything unexpected is a bug: its stack). */
export function exitCodeOf(err: unknown): { code: number; oneLine: boolean } {
  if (err instanceof ConfigError || err instanceof UsageError) return { code: EXIT_CODES.usage, oneLine: true };
  if (err instanceof InterruptedError) return { code: EXIT_CODES.interrupted, oneLine: true };
  if (err instanceof OperationError) return { code: EXIT_CODES.failure, oneLine: true };
  // A server that cannot be reached or failed (503: COUCHDB_UNAVAILABLE ...): an operational failure, not a bug.
  if (err instanceof CouchlogError && err.statusCode === 503) return { code: EXIT_CODES.failure, oneLine: true };
  return { code: EXIT_CODES.failure, oneLine: false };
}

export function exitOnError(name: string, err: unknown): never {
  const { code, oneLine } = exitCodeOf(err);
  const line = err instanceof CouchlogError ? `${err.message} [${err.code}]` : (err as Error).message;
  // A message may quote a URL someone gave with a password in it (a server's, a library's error): never printed.
  process.stderr.write(`${name}: ${redactUrlCredentials(oneLine ? line : ((err as Error)?.stack ?? String(err)))}\n`);
  process.exit(code);
}

/**
 * Runs a commander program as a process's whole life: every entry point
 * (couchlog, couchlog-ship, jsonformat) ends alike, a usage error commander
 * finds included (exit 2, not commander's own 1).
 */
export function runCli(program: Command): void {
  usageErrorsExit2(program)
    .parseAsync(process.argv)
    .catch((err: unknown) => exitOnError(program.name(), err));
}

/** A closed stdout (`| head`) ends the process quietly instead of with an EPIPE stack. */
export function quietOnClosedStdout(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}
