// Waits until the machine is quiet before a measured phase. A server can
// stay busy after the work that came before: Apache CouchDB 3.5 was seen
// at 100 % of a core for minutes after a benchmark deleted its databases,
// and back-to-back runs on it were then up to 40 % slower. A phase timed
// then measures the leftover work, not the code. (On the embedded server
// the machine is quiet again within a second after a backlog is loaded;
// the plain read's own speed still varies up to 2× between runs there, for
// reasons inside PouchDB Server: see README.) What must stay true: the
// wait is bounded (a busy machine is reported, never waited on forever),
// and it reads the whole machine's CPU, so it covers servers whose process
// it does not know (an external CouchDB). Linux only: elsewhere it returns
// at once.
import { readFileSync } from 'node:fs';

export interface QuietOptions {
  /** Busy share of all CPUs (0–1) under which a window counts as quiet. */
  busyBelow: number;
  /** Length of one window. */
  windowMs: number;
  /** Quiet windows needed in a row. */
  windows: number;
  /** Gives up after this long (the phase is then measured anyway, and said so). */
  timeoutMs: number;
}

export const QUIET_DEFAULTS: QuietOptions = { busyBelow: 0.1, windowMs: 500, windows: 2, timeoutMs: 60_000 };

export interface QuietResult {
  /** Null where /proc/stat cannot be read (not Linux): nothing was waited for. */
  quiet: boolean | null;
  waitedSeconds: number;
  /** Busy share of the last window. */
  lastBusy: number | null;
}

interface CpuTimes {
  busy: number;
  total: number;
}

/** Jiffies of all CPUs from the first line of /proc/stat (iowait counts as idle). */
export function parseProcStat(text: string): CpuTimes | null {
  const line = text.split('\n', 1)[0] ?? '';
  if (!line.startsWith('cpu ')) return null;
  const n = line.trim().split(/\s+/).slice(1).map(Number);
  if (n.length < 5 || n.some((x) => !Number.isFinite(x))) return null;
  // user nice system idle iowait irq softirq steal (guest time is already in user).
  const idle = n[3]! + n[4]!;
  const total = n.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

function readCpu(): CpuTimes | null {
  try {
    return parseProcStat(readFileSync('/proc/stat', 'utf8'));
  } catch {
    return null;
  }
}

export async function waitForQuiet(o: QuietOptions = QUIET_DEFAULTS): Promise<QuietResult> {
  const t0 = process.hrtime.bigint();
  const waited = () => Number(process.hrtime.bigint() - t0) / 1e9;
  let prev = readCpu();
  if (prev === null) return { quiet: null, waitedSeconds: 0, lastBusy: null };
  let inARow = 0;
  let lastBusy: number | null = null;
  while (waited() * 1000 < o.timeoutMs) {
    await new Promise((r) => setTimeout(r, o.windowMs));
    const now = readCpu();
    if (now === null) return { quiet: null, waitedSeconds: waited(), lastBusy };
    const total = now.total - prev.total;
    lastBusy = total > 0 ? (now.busy - prev.busy) / total : 0;
    prev = now;
    inARow = lastBusy < o.busyBelow ? inARow + 1 : 0;
    if (inARow >= o.windows) return { quiet: true, waitedSeconds: waited(), lastBusy };
  }
  return { quiet: false, waitedSeconds: waited(), lastBusy };
}

/** One line for the benchmark's progress output. */
export function describeQuiet(r: QuietResult): string {
  if (r.quiet === null) return 'machine load unknown (no /proc/stat): measured without waiting for it to go quiet';
  if (r.quiet) return `the machine went quiet after ${r.waitedSeconds.toFixed(1)} s`;
  return `the machine did NOT go quiet within ${r.waitedSeconds.toFixed(0)} s (last ${(100 * (r.lastBusy ?? 0)).toFixed(0)} % busy): measured anyway`;
}
