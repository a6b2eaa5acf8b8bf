// `couchlog report <view>`: a report view as a table, CSV or JSON.
import { dbName, isLogDb, requirePassword, type Config } from '../lib/config/load.js';
import { findView, REPORT_SET_NAMES, viewNames, type ReportSet } from '../design-docs/index.js';
import { UsageError } from '../lib/errors.js';
import { groupReport, parseDay, reportCaption, topRows, viewParams } from './report/build-report.js';
import { formatCsv, formatJson, formatTable } from './report/format-report.js';
import { queryView } from './report/query-view.js';
import { httpUrl } from '../lib/http-url.js';
import { httpUrlProblems } from '../lib/config/http-url.js';

export interface ReportCommandOptions {
  app: string;
  groupLevel?: number;
  format: 'table' | 'csv' | 'json';
  from?: string;
  to?: string;
  top?: number;
  url?: string;
}

export async function report(config: Config, view: string, o: ReportCommandOptions): Promise<string> {
  // Every argument is checked before the query: on a large database the view may take minutes to build.
  if (!isLogDb(dbName(o.app))) throw new UsageError(`--app must be an app name (lowercase letters, digits, _ and -, starting with a letter), got "${o.app}"`);
  if (o.url !== undefined) {
    // The ingress's root, as the config's own: the reader's credentials have variables of their own, and the value
    // is not repeated (it may hold a password). A path was dropped without a word, so it is refused too.
    const problems = httpUrlProblems(o.url, 'COUCHLOG_READER_USER / COUCHLOG_READER_PASSWORD', { rootOnly: true });
    if (problems.length > 0) throw new UsageError(`--url: ${problems.join('; ')}`);
  }
  const sets = reportSetsOf(config, o.app);
  // A view of another report set is still tried: CouchDB then says whether
  // the database or the view is missing, which is the more useful message.
  const found = findView(view, sets) ?? findView(view, REPORT_SET_NAMES);
  if (!found) throw new UsageError(`unknown view "${view}"; views: ${[...new Set(viewNames(REPORT_SET_NAMES))].join(', ')}`);
  const { ddoc, meta } = found;
  if ((o.from !== undefined || o.to !== undefined) && meta.dateAt < 0) throw new UsageError(`${view} has no date in its key: --from/--to do not apply`);
  const groupLevel = o.groupLevel ?? meta.keys.length;
  if (!Number.isInteger(groupLevel) || groupLevel < 0 || groupLevel > meta.keys.length) {
    throw new UsageError(`--group-level must be 0..${meta.keys.length} for ${view} (${meta.keys.join(', ')})`);
  }
  if (o.top !== undefined && (!Number.isInteger(o.top) || o.top < 1)) throw new UsageError(`--top must be a positive integer, got "${o.top}"`);
  if (o.from !== undefined) parseDay(o.from, '--from');
  if (o.to !== undefined) parseDay(o.to, '--to');
  if (o.from !== undefined && o.to !== undefined && o.from > o.to) throw new UsageError(`--from ${o.from} is after --to ${o.to}: no day can be in that range`);
  const options = { groupLevel, from: o.from, to: o.to, top: o.top };
  const rows = await queryView({
    baseUrl: o.url ?? httpUrl(config.ingress.host, config.ingress.port, { reachable: true }),
    db: dbName(o.app),
    ddoc,
    view,
    user: config.users.reader.user,
    password: requirePassword(config, 'reader'),
    params: viewParams(meta, options),
  });
  const all = groupReport(meta, rows, options);
  const result = topRows(all, options.top);
  const cols = { keys: meta.keys.slice(0, groupLevel), count: meta.reduced };
  if (o.format === 'csv') return formatCsv(result, cols);
  if (o.format === 'json') return formatJson(result, cols);
  // The same caption as the report page's.
  return formatTable(result, cols, reportCaption(meta, all, result, options));
}

/** The report sets of an app: from apps:, or `correlated` for the correlator's database. */
function reportSetsOf(config: Config, app: string): ReportSet[] {
  if (app === config.correlator.outputs.couchdb.app) return ['correlated'];
  return config.apps[app]?.reports ?? [];
}
