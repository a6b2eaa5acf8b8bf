// From a correlated record to a ClickHouse row: every column gets a value
// of its type (out-of-range numbers are clamped to 0, never wrapped, which
// 18.16 would do silently); the fields no column took go to `extra` as JSON.
//
// Which field feeds which column: a column takes the first of its `from`
// names the record has, names compared case- and dash-insensitively; when
// two record fields have the same such name, the later one counts. The
// record id always fills `id`, the output's kind `deleted`. This runs once per record on the hot path,
// so what depends only on field names is worked out once per name.
import type { SinkRecord } from '../sink.js';
import { COLUMNS, type Column } from './columns.js';
import { CORE } from '../../engine/merge-record.js';
import { toWellFormed } from '../../../lib/unicode.js';

/** `header_User-Agent` and `header_user_agent` name the same field. */
const norm = (name: string) => name.toLowerCase().replace(/-/g, '_');

const LIMITS: Partial<Record<Column['type'], [number, number]>> = {
  UInt8: [0, 255],
  UInt16: [0, 65_535],
  UInt32: [0, 4_294_967_295],
  UInt64: [0, Number.MAX_SAFE_INTEGER],
  Int32: [-2_147_483_648, 2_147_483_647],
};

/** A column a field name can feed, and how early that name is in its `from`. */
interface Feed {
  col: number;
  rank: number;
}

const VALUE_COLUMNS = COLUMNS.filter((c) => c.name !== 'extra');
const ID_COLUMN = VALUE_COLUMNS.findIndex((c) => c.name === 'id');
const VERSION_COLUMN = VALUE_COLUMNS.findIndex((c) => c.name === 'version');
const DELETED_COLUMN = VALUE_COLUMNS.findIndex((c) => c.name === 'deleted');
const TIME_COLUMN = VALUE_COLUMNS.findIndex((c) => c.name === 'time');

/** Normalized field name -> the columns it can feed. */
const FEEDS = new Map<string, Feed[]>();
VALUE_COLUMNS.forEach((c, col) =>
  c.from.forEach((f, rank) => {
    const n = norm(f);
    const list = FEEDS.get(n) ?? [];
    list.push({ col, rank });
    FEEDS.set(n, list);
  }),
);

/**
 * The record's own fields (merge-record.ts writes them, spelled exactly so)
 * and its bookkeeping: only that exact spelling feeds their columns. A
 * source field `Correlated` or `A_ID` (the same name case- and
 * dash-insensitively, and later in the record) overwrote them: an orphan
 * became correlated = 1, and a `Timestamp` moved the row's (time, id) key
 * so later corrections no longer replaced it (found by a code review).
 */
export const EXACT_FIELDS: ReadonlySet<string> = new Set([...Object.keys(CORE), 'revision', 'decided_at', 'deleted']);

const NONE: readonly Feed[] = [];
/** Field name as written -> its feeds. Logs use few distinct names; bounded anyway. */
const byName = new Map<string, readonly Feed[]>();
const BY_NAME_MAX = 10_000;

function feedsOf(name: string): readonly Feed[] {
  let feeds = byName.get(name);
  if (feeds === undefined) {
    const n = norm(name);
    feeds = EXACT_FIELDS.has(n) && n !== name ? NONE : (FEEDS.get(n) ?? NONE);
    if (byName.size >= BY_NAME_MAX) byName.clear();
    byName.set(name, feeds);
  }
  return feeds;
}

function numeric(v: unknown, type: Column['type']): number {
  const n = typeof v === 'boolean' ? Number(v) : typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : 0;
  const [lo, hi] = LIMITS[type]!;
  return Number.isFinite(n) && n >= lo && n <= hi ? Math.trunc(n) : 0;
}

/** A String column's value: ClickHouse refuses a lone surrogate (code 25, the whole INSERT), so it becomes U+FFFD. */
function text(v: unknown): string {
  if (v === null || v === undefined) return '';
  return toWellFormed(typeof v === 'string' ? v : JSON.stringify(v));
}

/** Per value column, the record field that feeds it (undefined: none) and that field's value. */
interface Picked {
  key: Array<string | undefined>;
  value: unknown[];
}

function pick(rec: SinkRecord): Picked {
  const n = VALUE_COLUMNS.length;
  // Per column: the rank of the name that fed it (Infinity: none yet), the field and its value.
  const rank = new Array<number>(n).fill(Infinity);
  const key = new Array<string | undefined>(n);
  const value = new Array<unknown>(n);
  const record = rec.record;
  for (const k in record) {
    for (const f of feedsOf(k)) {
      // <=: of two fields with the same normalized name, the later one counts.
      if (f.rank <= rank[f.col]!) {
        rank[f.col] = f.rank;
        key[f.col] = k;
        value[f.col] = record[k];
      }
    }
  }
  // The bookkeeping columns follow the output, never a field: a record
  // holding `deleted: 1` of its own must not vanish from `deleted = 0` queries.
  key[ID_COLUMN] = 'id';
  value[ID_COLUMN] = rec.id;
  value[VERSION_COLUMN] = rec.version;
  value[DELETED_COLUMN] = rec.deleted ? 1 : 0;
  return { key, value };
}

/** The fields no column took, as the JSON text of `extra`. */
function extraOf(record: Record<string, unknown>, key: ReadonlyArray<string | undefined>): string {
  const used = new Set(key);
  // No prototype: a document field named `__proto__` is kept as a field, not taken for the prototype (and lost).
  const extra: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const k in record) if (!used.has(k)) extra[k] = record[k];
  return JSON.stringify(extra);
}

export function toRow(rec: SinkRecord): Record<string, unknown> {
  const { key, value } = pick(rec);
  const row: Record<string, unknown> = {};
  for (let i = 0; i < VALUE_COLUMNS.length; i++) row[VALUE_COLUMNS[i]!.name] = convert(VALUE_COLUMNS[i]!, value[i]);
  row.extra = extraOf(rec.record, key);
  return row;
}

/**
 * An epoch-ms time as a DateTime column stores it: whole seconds, within
 * its range (1970 to 2106). Clamped here, not by the server: 18.16 wraps a
 * value out of range where later versions clamp, and a row's key must be
 * what rowTime says it is.
 */
export function dateTimeSeconds(ms: number): number {
  return Math.min(DATETIME_MAX, Math.max(0, Math.floor(ms / 1000)));
}
const DATETIME_MAX = 4_294_967_295;

/** The row's `time` (epoch seconds): with `id`, the key its row is stored (and replaced) under. */
export function rowTime(rec: SinkRecord): number {
  return convert(VALUE_COLUMNS[TIME_COLUMN]!, pick(rec).value[TIME_COLUMN]) as number;
}

/** `{"id":`, `,"time":`, ...: each value column's name as JSON, the first one opening the object. */
const PREFIXES = VALUE_COLUMNS.map((c, i) => `${i === 0 ? '{' : ','}${JSON.stringify(c.name)}:`);
const EXTRA_PREFIX = `,${JSON.stringify('extra')}:`;

/**
 * The row as one JSONEachRow line: exactly `JSON.stringify(toRow(rec)) + "\n"`
 * (tested), written straight from the values. The sink sends a batch as
 * one text: building and stringifying an object of 50-odd keys per record
 * cost the correlator as much CPU as deciding the record.
 */
export function toJsonLine(rec: SinkRecord): string {
  const { key, value } = pick(rec);
  let line = '';
  for (let i = 0; i < VALUE_COLUMNS.length; i++) line += PREFIXES[i]! + JSON.stringify(convert(VALUE_COLUMNS[i]!, value[i]));
  return `${line}${EXTRA_PREFIX}${JSON.stringify(extraOf(rec.record, key))}}\n`;
}

function convert(col: Column, value: unknown): unknown {
  switch (col.type) {
    case 'DateTime': {
      const ms = typeof value === 'string' ? Date.parse(value) : NaN;
      return Number.isNaN(ms) ? 0 : dateTimeSeconds(ms);
    }
    case 'Date': {
      const ms = typeof value === 'string' ? Date.parse(value) : NaN;
      return Number.isNaN(ms) ? '1970-01-01' : new Date(ms).toISOString().slice(0, 10);
    }
    case 'String':
    case 'LowString':
      return text(value);
    default:
      return numeric(value, col.type);
  }
}
