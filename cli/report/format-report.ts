// Renders report rows as an aligned table with a bar per row (Unicode
// eighth blocks), as CSV or as JSON.
import { reportLib } from '../../design-docs/report-lib.js';
import { printable, printableCsv } from '../../lib/printable.js';
import type { ReportRow } from './build-report.js';

export interface Columns {
  keys: string[];
  count: string;
}

const EIGHTHS = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

export function bar(value: number, max: number, width: number): string {
  if (max <= 0 || value <= 0) return '';
  const eighths = Math.max(1, Math.round((value / max) * width * 8));
  return '█'.repeat(Math.floor(eighths / 8)) + EIGHTHS[eighths % 8];
}

/** Anyone may write a log value: what would act on the terminal is shown escaped (lib/printable.ts). */
const show = (v: unknown) => (v === null || v === undefined ? '-' : printable(typeof v === 'object' ? JSON.stringify(v) : String(v)));

export function formatTable(rows: ReportRow[], cols: Columns, caption?: string, barWidth = 40): string {
  const header = [...cols.keys, cols.count];
  const cells = rows.map((r) => [...cols.keys.map((_, i) => show(r.key[i])), String(r.count)]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const numeric = header.map((_, i) => i === header.length - 1 || cells.every((c) => /^-?\d+$/.test(c[i]!)));
  const line = (c: string[]) => c.map((x, i) => (numeric[i] ? x.padStart(widths[i]!) : x.padEnd(widths[i]!))).join('  ');
  const max = Math.max(0, ...rows.map((r) => r.count));
  const out = [line(header), line(widths.map((w) => '-'.repeat(w)))];
  rows.forEach((r, i) => out.push(`${line(cells[i]!)}  ${bar(r.count, max, barWidth)}`.trimEnd()));
  out.push(caption ?? `${rows.length} row${rows.length === 1 ? '' : 's'}, total ${rows.reduce((s, r) => s + r.count, 0)}`);
  return out.join('\n') + '\n';
}

/** The csv list's own cell (design-docs/report-lib.ts): quoting, and formula-like text kept as text. */
const csvCell = reportLib().csvCell;

export function formatCsv(rows: ReportRow[], cols: Columns): string {
  const lines = [[...cols.keys, cols.count].join(',')];
  for (const r of rows) lines.push([...cols.keys.map((_, i) => printableCsv(csvCell(r.key[i]))), String(r.count)].join(','));
  return lines.join('\n') + '\n';
}

export function formatJson(rows: ReportRow[], cols: Columns): string {
  const objects = rows.map((r) => Object.fromEntries([...cols.keys.map((k, i) => [k, r.key[i] ?? null]), [cols.count, r.count]]));
  return JSON.stringify(objects, null, 2) + '\n';
}
