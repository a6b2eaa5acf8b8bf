// Reassembles Linux audit records into events. The kernel splits one event
// (one `audit(<time>:<serial>)`) over several records (SYSCALL, CWD, PATH,
// PROCTITLE, ...) closed by an EOE record, and records of different events
// arrive interleaved. What must stay true:
// - records of different events are never mixed: the event key is the
//   whole `<time>:<serial>`;
// - an event is emitted at its EOE; a user-space message (USER_*, CRED_*,
//   SERVICE_*, ...), always a single record without EOE, at once; any other
//   event whose EOE never comes once the stream has moved `timeoutS` past
//   its last record (stream time, so replaying an old file behaves like the
//   live stream), when idleExpire() finds it idle that long on the wall
//   clock, or at flush(); those are marked complete: false;
// - events leave in serial order: a finished event waits while an earlier
//   serial is still open (the seed's "delayed deletion for order");
// - at most maxOpen events are held; beyond that the oldest is emitted incomplete.
import type { AuditRecord } from './auditd-record.js';

export interface AuditEvent<M> {
  time: string;
  serial: number;
  node: string | null;
  /** True when closed by EOE or a single-record user-space message. */
  complete: boolean;
  /** Record fields grouped by record type, in arrival order. */
  records: Record<string, Array<Record<string, unknown>>>;
  /** Whatever the caller attached to each record (line numbers, offsets). */
  meta: M[];
}

export interface ReassemblerOptions<M> {
  timeoutS: number;
  maxOpen: number;
  emit: (event: AuditEvent<M>) => void;
  /** Wall clock in ms (tests pass their own). */
  now?: () => number;
}

interface Open<M> {
  event: AuditEvent<M>;
  lastTime: number;
  lastArrivalMs: number;
}

/**
 * Messages sent from user space with audit_log_user_message(): one record,
 * no EOE (types 1100-1299 and 2100-2999 in linux/audit.h).
 */
const SINGLE_RECORD =
  /^(USER_|CRED_|DAEMON_|ANOM_|SERVICE_|SYSTEM_|ACCT_|ROLE_|GRP_|CHGRP_ID$|CHUSER_ID$|ADD_|DEL_|TRUSTED_APP$|USYS_CONFIG$|LABEL_|SOFTWARE_UPDATE$|TEST$|MAC_CHECK$|CRYPTO_)/;

export class AuditReassembler<M> {
  private readonly open = new Map<string, Open<M>>();
  /** Finished events waiting for an earlier serial, sorted by serial. */
  private readonly held: Array<AuditEvent<M>> = [];
  private latestTime = 0;
  private readonly now: () => number;

  constructor(private readonly o: ReassemblerOptions<M>) {
    this.now = o.now ?? Date.now;
  }

  get openCount(): number {
    return this.open.size;
  }

  push(rec: AuditRecord, meta: M): void {
    const key = `${rec.time}:${rec.serial}`;
    const t = Number(rec.time);
    if (t > this.latestTime) this.latestTime = t;
    let entry = this.open.get(key);
    if (rec.type === 'EOE') {
      if (entry) {
        entry.event.meta.push(meta);
        this.finish(key, entry, true);
      } else {
        // An EOE whose records were emitted already (timed out) or never came:
        // an empty event that still accounts for the line.
        this.finishNew(rec, meta);
      }
      this.expireByStreamTime();
      return;
    }
    if (!entry) {
      entry = { event: newEvent(rec), lastTime: t, lastArrivalMs: this.now() };
      this.open.set(key, entry);
      if (this.open.size > this.o.maxOpen) this.evictOldest();
    }
    addRecord(entry.event, rec);
    entry.event.meta.push(meta);
    entry.lastTime = t;
    entry.lastArrivalMs = this.now();
    if (SINGLE_RECORD.test(rec.type) && entry.event.meta.length === 1) this.finish(key, entry, true);
    this.expireByStreamTime();
  }

  /** Emits events that have waited timeoutS on the wall clock (a live stream gone quiet). */
  idleExpire(): void {
    const limit = this.now() - this.o.timeoutS * 1000;
    for (const [key, entry] of [...this.open]) {
      if (entry.lastArrivalMs <= limit) this.finish(key, entry, false);
    }
  }

  /**
   * Emits events whose last record is older than timeoutS on the wall clock
   * (what a shipper does at the end of a file that auditd keeps writing:
   * recent events may still get their EOE, old ones never will).
   */
  expireOlderThan(epochS: number): void {
    for (const [key, entry] of [...this.open]) {
      if (entry.lastTime <= epochS - this.o.timeoutS) this.finish(key, entry, false);
    }
  }

  /** End of input: every open event leaves, incomplete. */
  flush(): void {
    for (const [key, entry] of [...this.open]) this.finish(key, entry, false);
  }

  /** Meta of the records still waiting in open events. */
  *pendingMeta(): Iterable<M> {
    for (const entry of this.open.values()) yield* entry.event.meta;
  }

  private expireByStreamTime(): void {
    // The map keeps creation order; stopping at the first live event keeps
    // this O(1) per record (a slightly late expiry of a straggler is fine).
    for (const [key, entry] of this.open) {
      if (this.latestTime - entry.lastTime < this.o.timeoutS) break;
      this.finish(key, entry, false);
    }
  }

  private evictOldest(): void {
    const first = this.open.entries().next();
    if (!first.done) this.finish(first.value[0], first.value[1], false);
  }

  private finishNew(rec: AuditRecord, meta: M): void {
    const event = newEvent<M>(rec);
    event.meta.push(meta);
    event.complete = true;
    this.hold(event);
    this.release();
  }

  private finish(key: string, entry: Open<M>, complete: boolean): void {
    this.open.delete(key);
    entry.event.complete = complete;
    this.hold(entry.event);
    this.release();
  }

  private hold(event: AuditEvent<M>): void {
    let i = this.held.length;
    while (i > 0 && this.held[i - 1]!.serial > event.serial) i--;
    this.held.splice(i, 0, event);
  }

  /** Lets out, in serial order, every finished event no open event precedes. */
  private release(): void {
    let minOpen = Infinity;
    for (const entry of this.open.values()) if (entry.event.serial < minOpen) minOpen = entry.event.serial;
    let n = 0;
    while (n < this.held.length && this.held[n]!.serial < minOpen) n++;
    if (n === 0) return;
    for (const event of this.held.splice(0, n)) this.o.emit(event);
  }
}

function newEvent<M>(rec: AuditRecord): AuditEvent<M> {
  return { time: rec.time, serial: rec.serial, node: rec.node, complete: false, records: {}, meta: [] };
}

function addRecord<M>(event: AuditEvent<M>, rec: AuditRecord): void {
  const list = event.records[rec.type];
  if (list) list.push(rec.fields);
  else event.records[rec.type] = [rec.fields];
}

/** The JSON object of an event: `timestamp` (epoch s, what the by_time view reads), `time` (RFC 3339), serial, records. */
export function auditEventJson(event: AuditEvent<unknown>): string {
  const ms = Math.round(Number(event.time) * 1000);
  const doc: Record<string, unknown> = {
    timestamp: Number(event.time),
    time: new Date(ms).toISOString(),
    serial: event.serial,
  };
  if (event.node !== null) doc.node = event.node;
  doc.complete = event.complete;
  doc.types = Object.keys(event.records);
  doc.records = event.records;
  return JSON.stringify(doc);
}
