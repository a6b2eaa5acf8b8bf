// How every couchlog entry point ends: a typed error becomes one line on
// stderr and its exit code; anything else is a bug and shows its stack.
import type { Command } from 'commander';
import { CommandError, ConfigError } from '../lib/errors.js';

export function exitOnError(name: string, err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`${name}: ${err.message}\n`);
    process.exit(2);
  }
  if (err instanceof CommandError) {
    process.stderr.write(`${name}: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`${name}: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
}

/** Runs a commander program as a process's whole life. */
export function runCli(program: Command): void {
  program.parseAsync(process.argv).catch((err: unknown) => exitOnError(program.name(), err));
}

/** A closed stdout (`| head`) ends the process quietly instead of with an EPIPE stack. */
export function quietOnClosedStdout(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}
