// The flat output record (seed 000): core fields first, then every other
// field of A and B at the root; a field both have with different values
// becomes a_<field> and b_<field>. This runs once per output on the hot
// path: plain for-in loops, no intermediate arrays, and the records come out
// of record-builder.ts in V8's fast layout.
import { isoTime } from './iso-time.js';
import { RecordBuilder } from './record-builder.js';
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
const RESERVED: ReadonlyMap<string, string> = new Map(
  Object.entries({
    id: 'orig_id',
    deleted: 'orig_deleted',
    revision: 'orig_revision',
    decided_at: 'orig_decided_at',
    version: 'orig_version',
    a_rev: 'orig_a_rev',
    b_rev: 'orig_b_rev',
  }),
);

/**
 * The name a source field has in the record; a source `orig_x` becomes `orig_orig_x`, so no two fields meet.
 * A Map, not an object: a field named `constructor` or `__proto__` found Object.prototype's members there
 * and became a field named after a function's source text, or was lost.
 */
const named = (f: string): string => RESERVED.get(f) ?? (f.startsWith('orig_') ? `orig_${f}` : f);

function same(x: unknown, y: unknown): boolean {
  if (x === y) return true;
  if (typeof x !== 'object' || typeof y !== 'object' || x === null || y === null) return false;
  return JSON.stringify(x) === JSON.stringify(y);
}

const hasOwn = (o: object, f: string): boolean => Object.prototype.hasOwnProperty.call(o, f);

const field = (e: InputEvent | null, f: string): unknown => (e === null ? undefined : e.doc[f]);

/** One for the engine: records are built synchronously, one at a time. */
const builder = new RecordBuilder();

function core(main: InputEvent, a: InputEvent | null, b: InputEvent | null, keepalives: number): void {
  builder.begin();
  builder.add('timestamp', isoTime(main.time));
  builder.add('src_ip', main.doc.src_ip);
  builder.add('src_port', main.doc.src_port);
  // A's view of the connection first; B's when A does not say.
  builder.add('dst_ip', field(a, 'dst_ip') ?? field(b, 'dst_ip') ?? null);
  builder.add('dst_port', field(a, 'dst_port') ?? field(b, 'dst_port') ?? null);
  builder.add('correlated', a !== null && b !== null);
  builder.add('orphan_side', a && b ? '' : a ? 'A' : 'B');
  builder.add('keepalives', keepalives);
  builder.add('a_timestamp', a ? a.time : null);
  builder.add('b_timestamp', b ? b.time : null);
  builder.add('conn_id', field(b, 'conn_id') ?? field(a, 'conn_id') ?? null);
  builder.add('a_id', a ? a.id : null);
  builder.add('b_id', b ? b.id : null);
  // A source changed since it was first stored (an admin's edit): the record says which content it holds.
  if (a?.rev !== undefined) builder.add('a_rev', a.rev);
  if (b?.rev !== undefined) builder.add('b_rev', b.rev);
}

export function correlatedRecord(a: InputEvent, b: InputEvent, keepalives: number): Record<string, unknown> {
  core(a, a, b, keepalives);
  const ad = a.doc;
  const bd = b.doc;
  // B's view of the destination, when it differs from A's (e.g. 443 vs a backend port).
  for (const f of ['dst_ip', 'dst_port', 'conn_id']) {
    const av = ad[f];
    const bv = bd[f];
    if (av !== undefined && bv !== undefined && !same(av, bv)) {
      builder.add(`a_${f}`, av);
      builder.add(`b_${f}`, bv);
    }
  }
  for (const f in ad) {
    if (CORE[f] === true) continue;
    const av = ad[f];
    // Own fields only: B without a field named `constructor` must not answer Object's.
    const bv = hasOwn(bd, f) ? bd[f] : undefined;
    const name = named(f);
    if (bv === undefined || same(av, bv)) builder.add(name, av);
    else {
      builder.add(`a_${name}`, av);
      builder.add(`b_${name}`, bv);
    }
  }
  for (const f in bd) {
    if (CORE[f] === true || hasOwn(ad, f)) continue;
    builder.add(named(f), bd[f]);
  }
  return builder.finish();
}

export function orphanRecord(e: InputEvent): Record<string, unknown> {
  if (e.side === 'A') core(e, e, null, 0);
  else core(e, null, e, 0);
  const d = e.doc;
  for (const f in d) if (CORE[f] !== true) builder.add(named(f), d[f]);
  return builder.finish();
}

/** Each A yields exactly one output, each unmatched B at most one: ids from the source ids only. */
export function outputId(e: InputEvent): string {
  return `${e.side}-${e.id}`;
}
