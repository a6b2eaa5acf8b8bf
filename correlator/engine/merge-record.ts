// The flat output record (seed 000): core fields first, then every other
// field of A and B at the root; a field both have with different values
// becomes a_<field> and b_<field>. This runs once per output on the hot
// path: plain for-in loops, no intermediate arrays.
import { isoTime } from './iso-time.js';
import type { InputEvent } from './types.js';

/** Fields the record computes itself; never copied from a source as they are. */
export const CORE: Readonly<Record<string, true>> = {
  timestamp: true,
  src_ip: true,
  src_port: true,
  dst_ip: true,
  dst_port: true,
  correlated: true,
  orphan_side: true,
  keepalives: true,
  a_timestamp: true,
  b_timestamp: true,
  conn_id: true,
  a_id: true,
  b_id: true,
};

/**
 * The names the sinks use for a record's bookkeeping: the record id (file
 * lines, ClickHouse), `deleted` (a deletion line or row), `revision`,
 * `decided_at` and `version`. A source field of that name would pass for
 * the bookkeeping (an HTTP log's request `id` replaced the record id in
 * the file sink; `deleted: true` hid a record in ClickHouse), so it is kept
 * as `orig_<name>` instead (and `a_orig_<name>`/`b_orig_<name>` when A and
 * B disagree).
 */
const RESERVED: Record<string, string> = {
  id: 'orig_id',
  deleted: 'orig_deleted',
  revision: 'orig_revision',
  decided_at: 'orig_decided_at',
  version: 'orig_version',
  a_rev: 'orig_a_rev',
  b_rev: 'orig_b_rev',
};

/** The name a source field has in the record; a source `orig_x` becomes `orig_orig_x`, so no two fields meet. */
const named = (f: string): string => RESERVED[f] ?? (f.startsWith('orig_') ? `orig_${f}` : f);

function same(x: unknown, y: unknown): boolean {
  if (x === y) return true;
  if (typeof x !== 'object' || typeof y !== 'object' || x === null || y === null) return false;
  return JSON.stringify(x) === JSON.stringify(y);
}

const field = (e: InputEvent | null, f: string): unknown => (e === null ? undefined : e.doc[f]);

function core(main: InputEvent, a: InputEvent | null, b: InputEvent | null, keepalives: number): Record<string, unknown> {
  const out: Record<string, unknown> = {
    timestamp: isoTime(main.time),
    src_ip: main.doc.src_ip,
    src_port: main.doc.src_port,
    // A's view of the connection first; B's when A does not say.
    dst_ip: field(a, 'dst_ip') ?? field(b, 'dst_ip') ?? null,
    dst_port: field(a, 'dst_port') ?? field(b, 'dst_port') ?? null,
    correlated: a !== null && b !== null,
    orphan_side: a && b ? '' : a ? 'A' : 'B',
    keepalives,
    a_timestamp: a ? a.time : null,
    b_timestamp: b ? b.time : null,
    conn_id: field(b, 'conn_id') ?? field(a, 'conn_id') ?? null,
    a_id: a ? a.id : null,
    b_id: b ? b.id : null,
  };
  // A source changed since it was first stored (an admin's edit): the record says which content it holds.
  if (a?.rev !== undefined) out.a_rev = a.rev;
  if (b?.rev !== undefined) out.b_rev = b.rev;
  return out;
}

export function correlatedRecord(a: InputEvent, b: InputEvent, keepalives: number): Record<string, unknown> {
  const out = core(a, a, b, keepalives);
  const ad = a.doc;
  const bd = b.doc;
  // B's view of the destination, when it differs from A's (e.g. 443 vs a backend port).
  for (const f of ['dst_ip', 'dst_port', 'conn_id']) {
    const av = ad[f];
    const bv = bd[f];
    if (av !== undefined && bv !== undefined && !same(av, bv)) {
      out[`a_${f}`] = av;
      out[`b_${f}`] = bv;
    }
  }
  for (const f in ad) {
    if (CORE[f] === true) continue;
    const av = ad[f];
    const bv = bd[f];
    const name = named(f);
    if (bv === undefined || same(av, bv)) out[name] = av;
    else {
      out[`a_${name}`] = av;
      out[`b_${name}`] = bv;
    }
  }
  for (const f in bd) {
    if (CORE[f] === true || f in ad) continue;
    out[named(f)] = bd[f];
  }
  return out;
}

export function orphanRecord(e: InputEvent): Record<string, unknown> {
  const out = e.side === 'A' ? core(e, e, null, 0) : core(e, null, e, 0);
  const d = e.doc;
  for (const f in d) if (CORE[f] !== true) out[named(f)] = d[f];
  return out;
}

/** Each A yields exactly one output, each unmatched B at most one: ids from the source ids only. */
export function outputId(e: InputEvent): string {
  return `${e.side}-${e.id}`;
}
