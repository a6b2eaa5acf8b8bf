// Which design documents each log database gets:
//  - every log_<app>: _design/couchlog (append-only validation) and
//    _design/logs (by_time + csv/html lists);
//  - the report sets an app lists in the config (apps.<app>.reports), e.g.
//    `fail2ban` -> _design/report with attacks / attackers views;
//  - log_correlated: the `correlated` set (the correlator's output).
import type { ReportSet } from '../lib/config/report-sets.js';
import './couchdb-env.js';
import { appendOnly, correlatorOnly } from './append-only.js';
import { byTimeMap } from './by-time.js';
import { attackersByIpMap, attackersMap, attacksMap, bansByDayMap } from './fail2ban-report.js';
import { byJa4Map, clientsByJa4Map, orphansMap, requestsByHostMap } from './correlated-report.js';
import { csvList, htmlList } from './lists.js';
import { reportLib } from './report-lib.js';
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
  /** Index of `year` in the key (month and day follow it); -1: the key has no date. */
  dateAt: number;
  /** What one row is, for captions: [singular, plural] ("attacker", "attackers"). */
  noun: [string, string];
  /** What the count counts, for captions: [singular, plural] ("ban", "bans"). */
  unit: [string, string];
}

const LOGS_VIEWS: Record<string, ViewMeta> = {
  by_time: { keys: ['year', 'month', 'day', 'hour'], reduced: 'documents', mapped: 'value', dateAt: 0, noun: ['period', 'periods'], unit: ['document', 'documents'] },
};

const FAIL2BAN_VIEWS: Record<string, ViewMeta> = {
  attacks: { keys: ['machine', 'year', 'month', 'day'], reduced: 'attacks', mapped: 'value', dateAt: 1, noun: ['row', 'rows'], unit: ['ban', 'bans'] },
  attackers: { keys: ['machine', 'year', 'month', 'day', 'ip'], reduced: 'attacks', mapped: 'process', dateAt: 1, noun: ['attacker', 'attackers'], unit: ['ban', 'bans'] },
  attackers_by_ip: { keys: ['machine', 'ip', 'year', 'month', 'day'], reduced: 'attacks', mapped: 'value', dateAt: 2, noun: ['attacker', 'attackers'], unit: ['ban', 'bans'] },
  bans_by_day: { keys: ['year', 'month', 'day', 'machine', 'ip'], reduced: 'attacks', mapped: 'process', dateAt: 0, noun: ['attacker', 'attackers'], unit: ['ban', 'bans'] },
};

const CORRELATED_VIEWS: Record<string, ViewMeta> = {
  attacks: { keys: ['host', 'year', 'month', 'day'], reduced: 'requests', mapped: 'value', dateAt: 1, noun: ['row', 'rows'], unit: ['request', 'requests'] },
  attackers: { keys: ['src_ip', 'ja4'], reduced: 'requests', mapped: 'value', dateAt: -1, noun: ['client', 'clients'], unit: ['request', 'requests'] },
  by_ja4: { keys: ['ja4', 'year', 'month', 'day'], reduced: 'requests', mapped: 'value', dateAt: 1, noun: ['fingerprint', 'fingerprints'], unit: ['request', 'requests'] },
  orphans: { keys: ['orphan_side', 'year', 'month', 'day'], reduced: 'records', mapped: 'value', dateAt: 1, noun: ['row', 'rows'], unit: ['record', 'records'] },
};

export const VALIDATE_DDOC_ID = '_design/couchlog';
export const LOGS_DDOC_ID = '_design/logs';
export const REPORT_DDOC_ID = '_design/report';

export function validateDesignDoc(): DesignDoc {
  return { _id: VALIDATE_DDOC_ID, language: 'javascript', validate_doc_update: fnSource(appendOnly) };
}

/** log_correlated: only the correlator writes, and it may correct its records. */
export function correlatedValidateDoc(): DesignDoc {
  return { _id: VALIDATE_DDOC_ID, language: 'javascript', validate_doc_update: fnSource(correlatorOnly) };
}

function lists(meta: Record<string, ViewMeta>): Record<string, string> {
  const json = JSON.stringify(meta);
  const lib = `(${fnSource(reportLib)})`;
  // Function replacers: the sources hold `$`, which a replacement string would interpret.
  const fill = (src: string) => src.replace('__VIEW_META__', () => json).replace('__REPORT_LIB__', () => lib);
  return { csv: fill(fnSource(csvList)), html: fill(fnSource(htmlList)) };
}

type MapFn = (doc: never) => void;

function viewDoc(id: string, maps: Record<string, MapFn>, meta: Record<string, ViewMeta>): DesignDoc {
  const views = Object.fromEntries(Object.entries(maps).map(([name, map]) => [name, { map: fnSource(map), reduce: '_count' }]));
  return { _id: id, language: 'javascript', views, lists: lists(meta) };
}

export function logsDesignDoc(): DesignDoc {
  return viewDoc(LOGS_DDOC_ID, { by_time: byTimeMap }, LOGS_VIEWS);
}

export function fail2banReportDoc(): DesignDoc {
  return viewDoc(
    REPORT_DDOC_ID,
    { attacks: attacksMap, attackers: attackersMap, attackers_by_ip: attackersByIpMap, bans_by_day: bansByDayMap },
    FAIL2BAN_VIEWS,
  );
}

export function correlatedReportDoc(): DesignDoc {
  return viewDoc(REPORT_DDOC_ID, { attacks: requestsByHostMap, attackers: clientsByJa4Map, by_ja4: byJa4Map, orphans: orphansMap }, CORRELATED_VIEWS);
}

/** Report sets an app may ask for in the config. */
export const REPORT_SETS: Record<ReportSet, () => DesignDoc> = {
  fail2ban: fail2banReportDoc,
  correlated: correlatedReportDoc,
};

/** Views of _design/logs and of each report set's _design/report. */
export const VIEWS_BY_SET: Record<'logs' | ReportSet, Record<string, ViewMeta>> = {
  logs: LOGS_VIEWS,
  fail2ban: FAIL2BAN_VIEWS,
  correlated: CORRELATED_VIEWS,
};

/** Every view name with its metadata, whatever its design document (for tests and docs). */
export const VIEW_META: Record<string, ViewMeta> = { ...LOGS_VIEWS, ...FAIL2BAN_VIEWS, ...CORRELATED_VIEWS };

export { REPORT_SET_NAMES, type ReportSet } from '../lib/config/report-sets.js';

/**
 * Every design document a log database must hold. `validate` protection
 * adds the validate_doc_update; `audit` leaves it out (setup removes one
 * left from before: see setup/ensure-app-db.ts).
 */
export function designDocsForApp(reports: readonly ReportSet[] = [], protection: 'validate' | 'audit' = 'validate'): DesignDoc[] {
  const validate = reports.includes('correlated') ? correlatedValidateDoc() : validateDesignDoc();
  return [...(protection === 'validate' ? [validate] : []), logsDesignDoc(), ...reports.map((r) => REPORT_SETS[r]())];
}

/** The design document and metadata of a view, among _design/logs and the given report sets. */
export function findView(view: string, sets: readonly ReportSet[]): { ddoc: string; meta: ViewMeta } | null {
  if (LOGS_VIEWS[view]) return { ddoc: 'logs', meta: LOGS_VIEWS[view]! };
  for (const set of sets) {
    const meta = VIEWS_BY_SET[set][view];
    if (meta) return { ddoc: 'report', meta };
  }
  return null;
}

/** View names available to an app with these report sets. */
export function viewNames(sets: readonly ReportSet[]): string[] {
  return [...Object.keys(LOGS_VIEWS), ...sets.flatMap((s) => Object.keys(VIEWS_BY_SET[s]))];
}
