// The JSON line of a record in the file and stdout sinks: `id` first, then
// the record. Readers keep the latest line per `id` (a deletion line says
// `deleted: true`), so `id` must be the record id whatever the record holds.
import type { SinkRecord } from './sink.js';

export function recordLine(r: SinkRecord): string {
  const line: Record<string, unknown> = { id: r.id, ...r.record };
  line.id = r.id;
  return `${JSON.stringify(line)}\n`;
}
