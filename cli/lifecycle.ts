// Signal handling shared by the long-running commands: the first SIGINT or
// SIGTERM runs the orderly shutdown, a second one exits at once.
import type { Logger } from '../lib/logger.js';

export function onShutdownSignal(logger: Logger, shutdown: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    stopping = true;
    // A log line that cannot be written (the terminal is gone: EIO) must
    // not stop the shutdown it announces.
    try {
      logger.info({ signal }, 'shutting down');
    } catch {
      // nothing to do: the shutdown below is what matters
    }
    shutdown().then(
      () => process.exit(0),
      (err: Error) => {
        logger.error({ err: err.message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

/**
 * SIGHUP reopens output files (logrotate's postrotate sends it, and
 * `systemctl reload`). Installed before startup, with the reopen action
 * to come once started: SIGHUP's default action ends the process, which
 * systemd counts as a clean exit (no restart), and `couchlog up` would
 * leave its servers behind. One that comes while starting is answered
 * once started (a file opened meanwhile may be the one rotated away).
 */
export function onReopenSignal(logger: Logger, reopen: Promise<(() => Promise<void>) | undefined>): void {
  const ready = reopen.catch(() => undefined);
  process.on('SIGHUP', () => {
    logger.info('SIGHUP: reopening files');
    ready.then((action) => action?.()).catch((err: Error) => logger.error({ err: err.message }, 'reopen failed'));
  });
}

/**
 * A command whose work cannot go on (`couchlog correlator` when another
 * correlator writes its checkpoint: correlator/feed/writer-claim.ts) stops
 * in the usual order and exits 1, so a supervisor shows the failure; the
 * reason is already logged.
 */
export function onFatal(logger: Logger, failed: Promise<Error>, stop: () => Promise<void>): void {
  failed
    .then(async (err) => {
      logger.error({ code: (err as { code?: string }).code }, 'stopping: a part cannot go on');
      await stop();
    })
    .then(
      () => process.exit(1),
      (err: Error) => {
        logger.error({ err: err.message }, 'shutdown failed');
        process.exit(1);
      },
    );
}

/**
 * Stops parts in the reverse of the order they started. Every part is
 * stopped even if one fails to (the correlator's checkpoint and the
 * databases after it must not be skipped); the first failure is thrown once
 * all have been tried.
 */
export async function stopInReverse(parts: ReadonlyArray<{ stop: () => Promise<void> }>, logger: Logger): Promise<void> {
  let first: unknown = null;
  for (const part of [...parts].reverse()) {
    try {
      await part.stop();
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'a part failed to stop; stopping the others');
      first ??= err;
    }
  }
  if (first !== null) throw first;
}
