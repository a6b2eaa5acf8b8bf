// From a correlated record to a ClickHouse row: every column gets a value
// of its type (out-of-range numbers are clamped to 0, never wrapped, which
// 18.16 would do silently); the fields no column took go to `extra` as JSON.
import type { SinkRecord } from '../sinks/sink.js';
import { COLUMNS, type Column } from './columns.js';

/** `header_User-Agent` and `header_user_agent` name the same field. */
const norm = (name: string) => name.toLowerCase().replace(/-/g, '_');

const LIMITS: Partial<Record<Column['type'], [number, number]>> = {
  UInt8: [0, 255],
  UInt16: [0, 65_535],
  UInt32: [0, 4_294_967_295],
  UInt64: [0, Number.MAX_SAFE_INTEGER],
  Int32: [-2_147_483_648, 2_147_483_647],
};

function numeric(v: unknown, type: Column['type']): number {
  const n = typeof v === 'boolean' ? Number(v) : typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : 0;
  const [lo, hi] = LIMITS[type]!;
  return Number.isFinite(n) && n >= lo && n <= hi ? Math.trunc(n) : 0;
}

function text(v: unknown): string {
  if (v === null || v === undefined) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

export function toRow(rec: SinkRecord): Record<string, unknown> {
  const fields = new Map<string, [string, unknown]>();
  for (const [k, v] of Object.entries(rec.record)) fields.set(norm(k), [k, v]);
  fields.set('id', ['id', rec.id]);
  const used = new Set<string>();
  const row: Record<string, unknown> = {};
  for (const col of COLUMNS) {
    if (col.name === 'extra') continue;
    let value: unknown;
    for (const f of col.from) {
      const hit = fields.get(norm(f));
      if (hit !== undefined) {
        value = hit[1];
        used.add(hit[0]);
        break;
      }
    }
    row[col.name] = convert(col, value);
  }
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rec.record)) if (!used.has(k)) extra[k] = v;
  row.extra = JSON.stringify(extra);
  return row;
}

function convert(col: Column, value: unknown): unknown {
  switch (col.type) {
    case 'DateTime': {
      const ms = typeof value === 'string' ? Date.parse(value) : NaN;
      return Number.isNaN(ms) ? 0 : Math.floor(ms / 1000);
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
