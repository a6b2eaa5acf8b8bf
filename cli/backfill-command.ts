// `couchlog backfill`: copies log_correlated into ClickHouse, for the
// records ClickHouse missed (correlator/sinks/clickhouse/backfill.ts says
// when that happens and what stays true). Safe next to a running
// correlator and safe to repeat. Exit codes: 0 done; 3 done, but documents
// without the correlator's valid signature were left out (audit
// protection); 2 bad usage or config; 1 CouchDB or ClickHouse failed (the
// message says which --since resumes); 130 interrupted (likewise).
import { resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import cliProgress from 'cli-progress';
import { couchUrl, dbName, loadConfig, requirePassword, SIGNING_KEY_NAME, type Config } from '../lib/config/load.js';
import { basicAuth } from '../lib/couch/basic-auth.js';
import { CouchHttp } from '../lib/couch/http.js';
import { InterruptedError, OperationError, UsageError } from '../lib/errors.js';
import { createLogger, type LogFormat } from '../lib/logger.js';
import { checkSignature } from '../lib/audit/record-signature.js';
import { ChangesFeed } from '../correlator/feed/changes-feed.js';
import { CorrelatorMetrics } from '../correlator/metrics.js';
import { backfill, LONGEST_LOOKUP_ID, type BackfillProgress } from '../correlator/sinks/clickhouse/backfill.js';
import { openClickhouseSink } from '../correlator/sinks/clickhouse/open-sink.js';
import { intAtLeast, seconds } from './options.js';
import { EXIT_CODES } from './run-cli.js';

interface BackfillCliOptions {
  since: string;
  decidedSince?: string;
  giveUpAfter: number;
  page: number;
  json?: boolean;
  progress: boolean;
}

/** The dead letters of a backfill: apart from the running correlator's file, which another process appends to. */
export const BACKFILL_DEAD_LETTER_FILE = 'clickhouse-backfill-dead-letter.jsonl';

export interface BackfillResult extends BackfillProgress {
  database: string;
  table: string;
  dead_lettered: number;
  seconds: number;
}

/** A position in _changes as a server gives it: a number (PouchDB Server) or "N-opaque" (CouchDB 3). */
export function parseSince(text: string): string {
  if (!/^(0|[1-9]\d{0,15})(-[A-Za-z0-9_-]+)?$/.test(text))
    throw new UsageError(`--since must be a sequence a previous run printed (a number, or N-... on CouchDB 3), got "${text}"`);
  return text;
}

function parseDecidedSince(text: string | undefined): number | null {
  if (text === undefined) return null;
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(ms))
    throw new UsageError(`--decided-since must be an ISO 8601 date or time (2026-12-01, 2026-12-01T08:00:00Z), got "${text}"`);
  return ms;
}

/** Rejects 5 s after the signal: a page being retried against a failing ClickHouse is not waited for (the position printed is before it). */
function interrupted(signal: AbortSignal | undefined): Promise<never> {
  return new Promise((_, reject) => {
    signal?.addEventListener('abort', () => setTimeout(() => reject(new InterruptedError()), 5000).unref(), { once: true });
  });
}

/** A parser that also caps the value. */
const intAtMost = (max: number, parse: (v: string) => number, flag: string) => (v: string) => {
  const n = parse(v);
  if (n > max) throw new InvalidArgumentError(`${flag} must be at most ${max}, got "${v}"`);
  return n;
};

/** Whole run: what it copied, or an error that names the --since to resume from. */
export async function runBackfill(
  config: Config,
  o: { since: string; decidedSince: number | null; giveUpAfterMs: number; page: number; logFormat?: LogFormat },
  hooks: { onPage?: (p: BackfillProgress) => void; signal?: AbortSignal } = {},
): Promise<BackfillResult> {
  if (!config.clickhouse.enabled) throw new UsageError('clickhouse.enabled is false in the configuration: there is no ClickHouse to backfill');
  const out = config.correlator.outputs.couchdb;
  if (out.protection === 'audit' && out.signing_key === null)
    throw new UsageError(`${dbName(out.app)} is under audit protection but there is no signing key: set ${SIGNING_KEY_NAME} (environment or secrets.env)`);
  // Checked whenever there is a key, as couchlog audit does (the correlator signs whenever it has one).
  const key = out.signing_key;
  const db = dbName(out.app);
  // On stderr, in the configured format: stdout carries the result (--json) alone.
  const log = createLogger(config.log_level, 'backfill', { format: o.logFormat ?? config.log_format, fd: 2 });
  const metrics = new CorrelatorMetrics();
  const http = new CouchHttp(couchUrl(config), { timeoutMs: config.couchdb.request_timeout_ms, retryAfterS: 5 });
  const admin = { authorization: basicAuth(config.couchdb.admin.user, requirePassword(config, 'admin')) };
  const started = Date.now();
  try {
    const info = await http.request('GET', `/${encodeURIComponent(db)}`, { headers: admin });
    if (info.status === 404) throw new OperationError(`${db} does not exist: run couchlog setup (and the correlator)`);
    if (info.status !== 200) throw new OperationError(`reading ${db}: ${info.status} ${JSON.stringify(info.body)}`);
    const opened = await openClickhouseSink(config, metrics, log, resolve(config.data_dir, BACKFILL_DEAD_LETTER_FILE), { dropOnOverflow: false });
    let reached = o.since;
    let giveUp: NodeJS.Timeout | undefined;
    try {
      const gaveUp = new Promise<never>((_, reject) => {
        giveUp = setInterval(() => {
          const since = opened.sink.failingSince;
          if (since !== null && Date.now() - since > o.giveUpAfterMs) {
            reject(
              new OperationError(
                `ClickHouse at ${opened.target.url} failed for ${Math.round(o.giveUpAfterMs / 1000)} s: stopped; run again with --since ${reached}`,
              ),
            );
          }
        }, 250);
      });
      const progress = await Promise.race([
        backfill({
          feed: new ChangesFeed(http, db, admin, o.page),
          sink: opened.sink,
          client: opened.client,
          database: opened.target.database,
          table: opened.target.table,
          since: o.since,
          decidedSince: o.decidedSince,
          checkSignature: key === null ? null : (doc) => checkSignature(doc, key),
          signal: hooks.signal,
          giveUpAfterMs: o.giveUpAfterMs,
          inFlight: 2 * config.correlator.outputs.clickhouse.max_batch_size,
          onPage: (p) => {
            reached = p.since;
            hooks.onPage?.(p);
          },
        }).catch((err: Error) => {
          throw new OperationError(`${err.message}; run again with --since ${reached}`);
        }),
        gaveUp,
        interrupted(hooks.signal),
      ]);
      if (!progress.done && hooks.signal?.aborted) throw new InterruptedError();
      await opened.sink.close();
      const deadLettered = (await metrics.sinkDeadLetters.get()).values.reduce((sum, v) => sum + v.value, 0);
      return {
        ...progress,
        database: opened.target.database,
        table: opened.target.table,
        dead_lettered: deadLettered,
        seconds: Math.round((Date.now() - started) / 100) / 10,
      };
    } catch (err) {
      // What is still being retried is not acknowledged: the position reported is before it.
      opened.sink.abandon?.();
      await opened.sink.close().catch(() => {});
      throw err;
    } finally {
      clearInterval(giveUp);
    }
  } finally {
    await http.close();
  }
}

/** `1 record`, `2 records`. */
const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

export function formatBackfill(r: BackfillResult): string {
  const lines = [
    `backfill: ${count(r.read, 'change')} of log_correlated read in ${r.seconds} s; ${count(r.copied, 'record')} and ${count(r.deleted, 'deletion')} sent to ${r.database}.${r.table}`,
  ];
  if (r.older > 0) lines.push(`  ${r.older} records decided before --decided-since left out`);
  if (r.skipped > 0)
    lines.push(`  ${r.skipped} deleted records with ids too long to look up in ClickHouse (over ${LONGEST_LOOKUP_ID} characters) not deleted there`);
  if (r.dead_lettered > 0) lines.push(`  ${r.dead_lettered} records refused by ClickHouse: in ${BACKFILL_DEAD_LETTER_FILE} of the data folder`);
  if (r.unsigned > 0)
    lines.push(
      `  ${r.unsigned} documents without the correlator's valid signature left out (couchlog audit lists them), e.g. ${r.unsignedIds.slice(0, 5).join(' ')}`,
    );
  lines.push(`  next time, --since ${r.since} starts after what this run read`);
  return `${lines.join('\n')}\n`;
}

/** Progress on a terminal: against `pending` where the server gives it (CouchDB 3), a plain count where not (PouchDB Server). */
function terminalBar(): { update(p: BackfillProgress): void; stop(): void } {
  let bar: cliProgress.SingleBar | null = null;
  return {
    update(p) {
      const known = p.pending !== null;
      bar ??= new cliProgress.SingleBar(
        {
          stream: process.stderr,
          format: known ? 'backfill {bar} {percentage}% | {value}/{total} changes | {copied} records' : 'backfill {value} changes | {copied} records',
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      );
      const total = p.read + (p.pending ?? 0);
      if (!bar.isActive) bar.start(known ? total : 0, 0, { copied: 0 });
      if (known) bar.setTotal(total);
      bar.update(p.read, { copied: p.copied + p.deleted });
    },
    stop: () => bar?.stop(),
  };
}

export function backfillCommand(name: string, configFile: () => string | undefined, logFormat: () => LogFormat | undefined = () => undefined): Command {
  return new Command(name)
    .description('copy the correlated records of log_correlated into ClickHouse (those it missed while its sink was off, dropped or lost); safe to repeat')
    .option('--since <seq>', "start after this sequence of log_correlated's _changes (a previous run prints it)", '0')
    .option('--decided-since <time>', 'only records decided at or after this ISO 8601 time')
    .option('--give-up-after <s>', 'stop when ClickHouse has failed for this long', seconds('--give-up-after'), 120)
    .option('--page <n>', 'changes read per request (at most 10000)', intAtMost(10_000, intAtLeast(1, '--page'), '--page'), 1000)
    .option('--json', 'print the result as JSON')
    .option('--no-progress', 'no progress bar even on a terminal')
    .action(async (o: BackfillCliOptions) => {
      const decidedSince = parseDecidedSince(o.decidedSince);
      const since = parseSince(o.since);
      const { config } = loadConfig({ file: configFile() });
      const bar = process.stderr.isTTY === true && o.progress ? terminalBar() : null;
      const stop = new AbortController();
      const interrupt = () => stop.abort();
      process.once('SIGINT', interrupt).once('SIGTERM', interrupt);
      let result: BackfillResult;
      let reached = o.since;
      try {
        result = await runBackfill(
          config,
          { since, decidedSince, giveUpAfterMs: o.giveUpAfter * 1000, page: o.page, logFormat: logFormat() },
          {
            onPage: (p) => {
              reached = p.since;
              bar?.update(p);
            },
            signal: stop.signal,
          },
        );
      } catch (err) {
        bar?.stop();
        if (err instanceof InterruptedError) process.stderr.write(`backfill: interrupted; run again with --since ${reached} to go on\n`);
        throw err;
      } finally {
        process.off('SIGINT', interrupt).off('SIGTERM', interrupt);
      }
      bar?.stop();
      process.stdout.write(o.json ? `${JSON.stringify(result)}\n` : formatBackfill(result));
      if (result.unsigned > 0) process.exitCode = EXIT_CODES.auditFindings;
    });
}
