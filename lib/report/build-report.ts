// Turns view rows into report rows: date bounds, grouping, top N. With a
// date bound the view is read at full grouping (so each row has its date),
// filtered, then summed back up to the requested group level — exact for
// `_count` views, whatever the level.
import type { ViewMeta } from '../../design-docs/index.js';
import { CommandError } from '../errors.js';
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
}

/** [year, month, day] of a YYYY-MM-DD bound, checked to be a real date. */
export function parseDay(text: string, flag: string): [number, number, number] {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  const ymd = m ? ([Number(m[1]), Number(m[2]), Number(m[3])] as [number, number, number]) : null;
  if (!ymd || ymd[1] < 1 || ymd[1] > 12 || ymd[2] < 1 || ymd[2] > new Date(Date.UTC(ymd[0], ymd[1], 0)).getUTCDate()) {
    throw new CommandError(`${flag} must be a date as YYYY-MM-DD, got "${text}"`, 2);
  }
  return ymd;
}

const dayNumber = ([y, m, d]: number[]) => y! * 10_000 + m! * 100 + d!;

/** The view query parameters for these options. */
export function viewParams(meta: ViewMeta, o: ReportOptions): Record<string, string> {
  const dated = o.from !== undefined || o.to !== undefined;
  return { reduce: 'true', group_level: String(dated ? meta.keys.length : o.groupLevel) };
}

export function buildReport(meta: ViewMeta, rows: ViewRowData[], o: ReportOptions): ReportRow[] {
  const from = o.from === undefined ? -Infinity : dayNumber(parseDay(o.from, '--from'));
  const to = o.to === undefined ? Infinity : dayNumber(parseDay(o.to, '--to'));
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
    else groups.set(id, { key, count });
  }
  let out = [...groups.values()];
  if (o.top !== undefined) out = out.sort((a, b) => b.count - a.count).slice(0, o.top);
  return out;
}
