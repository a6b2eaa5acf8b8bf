// `couchlog ship` (and scripts/ship.ts): options defined once here; the
// work is shipper/ship.ts.
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../lib/config/load.js';
import { UsageError, OperationError } from '../lib/errors.js';
import { converterFactory } from '../shipper/jsonformat/converter.js';
import { noProgress, terminalProgress } from '../shipper/progress.js';
import { parseTarget } from '../shipper/ingress-client.js';
import { ship, type ShipResult } from '../shipper/ship.js';
import { defaultRejectPath } from '../shipper/reject-file.js';
import { homedir } from 'node:os';
import type { TruncateMethod } from '../shipper/truncate.js';
import { addConversionOptions, stdinChunks } from './jsonformat-command.js';
import { intAtLeast, MIN_BACKOFF_MS, msAtLeast, seconds, timeoutSeconds } from './options.js';
import { exitCodeOf } from './run-cli.js';
import { httpUrl } from '../lib/http-url.js';

export interface ShipCliOptions {
  url?: string;
  app?: string;
  config?: string;
  schema?: string;
  preset?: string;
  format?: 'json' | 'auditd';
  fields: string[];
  types: string[];
  strict?: boolean;
  reportLimit: number;
  auditTimeout: number;
  grep: string[];
  batchSize: number;
  batchBytes: number;
  maxLineBytes: number;
  concurrency: number;
  timeout: number;
  retryFor: number;
  backoffBase: number;
  backoffMax: number;
  truncate?: boolean;
  truncateMethod: TruncateMethod;
  state?: string;
  sourceId?: string;
  rejectFile?: string;
  verbose?: boolean;
  progress: boolean;
}

const regex = (value: string, previous: RegExp[]) => {
  try {
    return [...previous, new RegExp(value)];
  } catch (err) {
    throw new InvalidArgumentError(`--grep: ${(err as Error).message}`);
  }
};

/**
 * configFile: the --config of the parent program (`couchlog --config F ship`);
 * the standalone script has its own -c/--config.
 */
export function shipCommand(name = 'ship', configFile?: () => string | undefined): Command {
  const cmd = new Command(name)
    .description('send JSON lines (or log lines through jsonformat) from stdin or files to the ingress, in batches, retried, never twice')
    .argument('[files...]', 'log files (default: stdin)')
    .option('--url <url>', 'the ingress log database, e.g. http://127.0.0.1:8080/log_fail2ban (default: the ingress of the config, with --app)')
    .option('--app <app>', 'the app: log_<app> is the database');
  if (!configFile) cmd.option('-c, --config <file>', 'couchlog config file, for the default --url');
  addConversionOptions(cmd, ['json', 'auditd'])
    .option(
      '--grep <regex>',
      'ship only lines matching this (repeatable: all must match, like a chain of greps); the others are skipped and count as done',
      regex,
      [] as RegExp[],
    )
    .option('--batch-size <n>', 'documents per request', intAtLeast(1, '--batch-size'), 1000)
    .option('--batch-bytes <n>', 'about this many bytes per request at most', intAtLeast(1, '--batch-bytes'), 1024 * 1024)
    .option(
      '--max-line-bytes <n>',
      'a longer line stops the run (it is not held in memory, sent or set aside; with --truncate the file is left as it was)',
      intAtLeast(1024, '--max-line-bytes'),
      256 * 1024 * 1024,
    )
    .option('--concurrency <n>', 'requests in flight', intAtLeast(1, '--concurrency'), 4)
    .option('--timeout <seconds>', 'one request gives up after this long (then it is retried)', timeoutSeconds('--timeout'), 30)
    .option('--retry-for <seconds>', 'give up (exit 1) when a batch has failed for this long', seconds('--retry-for'), 300)
    .option('--backoff-base <ms>', 'first retry delay ceiling (doubles each retry, with jitter)', msAtLeast(MIN_BACKOFF_MS, '--backoff-base'), 500)
    .option('--backoff-max <ms>', 'longest retry delay', msAtLeast(MIN_BACKOFF_MS, '--backoff-max'), 30_000)
    .option('--truncate', 'once every line read is acknowledged, remove exactly those bytes from each file (keeps lines appended meanwhile)')
    .addOption(
      new Option('--truncate-method <method>', 'auto: collapse-range where the filesystem has it, else copy-truncate')
        .choices(['auto', 'collapse', 'copy'])
        .default('auto'),
    )
    .option('--state <file>', 'remember per file (device, inode, offset) what was sent; send only what is new; follows rotation and truncation')
    .option('--source-id <id>', 'identity of the input in document ids (default: the absolute path, or "stdin")')
    .option(
      '--reject-file <file>',
      'where refused documents and non-matching lines go, with the reason (default: next to --state as <state>.rejects.ndjson, else <data_dir>/rejects/log_<app>.ndjson)',
    )
    .option('-v, --verbose', 'a one-line summary at the end, retries as they happen')
    .option('--no-progress', 'no progress bar even on a terminal')
    .showHelpAfterError()
    .action(async (files: string[], o: ShipCliOptions) => {
      const controller = new AbortController();
      const onSignal = () => controller.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const label = name === 'ship' ? 'couchlog ship' : name;
      const report = (line: string) => process.stderr.write(`${label}: ${line}\n`);
      const isTty = process.stderr.isTTY === true && o.progress;
      const target = parseTarget(o.url ?? defaultIngress(o.config ?? configFile?.(), o.app), o.app);
      const rejectFile =
        o.rejectFile ??
        defaultRejectPath({
          stateFile: o.state ?? null,
          dataDir: o.state ? null : namedDataDir(o.config ?? configFile?.()),
          db: target.dbPath.slice(target.dbPath.lastIndexOf('/') + 1),
          home: homedir(),
        });
      const result = await ship({
        target,
        files,
        // Opened only when read: with files, stdin is left alone.
        stdin: files.length === 0 ? stdinChunks() : [],
        makeConverter: converterFactory(
          { schema: o.schema, preset: o.preset, format: o.format, fields: o.fields, types: o.types, auditTimeoutS: o.auditTimeout },
          'json',
        ),
        auditd: o.format === 'auditd',
        grep: o.grep as unknown as RegExp[],
        strict: o.strict === true,
        reportLimit: o.reportLimit,
        batchDocs: o.batchSize,
        batchBytes: o.batchBytes,
        maxLineBytes: o.maxLineBytes,
        concurrency: o.concurrency,
        timeoutMs: o.timeout * 1000,
        retryForMs: o.retryFor * 1000,
        backoff: { baseMs: o.backoffBase, maxMs: Math.max(o.backoffBase, o.backoffMax) },
        truncate: o.truncate ? o.truncateMethod : null,
        stateFile: o.state ?? null,
        sourceId: o.sourceId ?? null,
        rejectFile,
        progress: (what, total) => (isTty ? terminalProgress(process.stderr, what, total) : noProgress()),
        report,
        verbose: o.verbose === true,
        signal: controller.signal,
      });
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      for (const note of result.notes) report(note);
      const toReject = result.counts.rejected + result.counts.unmatched;
      if (toReject > 0) {
        const what = `${result.counts.unmatched} lines did not match and ${result.counts.rejected} documents were refused`;
        // Said only of what the file took (found by a black-box test: "written to" came before the EACCES that stopped it).
        if (result.rejectsWritten === toReject) report(`${what}: written to ${rejectFile} with the reasons`);
        else report(`${what}: ${result.rejectsWritten} of them written to ${rejectFile}; the others could not be (below), and stay in the log`);
      }
      if (o.verbose || result.error) report(summaryLine(result, o));
      // Summarised above; a failure the shipper did not foresee still ends in one line.
      if (result.error) throw exitCodeOf(result.error).oneLine ? result.error : new OperationError(result.error.message, { cause: result.error });
    });
  return cmd;
}

function defaultIngress(configFile: string | undefined, app: string | undefined): string {
  if (app === undefined) throw new UsageError('give --url http://host:port/log_<app>, or --app <app> to use the ingress of the config');
  const { config } = loadConfig({ file: configFile });
  return httpUrl(config.ingress.host, config.ingress.port, { reachable: true });
}

export function summaryLine(r: ShipResult, o: Pick<ShipCliOptions, 'truncate' | 'state'>): string {
  const c = r.counts;
  const rate = r.seconds > 0 ? Math.round((c.stored + c.existing) / r.seconds) : 0;
  const parts = [
    `${c.lines} lines (${(c.bytes / 1e6).toFixed(1)} MB)`,
    `${c.stored} stored`,
    `${c.existing} already stored`,
    `${c.rejected} refused`,
    `${c.unmatched} unmatched`,
    `${c.skipped} skipped`,
    `${c.blank} blank`,
  ];
  let line = `${parts.join(', ')} in ${r.seconds.toFixed(1)} s (${rate} docs/s${c.retries ? `, ${c.retries} documents retried` : ''})`;
  for (const s of r.sources) {
    if (s.truncated) {
      const t = s.truncated;
      line += `; ${s.source}: removed ${t.removed} bytes${t.blanked ? ` and blanked ${t.blanked}` : ''} (${t.method})`;
    } else if (r.error && o.truncate) {
      line += `; ${s.source} left as it was`;
    } else if (o.state) {
      line += `; ${s.source}: acknowledged up to byte ${s.acked}`;
    }
  }
  return line;
}

/** The data folder a config file or COUCHLOG_DATA names; null when it would be the built-in ./data. */
function namedDataDir(file: string | undefined): string | null {
  const loaded = loadConfig({ file });
  return loaded.dataDirDefaulted ? null : loaded.config.data_dir;
}
