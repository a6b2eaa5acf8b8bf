#!/usr/bin/env node
// The couchlog command line: parses arguments and calls library code.
import { Command, Option } from 'commander';
import { intAtLeast } from '../cli/options.js';
import { loadConfig, ensureSecrets } from '../lib/config/load.js';
import { OperationError } from '../lib/errors.js';
import { runCli } from '../cli/run-cli.js';
import { createCliLogger, LOG_FORMATS, type LogFormat } from '../lib/logger.js';
import { onFatal, onReopenSignal, onShutdownSignal } from '../cli/lifecycle.js';
import { startCorrelator } from '../correlator/service.js';
import { startEmbeddedClickhouse } from '../cli/clickhouse.js';
import { up, type Running } from '../cli/up.js';
import { startEmbeddedCouch } from '../cli/couchdb.js';
import { reloadWriteTokens, startIngress } from '../cli/ingress.js';
import { runSetup } from '../cli/run-setup.js';
import { report } from '../cli/report.js';
import { jsonformatCommand } from '../cli/jsonformat-command.js';
import { shipCommand } from '../cli/ship-command.js';
import { forwardCommand } from '../cli/forward-command.js';
import { auditCommand } from '../cli/audit-command.js';
import { backfillCommand } from '../cli/backfill-command.js';

const program = new Command('couchlog')
  .description('central log service: write-only ingress in front of CouchDB')
  .addOption(new Option('-c, --config <file>', 'YAML config file (default: $COUCHLOG_CONFIG, else ./couchlog.yml if present)'))
  .addOption(
    new Option(
      '--log-format <format>',
      'log lines: pretty (human), json (one object per line), auto: pretty on a terminal (default: log_format from the config)',
    ).choices([...LOG_FORMATS]),
  )
  .showHelpAfterError();

function context(quietStartup = false) {
  const opts = program.opts<{ config?: string; logFormat?: LogFormat }>();
  const { config } = loadConfig({ file: opts.config });
  // With the correlator's stdout sink on, stdout carries its records only: log lines and the banner go to stderr.
  const recordsOnStdout = config.correlator.enabled && config.correlator.outputs.stdout.enabled;
  const cli = createCliLogger(config.log_level, 'couchlog', opts.logFormat ?? config.log_format, quietStartup, recordsOnStdout ? 2 : 1);
  const say = recordsOnStdout ? process.stderr : process.stdout;
  return { config, logger: cli.logger, cli, say };
}

program
  .command('up')
  .description(
    'start everything: embedded CouchDB (unless couchdb.url is set) and ClickHouse (when installed), setup, the correlator, the ingress and the forwarders',
  )
  .action(async () => {
    const { config, logger, cli, say: out } = context(true);
    // On a terminal: a short account of what started (routine log lines are
    // held back meanwhile; warnings and errors show at once), then the banner.
    const say = cli.format === 'pretty' ? (line: string) => out.write(`${line}\n`) : undefined;
    // From the first moment: a Ctrl-C during the startup stops what has started.
    const startup = new AbortController();
    const starting = up(config, logger, say, startup.signal);
    onReopenSignal(
      logger,
      starting.then((r) => r.reopen),
    );
    let running: Running | undefined;
    onShutdownSignal(logger, async () => {
      startup.abort();
      // Aborted in time, up() stops what it started and rejects; finished, it is stopped here.
      const started = running ?? (await starting.catch(() => undefined));
      await started?.stop();
    });
    try {
      running = await starting;
    } catch (err) {
      if (startup.signal.aborted) return; // the signal handler exits once up() has stopped what it started
      throw err;
    }
    // An embedded server's port taken by another process: everything stops (exit 1), nothing is sent there.
    onFatal(logger, running.failed, running.stop);
    // Without a terminal every line is one JSON object: the banner too.
    if (cli.format === 'json') logger.info({ banner: running.banner }, 'couchlog is running (Ctrl-C stops everything)');
    else out.write(running.banner);
    // Lines the correlator's first poll writes just after startup stay held
    // a moment, so the banner is what the terminal ends with.
    setTimeout(cli.endStartup, 500).unref();
  });

program
  .command('couchdb')
  .description('run the embedded CouchDB-compatible server (PouchDB Server), supervised')
  .action(async () => {
    const { config, logger } = context();
    const couch = await startEmbeddedCouch(config, logger);
    onShutdownSignal(logger, () => couch.stop());
    onFatal(logger, couch.refused, () => couch.stop());
  });

program
  .command('setup')
  .description('create or check admin, users, require_valid_user, databases, security and design documents (idempotent)')
  .action(async () => {
    const { config } = context();
    const secrets = ensureSecrets(config);
    const report = await runSetup(config);
    process.stdout.write(`setup of ${report.server} (${report.flavor})\n`);
    for (const change of report.changes) process.stdout.write(`  ${change}\n`);
    if (report.changes.length === 0) process.stdout.write('  nothing to change\n');
    for (const note of report.notes) process.stdout.write(`note: ${note}\n`);
    if (secrets.generated.length) process.stdout.write(`generated passwords for ${secrets.generated.join(', ')} in ${secrets.file}\n`);
    if (report.unfinished.length > 0) throw new OperationError(`setup is not complete: ${report.unfinished.join('; ')}; run it again once that is fixed`);
  });

program
  .command('ingress')
  .description('run the write-only HTTP ingress')
  .action(async () => {
    const { config, logger } = context();
    // Signals are taken from the start: one during startup waits for it (see cli/lifecycle.ts).
    const starting = startIngress(config, logger);
    onShutdownSignal(logger, async () => (await starting.catch(() => undefined))?.close());
    // The ingress has no file to reopen (its logs go to stdout): SIGHUP reloads its write tokens.
    onReopenSignal(
      logger,
      starting.then((app) => async () => reloadWriteTokens(app, () => loadConfig({ file: program.opts<{ config?: string }>().config }).config, logger)),
    );
    await starting;
  });

program
  .command('correlator')
  .description('run the correlator: HTTP (A) x network (B) logs from CouchDB _changes into ClickHouse and log_correlated')
  .action(async () => {
    const { config, logger } = context();
    // Signals are taken from the start: one during startup waits for it (see cli/lifecycle.ts).
    const starting = startCorrelator(config, logger, { clickhouse: config.clickhouse.enabled });
    onShutdownSignal(logger, async () => (await starting.catch(() => undefined))?.stop());
    onReopenSignal(
      logger,
      starting.then((r) => r.reopen),
    );
    const running = await starting;
    onFatal(logger, running.superseded, () => running.stop());
  });

program
  .command('clickhouse')
  .description('run the embedded ClickHouse (Debian clickhouse-server), supervised')
  .action(async () => {
    const { config, logger } = context();
    // Its password is made once and kept in secrets.env, for the correlator and setup to read.
    ensureSecrets(config);
    const ch = await startEmbeddedClickhouse(config, logger);
    if (!ch.server) throw new OperationError(ch.reason ?? 'clickhouse.url is set: there is no embedded ClickHouse to run');
    const server = ch.server;
    onShutdownSignal(logger, () => server.stop());
    onFatal(logger, server.refused, () => server.stop());
  });

program
  .command('report <view>')
  .description(
    'print a report view as a table, CSV or JSON (by_time; fail2ban: attacks, attackers, attackers_by_ip, bans_by_day; correlated: attacks, attackers, by_ja4, orphans)',
  )
  .requiredOption('--app <app>', 'the app whose log_<app> database to read')
  .option('--group-level <n>', 'how many key parts to group by (default: all)', intAtLeast(0, '--group-level'))
  .addOption(new Option('--format <format>', 'output format').choices(['table', 'csv', 'json']).default('table'))
  .option('--from <YYYY-MM-DD>', 'first day to count')
  .option('--to <YYYY-MM-DD>', 'last day to count')
  .option('--top <n>', 'only the N rows with the highest counts, highest first', intAtLeast(1, '--top'))
  .option('--url <url>', 'where to read (default: the ingress from the config)')
  .action(
    async (
      view: string,
      opts: { app: string; groupLevel?: number; format: 'table' | 'csv' | 'json'; from?: string; to?: string; top?: number; url?: string },
    ) => {
      const { config } = context();
      process.stdout.write(await report(config, view, opts));
    },
  );

program.addCommand(jsonformatCommand());
program.addCommand(shipCommand('ship', () => program.opts<{ config?: string }>().config));
program.addCommand(forwardCommand('forward', () => program.opts<{ config?: string }>().config));
program.addCommand(auditCommand('audit', () => program.opts<{ config?: string }>().config));
program.addCommand(
  backfillCommand(
    'backfill',
    () => program.opts<{ config?: string }>().config,
    () => program.opts<{ logFormat?: LogFormat }>().logFormat,
  ),
);

runCli(program);
