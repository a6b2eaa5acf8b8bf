// The flat output record (seed 000): core fields first, then every other
// field of A and B at the root; a field both have with different values
// becomes a_<field> and b_<field>.
import type { InputEvent } from './types.js';

/** Fields the record computes itself; never copied from a source as they are. */
const CORE = new Set(['timestamp', 'src_ip', 'src_port', 'dst_ip', 'dst_port', 'correlated', 'orphan_side', 'keepalives', 'a_timestamp', 'b_timestamp', 'conn_id', 'a_id', 'b_id']);

function same(x: unknown, y: unknown): boolean {
  if (x === y) return true;
  if (typeof x !== 'object' || typeof y !== 'object' || x === null || y === null) return false;
  return JSON.stringify(x) === JSON.stringify(y);
}

function core(main: InputEvent, a: InputEvent | null, b: InputEvent | null, keepalives: number): Record<string, unknown> {
  return {
    timestamp: new Date(main.time).toISOString(),
    src_ip: main.doc.src_ip,
    src_port: main.doc.src_port,
    dst_ip: main.doc.dst_ip ?? null,
    dst_port: main.doc.dst_port ?? null,
    correlated: a !== null && b !== null,
    orphan_side: a && b ? '' : a ? 'A' : 'B',
    keepalives,
    a_timestamp: a ? a.time : null,
    b_timestamp: b ? b.time : null,
    conn_id: (b?.doc.conn_id ?? a?.doc.conn_id ?? null) as unknown,
    a_id: a ? a.id : null,
    b_id: b ? b.id : null,
  };
}

export function correlatedRecord(a: InputEvent, b: InputEvent, keepalives: number): Record<string, unknown> {
  const out = core(a, a, b, keepalives);
  // B's view of the destination, when it differs from A's (e.g. 443 vs a backend port).
  for (const f of ['dst_ip', 'dst_port', 'conn_id']) {
    const av = a.doc[f];
    const bv = b.doc[f];
    if (av !== undefined && bv !== undefined && !same(av, bv)) {
      out[`a_${f}`] = av;
      out[`b_${f}`] = bv;
    }
  }
  for (const [f, av] of Object.entries(a.doc)) {
    if (CORE.has(f)) continue;
    const bv = b.doc[f];
    if (bv === undefined || same(av, bv)) out[f] = av;
    else {
      out[`a_${f}`] = av;
      out[`b_${f}`] = bv;
    }
  }
  for (const [f, bv] of Object.entries(b.doc)) {
    if (CORE.has(f) || f in a.doc) continue;
    out[f] = bv;
  }
  return out;
}

export function orphanRecord(e: InputEvent): Record<string, unknown> {
  const out = e.side === 'A' ? core(e, e, null, 0) : core(e, null, e, 0);
  for (const [f, v] of Object.entries(e.doc)) if (!CORE.has(f)) out[f] = v;
  return out;
}

/** Each A yields exactly one output, each unmatched B at most one: ids from the source ids only. */
export function outputId(e: InputEvent): string {
  return `${e.side}-${e.id}`;
}
