// The jsonformat loop: lines in, JSON lines out, fast. Input is taken in
// chunks cut at their last "\n" (never inside a UTF-8 sequence), decoded
// once per chunk, and split with indexOf; output for a whole chunk is
// written with one write() (waiting for 'drain' when the reader is slower).
import type { Readable, Writable } from 'node:stream';
import { once } from 'node:events';
import { CommandError } from '../errors.js';
import type { Converter, ConverterFactory, ConvertSink } from './converter.js';

export interface FormatStreamOptions {
  /** Stop at the first line that gives no document (exit code 1). */
  strict: boolean;
  /** How many non-matching lines are reported one by one; the rest are counted. */
  reportLimit: number;
  /** How often a live input is checked for audit events whose EOE never came (ms); 0: never. */
  idleCheckMs?: number;
}

export interface FormatStats {
  lines: number;
  blank: number;
  documents: number;
  unmatched: number;
}

const MAX_SHOWN = 200;

export async function formatStream(
  input: Readable,
  output: Writable,
  report: (message: string) => void,
  makeConverter: ConverterFactory,
  o: FormatStreamOptions,
): Promise<FormatStats> {
  const stats: FormatStats = { lines: 0, blank: 0, documents: 0, unmatched: 0 };
  // One string per document, joined once per chunk: cheaper than one
  // growing string, whose many pieces V8 must flatten before writing.
  let out: string[] = [];
  let failure: CommandError | null = null;
  let currentLine = '';
  const sink: ConvertSink<number> = {
    doc(json) {
      out.push(json);
      stats.documents++;
    },
    event(json) {
      if (json === null) return;
      out.push(json);
      stats.documents++;
    },
    mismatch(lineNo, reason) {
      stats.unmatched++;
      const shown = currentLine.length > MAX_SHOWN ? `${currentLine.slice(0, MAX_SHOWN)}...` : currentLine;
      if (o.strict) {
        failure = new CommandError(`line ${lineNo} ${reason} (--strict): ${shown}`, 1);
        return;
      }
      if (stats.unmatched <= o.reportLimit) report(`line ${lineNo} ${reason}: ${shown}`);
    },
  };
  const converter: Converter<number> = makeConverter(sink);
  const flush = async () => {
    if (out.length === 0) return;
    out.push('');
    const chunk = out.join('\n');
    out = [];
    if (!output.write(chunk)) await once(output, 'drain');
  };

  const processText = (text: string) => {
    let start = 0;
    const n = text.length;
    while (start <= n && failure === null) {
      let nl = text.indexOf('\n', start);
      if (nl === -1) nl = n;
      stats.lines++;
      const line = text.slice(start, nl);
      start = nl + 1;
      if (isBlank(line)) {
        stats.blank++;
        continue;
      }
      currentLine = line;
      converter.line(line, stats.lines);
    }
  };

  const timer = o.idleCheckMs ? setInterval(() => converter.idle(), o.idleCheckMs) : null;
  try {
    let carry: Buffer | null = null;
    for await (const chunk of input as AsyncIterable<Buffer | string>) {
      let buf: Buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (carry !== null) buf = Buffer.concat([carry, buf]);
      const lastNl = buf.lastIndexOf(10);
      if (lastNl === -1) {
        carry = buf;
        continue;
      }
      carry = lastNl + 1 < buf.length ? Buffer.from(buf.subarray(lastNl + 1)) : null;
      processText(buf.toString('utf8', 0, lastNl));
      await flush();
      if (failure) throw failure;
    }
    if (carry !== null && carry.length > 0) processText(carry.toString('utf8'));
    if (failure) throw failure;
    converter.end(true);
    await flush();
    if (failure) throw failure;
  } finally {
    if (timer) clearInterval(timer);
    await flush().catch(() => undefined);
  }
  if (stats.unmatched > o.reportLimit) report(`${stats.unmatched - o.reportLimit} more non-matching lines not shown`);
  return stats;
}

/** Empty, or only spaces, tabs and a "\r". */
export function isBlank(line: string): boolean {
  if (line.length === 0) return true;
  const c = line.charCodeAt(0);
  if (c !== 32 && c !== 9 && c !== 13) return false;
  return line.trim() === '';
}
