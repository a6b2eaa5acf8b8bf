// Which design documents each log database gets:
//  - every log_<app>: _design/couchlog (append-only validation) and
//    _design/logs (by_time + csv/html lists);
//  - the report sets an app lists in the config (apps.<app>.reports), e.g.
//    `fail2ban` -> _design/report with attacks / attackers views.
import './couchdb-env.js';
import { appendOnly } from './append-only.js';
import { byTimeMap } from './by-time.js';
import { attackersByIpMap, attackersMap, attacksMap } from './fail2ban-report.js';
import { csvList, htmlList } from './lists.js';
import { fnSource, type DesignDoc } from './serialize.js';

export { sameDesignDoc, type DesignDoc } from './serialize.js';
export { EXISTS_REASON_PREFIX } from './append-only.js';

/** What a view's rows mean: names of the key parts, of the reduced and mapped values, and where the date is. */
export interface ViewMeta {
  keys: string[];
  /** Name of the value column when reduced (a count). */
  reduced: string;
  /** Name of the value column with reduce=false. */
  mapped: string;
  /** Index of `year` in the key (month and day follow it). */
  dateAt: number;
}

export const VIEW_META: Record<string, ViewMeta> = {
  by_time: { keys: ['year', 'month', 'day', 'hour'], reduced: 'documents', mapped: 'value', dateAt: 0 },
  attacks: { keys: ['machine', 'year', 'month', 'day'], reduced: 'attacks', mapped: 'value', dateAt: 1 },
  attackers: { keys: ['machine', 'year', 'month', 'day', 'ip'], reduced: 'attacks', mapped: 'process', dateAt: 1 },
  attackers_by_ip: { keys: ['machine', 'ip', 'year', 'month', 'day'], reduced: 'attacks', mapped: 'value', dateAt: 2 },
};

export const VALIDATE_DDOC_ID = '_design/couchlog';
export const LOGS_DDOC_ID = '_design/logs';
export const REPORT_DDOC_ID = '_design/report';

export function validateDesignDoc(): DesignDoc {
  return { _id: VALIDATE_DDOC_ID, language: 'javascript', validate_doc_update: fnSource(appendOnly) };
}

function lists(views: string[]): Record<string, string> {
  const meta = JSON.stringify(Object.fromEntries(views.map((v) => [v, VIEW_META[v]!])));
  return {
    csv: fnSource(csvList).replace('__VIEW_META__', meta),
    html: fnSource(htmlList).replace('__VIEW_META__', meta),
  };
}

function viewDoc(id: string, maps: Record<string, (doc: never) => void>): DesignDoc {
  const views = Object.fromEntries(Object.entries(maps).map(([name, map]) => [name, { map: fnSource(map), reduce: '_count' }]));
  return { _id: id, language: 'javascript', views, lists: lists(Object.keys(maps)) };
}

export function logsDesignDoc(): DesignDoc {
  return viewDoc(LOGS_DDOC_ID, { by_time: byTimeMap });
}

export function fail2banReportDoc(): DesignDoc {
  return viewDoc(REPORT_DDOC_ID, { attacks: attacksMap, attackers: attackersMap, attackers_by_ip: attackersByIpMap });
}

/** Report sets an app may ask for in the config. */
export const REPORT_SETS = {
  fail2ban: fail2banReportDoc,
} as const;

export type ReportSet = keyof typeof REPORT_SETS;
export const REPORT_SET_NAMES = Object.keys(REPORT_SETS) as [ReportSet, ...ReportSet[]];

/** Every design document a log database must hold. */
export function designDocsForApp(reports: readonly ReportSet[] = []): DesignDoc[] {
  return [validateDesignDoc(), logsDesignDoc(), ...reports.map((r) => REPORT_SETS[r]())];
}

/** The design document and view metadata behind a view name, for clients like `couchlog report`. */
export function findView(view: string): { ddoc: string; meta: ViewMeta } | null {
  const meta = VIEW_META[view];
  if (!meta) return null;
  return { ddoc: view === 'by_time' ? 'logs' : 'report', meta };
}
