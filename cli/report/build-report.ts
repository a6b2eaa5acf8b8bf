// Turns view rows into report rows: date bounds, grouping, top N. With a
// date bound the view is read at full grouping (so each row has its date),
// filtered, then summed back up to the requested group level — exact for
// `_count` views, whatever the level.
import type { ViewMeta } from '../../design-docs/index.js';
import { reportLib } from '../../design-docs/report-lib.js';
import { UsageError } from '../../lib/errors.js';
import type { ViewRowData } from './query-view.js';

export interface ReportOptions {
  groupLevel: number;
  from?: string;
  to?: string;
  top?: number;
}

export interface ReportRow {
  key: unknown[];
  count: number;
  /** ISO date of the row when its key holds a whole date. */
  day?: string;
}

/** [year, month, day] of a YYYY-MM-DD bound, checked to be a real date. */
export function parseDay(text: string, flag: string): [number, number, number] {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  const ymd = m ? ([Number(m[1]), Number(m[2]), Number(m[3])] as [number, number, number]) : null;
  if (!ymd || ymd[1] < 1 || ymd[1] > 12 || ymd[2] < 1 || ymd[2] > new Date(Date.UTC(ymd[0], ymd[1], 0)).getUTCDate()) {
    throw new UsageError(`${flag} must be a date as YYYY-MM-DD, got "${text}"`);
  }
  return ymd;
}

const dayNumber = ([y, m, d]: number[]) => y! * 10_000 + m! * 100 + d!;

/** The view query parameters for these options. */
export function viewParams(meta: ViewMeta, o: ReportOptions): Record<string, string> {
  const dated = o.from !== undefined || o.to !== undefined;
  return { reduce: 'true', group_level: String(dated ? meta.keys.length : o.groupLevel) };
}

const lib = reportLib();

/** What the rows are, as the report pages say it: "top 10 of 127 attackers, 292 bans, 2026-02-26 – 2026-03-03". */
export function reportCaption(meta: ViewMeta, all: ReportRow[], shown: ReportRow[], o: ReportOptions): string {
  const total = all.reduce((s, r) => s + r.count, 0);
  let range: string | null = null;
  if (meta.dateAt >= 0 && (o.groupLevel >= meta.dateAt + 3 || o.from !== undefined || o.to !== undefined)) {
    const days = all
      .map((r) => r.day)
      .filter((d): d is string => d !== undefined)
      .sort();
    const lo = o.from ?? days[0] ?? null;
    const hi = o.to ?? days.at(-1) ?? null;
    if (lo !== null || hi !== null) range = lo === hi ? lo : `${lo ?? '…'} – ${hi ?? '…'}`;
  }
  if (o.groupLevel === 0) return `${total} ${total === 1 ? meta.unit[0] : meta.unit[1]}${range ? `, ${range}` : ''}`;
  return lib.caption({ shown: shown.length, rows: all.length, total, top: o.top ?? null, noun: meta.noun, unit: meta.unit, range });
}

/** Every report row (date bounds, grouping), in key order with IPs sorted as addresses. */
export function groupReport(meta: ViewMeta, rows: ViewRowData[], o: ReportOptions): ReportRow[] {
  const from = o.from === undefined ? -Infinity : dayNumber(parseDay(o.from, '--from'));
  const to = o.to === undefined ? Infinity : dayNumber(parseDay(o.to, '--to'));
  if (from > to) throw new UsageError(`--from ${o.from} is after --to ${o.to}: no day can be in that range`);
  const groups = new Map<string, ReportRow>();
  for (const row of rows) {
    if (from !== -Infinity || to !== Infinity) {
      const ymd = row.key.slice(meta.dateAt, meta.dateAt + 3);
      if (ymd.length < 3 || ymd.some((x) => typeof x !== 'number')) continue;
      const day = dayNumber(ymd as number[]);
      if (day < from || day > to) continue;
    }
    const key = row.key.slice(0, o.groupLevel);
    const id = JSON.stringify(key);
    const count = typeof row.value === 'number' ? row.value : 0;
    const g = groups.get(id);
    if (g) g.count += count;
    else {
      const ymd = meta.dateAt >= 0 ? key.slice(meta.dateAt, meta.dateAt + 3) : [];
      const day = ymd.length === 3 ? lib.isoDate(ymd) : null;
      groups.set(id, day ? { key, count, day } : { key, count });
    }
  }
  return [...groups.values()].sort((a, b) => lib.compareKeys(a.key, b.key));
}

/** The `top` rows: highest counts first (ties in key order). */
export function topRows(rows: ReportRow[], top: number | undefined): ReportRow[] {
  if (top === undefined) return rows;
  return [...rows].sort((a, b) => b.count - a.count || lib.compareKeys(a.key, b.key)).slice(0, top);
}

export function buildReport(meta: ViewMeta, rows: ViewRowData[], o: ReportOptions): ReportRow[] {
  return topRows(groupReport(meta, rows, o), o.top);
}
