// From a CouchDB change to an engine event, or the reason it is skipped.
// Pure: the feed adapter calls it for every change it reads.
import { connKeyOf } from './conn-key.js';
import type { IpFilter } from './ip-filter.js';
import type { InputEvent, Side } from './types.js';

export type SkipReason = 'deleted' | 'design_doc' | 'other_side' | 'no_key' | 'no_time' | 'excluded_ip' | 'port_not_included' | 'other_shard';

export interface NormalizeRules {
  exclude: IpFilter;
  includePorts: ReadonlySet<number>;
  /** For one shared database: only documents whose field equals the value belong to this side. */
  where: { field: string; equals: string | number | boolean } | null;
  /** Several correlators split the connections: this one takes keys whose hash % count === index. */
  shard?: { index: number; count: number };
}

/** FNV-1a, 32 bits: a stable hash of the connection key, the same in every instance and version. */
export function keyHash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export interface Change {
  id: string;
  deleted?: boolean;
  doc?: Record<string, unknown> | null;
}

/**
 * Epoch milliseconds from a number whose unit is guessed from its size: s,
 * ms, µs or ns. Finer units are floored to whole milliseconds (a JSON
 * number cannot even hold nanoseconds exactly); seconds keep their fraction.
 */
export function epochMs(n: number): number {
  const a = Math.abs(n);
  if (a < 1e11) return Math.round(n * 1e6) / 1e3;
  if (a < 1e14) return n;
  // Through whole microseconds first: a nanosecond count above 2^53 is not
  // exact in a double, and flooring its noise could lose a millisecond.
  if (a < 1e17) return Math.floor(Math.round(n) / 1e3);
  return Math.floor(Math.round(n / 1e3) / 1e3);
}

/**
 * Event time: `timestamp` (epoch number), else `time` (RFC 3339), else the
 * ingress's `received_at` — the time part of connKeyOf, which the lookup
 * view computes the same way inside CouchDB.
 */
export function eventTime(doc: Record<string, unknown>): number | null {
  const k = connKeyOf({ ...doc, src_ip: '0.0.0.0', src_port: 1 });
  return typeof k === 'string' ? null : k[2];
}

export function toPort(v: unknown): number | null {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,5}$/.test(v.trim()) ? Number(v) : NaN;
  return Number.isInteger(n) && n >= 1 && n <= 65535 ? n : null;
}

/** `ip:port` for IPv4, `[ip]:port` for IPv6. */
export function connectionKey(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

export function toEvent(change: Change, side: Side, index: number, rules: NormalizeRules): InputEvent | { skip: SkipReason } {
  if (change.deleted || !change.doc) return { skip: 'deleted' };
  if (change.id.startsWith('_design/')) return { skip: 'design_doc' };
  const doc = change.doc;
  if (rules.where && doc[rules.where.field] !== rules.where.equals) return { skip: 'other_side' };
  const k = connKeyOf(doc);
  if (typeof k === 'string') return { skip: k };
  const [ip, port, time] = k;
  const key = connectionKey(ip, port);
  if (rules.shard && rules.shard.count > 1 && keyHash(key) % rules.shard.count !== rules.shard.index) return { skip: 'other_shard' };
  if (rules.exclude.matches(ip)) return { skip: 'excluded_ip' };
  if (rules.includePorts.size > 0) {
    const dst = toPort(doc.dst_port);
    if (dst === null || !rules.includePorts.has(dst)) return { skip: 'port_not_included' };
  }
  const fields = withoutSpecialFields(doc);
  // Assigned, not spread: an existing key keeps its place, as with a spread.
  fields.src_ip = ip;
  fields.src_port = port;
  const ev: InputEvent = { side, index, id: change.id, key, time, doc: fields };
  const rev = doc._rev;
  if (typeof rev === 'string' && !rev.startsWith('1-')) ev.rev = rev;
  return ev;
}

/** CouchDB's own fields (_id, _rev, _conflicts...) are not log data. */
function withoutSpecialFields(doc: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k in doc) if (k.charCodeAt(0) !== 95 /* _ */) out[k] = doc[k];
  return out;
}
