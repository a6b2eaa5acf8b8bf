// The jsonformat loop: lines in, JSON lines out, fast. Input is taken in
// chunks cut at their last "\n" (never inside a UTF-8 sequence). With a
// schema the byte path of LineFormatter allows (formatter.bytes), lines go
// from the input's bytes to the output's bytes with no string in between;
// the lines it cannot decide (and every line of other formats) are decoded
// one by one and go through the converter. Otherwise a chunk is decoded
// once and split with indexOf. The output of a whole chunk is written at
// once. Two drivers share it:
// - formatFd: blocking reads and writes on file descriptors, no event loop
//   in between (the command's default: measured about 20% faster);
// - formatStream: Node streams, for a live audit stream whose events
//   without EOE must leave on a timer while stdin is quiet.
import type { Readable, Writable } from 'node:stream';
import { once } from 'node:events';
import { readSync, writeSync } from 'node:fs';
import { OperationError } from '../../lib/errors.js';
import { SLACK, type ByteFormatter } from './byte-formatter.js';
import { SchemaConverter, type Converter, type ConverterFactory, type ConvertSink } from './converter.js';
import { printable } from '../../lib/printable.js';

export interface FormatStreamOptions {
  /** Stop at the first line that gives no document (exit code 1). */
  strict: boolean;
  /** How many non-matching lines are reported one by one; the rest are counted. */
  reportLimit: number;
  /** How often a live input is checked for audit events whose EOE never came (ms); 0: never. */
  idleCheckMs?: number;
  /** false: no byte path, every line goes through the converter as a string (tests compare the two). */
  bytePath?: boolean;
}

export interface FormatStats {
  lines: number;
  blank: number;
  documents: number;
  unmatched: number;
}

const MAX_SHOWN = 200;
/** formatFd's reads (the buffer grows for a longer line). */
const READ_SIZE = 256 * 1024;

/** Converts lines a chunk at a time and collects the output; shared by both drivers. */
class LineLoop {
  readonly stats: FormatStats = { lines: 0, blank: 0, documents: 0, unmatched: 0 };
  failure: OperationError | null = null;
  readonly converter: Converter<number>;
  /** The byte path; null: strings only. */
  private readonly fast: ByteFormatter | null;
  // Strings: one per document, joined once per chunk: cheaper than one
  // growing string, whose many pieces V8 must flatten before writing.
  private out: string[] = [];
  // Bytes (with the byte path): the output of the chunk so far.
  private bytes = Buffer.allocUnsafe(0);
  private view = new DataView(this.bytes.buffer, this.bytes.byteOffset, 0);
  private used = 0;
  private currentLine = '';

  constructor(
    private readonly report: (message: string) => void,
    makeConverter: ConverterFactory,
    private readonly o: FormatStreamOptions,
  ) {
    const sink: ConvertSink<number> = {
      doc: (json) => this.emit(json),
      event: (json) => {
        if (json !== null) this.emit(json);
      },
      mismatch: (lineNo, reason) => this.mismatch(lineNo, reason),
    };
    this.converter = makeConverter(sink);
    this.fast = o.bytePath !== false && this.converter instanceof SchemaConverter ? this.converter.formatter.bytes : null;
  }

  /**
   * The lines of src[start, end): complete lines, the last one may lack
   * its "\n" only at the end of input. src[end] must be a "\n" and SLACK
   * bytes must follow it (the byte path reads ahead).
   */
  processBytes(src: Buffer, start: number, end: number): void {
    const fast = this.fast;
    if (fast === null) {
      this.processText(src.toString('utf8', start, end));
      return;
    }
    const view = new DataView(src.buffer, src.byteOffset, src.length);
    const stats = this.stats;
    let s = start;
    while (this.failure === null) {
      stats.lines++;
      let c = src[s]!;
      /** Where the line's "\n" is. */
      let e = s;
      if (c === 10) {
        stats.blank++;
      } else {
        let bytePath = true;
        if (c === 32 || c === 9 || c === 13) {
          // Blank, or maybe blank (isBlank() trims Unicode's blanks too): the string path decides.
          e = src.indexOf(10, s);
          let j = s;
          while (++j < e && ((c = src[j]!) === 32 || c === 9 || c === 13));
          if (j === e) {
            stats.blank++;
            bytePath = false;
          } else {
            while (j < e && (c = src[j]!) !== 11 && c !== 12 && c < 128) j++;
            if (j < e) {
              this.stringLine(src.toString('utf8', s, e));
              bytePath = false;
            }
          }
        }
        if (bytePath) {
          if (this.used + (end - s) + fast.maxGrowth > this.bytes.length) this.grow(end - s + fast.maxGrowth);
          const pos = fast.format(src, view, s, this.bytes, this.view, this.used);
          if (pos >= 0) {
            this.used = pos;
            stats.documents++;
            e = fast.lineEnd;
          } else {
            e = src.indexOf(10, s);
            this.stringLine(src.toString('utf8', s, e));
          }
        }
      }
      if (e >= end) return;
      s = e + 1;
    }
  }

  /** Complete lines (the last one may lack its "\n" only at the end of input). */
  processText(text: string): void {
    let start = 0;
    const n = text.length;
    while (start <= n && this.failure === null) {
      let nl = text.indexOf('\n', start);
      if (nl === -1) nl = n;
      this.stats.lines++;
      const line = text.slice(start, nl);
      start = nl + 1;
      this.stringLine(line);
    }
  }

  /**
   * The output collected since the last call, or null. handOver: the
   * caller keeps the bytes (a stream may hold them); else they are only
   * good until the next processBytes().
   */
  take(handOver: boolean): Buffer | null {
    if (this.fast !== null) {
      if (this.used === 0) return null;
      const out = this.bytes.subarray(0, this.used);
      this.used = 0;
      if (handOver) this.grow(0, true);
      return out;
    }
    if (this.out.length === 0) return null;
    this.out.push('');
    const text = this.out.join('\n');
    this.out = [];
    return Buffer.from(text);
  }

  finish(): void {
    if (this.stats.unmatched > this.o.reportLimit) this.report(`${this.stats.unmatched - this.o.reportLimit} more non-matching lines not shown`);
  }

  /** A line (counted already) through the converter. */
  private stringLine(line: string): void {
    if (isBlank(line)) {
      this.stats.blank++;
      return;
    }
    this.currentLine = line;
    this.converter.line(line, this.stats.lines);
  }

  private emit(json: string): void {
    this.stats.documents++;
    if (this.fast === null) {
      this.out.push(json);
      return;
    }
    const room = json.length * 3 + 1;
    if (this.used + room > this.bytes.length) this.grow(room);
    this.used += this.bytes.write(json, this.used, 'utf8');
    this.bytes[this.used++] = 10;
  }

  /** Room for `more` bytes after the output so far; fresh: a new buffer of the same size. */
  private grow(more: number, fresh = false): void {
    const bigger = Buffer.allocUnsafe(fresh ? this.bytes.length : Math.max(2 * this.bytes.length, this.used + more, 2 * READ_SIZE));
    this.bytes.copy(bigger, 0, 0, this.used);
    this.bytes = bigger;
    this.view = new DataView(bigger.buffer, bigger.byteOffset, bigger.length);
  }

  private mismatch(lineNo: number, reason: string): void {
    this.stats.unmatched++;
    const line = this.currentLine;
    // Log text on stderr (a terminal, cron's mail): shown so that it cannot act on it (lib/printable.ts).
    const shown = printable(line.length > MAX_SHOWN ? `${line.slice(0, MAX_SHOWN)}...` : line);
    if (this.o.strict) {
      this.failure = new OperationError(`line ${lineNo} ${reason} (--strict): ${shown}`);
      return;
    }
    if (this.stats.unmatched <= this.o.reportLimit) this.report(`line ${lineNo} ${reason}: ${shown}`);
  }
}

/** Lines for LineLoop.processBytes: buf[0, end), then a "\n" and SLACK bytes. */
interface Lines {
  buf: Buffer;
  end: number;
}

/** Cuts byte chunks at their last "\n"; the rest waits for the next chunk. */
class ChunkCutter {
  private carry: Buffer | null = null;

  /** The complete lines of carry+chunk; null when there is none yet. */
  push(chunk: Buffer): Lines | null {
    const lastNl = chunk.lastIndexOf(10);
    if (lastNl === -1) {
      this.carry = this.carry !== null ? Buffer.concat([this.carry, chunk]) : Buffer.from(chunk);
      return null;
    }
    const carried = this.carry?.length ?? 0;
    const buf = Buffer.allocUnsafe(carried + lastNl + 1 + SLACK);
    if (this.carry !== null) this.carry.copy(buf);
    chunk.copy(buf, carried, 0, lastNl + 1);
    this.carry = lastNl + 1 < chunk.length ? Buffer.from(chunk.subarray(lastNl + 1)) : null;
    return { buf, end: carried + lastNl };
  }

  /** What is left at the end of input (a last line without "\n"). */
  rest(): Lines | null {
    if (this.carry === null || this.carry.length === 0) return null;
    const buf = Buffer.alloc(this.carry.length + 1 + SLACK);
    this.carry.copy(buf);
    buf[this.carry.length] = 10;
    return { buf, end: this.carry.length };
  }
}

export async function formatStream(
  input: Readable | AsyncIterable<Buffer | string>,
  output: Writable,
  report: (message: string) => void,
  makeConverter: ConverterFactory,
  o: FormatStreamOptions,
): Promise<FormatStats> {
  const loop = new LineLoop(report, makeConverter, o);
  const cutter = new ChunkCutter();
  const flush = async () => {
    const out = loop.take(true);
    if (out !== null && !output.write(out)) await once(output, 'drain');
  };
  const timer = o.idleCheckMs ? setInterval(() => loop.converter.idle(), o.idleCheckMs) : null;
  try {
    for await (const chunk of input as AsyncIterable<Buffer | string>) {
      const lines = cutter.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      if (lines === null) continue;
      loop.processBytes(lines.buf, 0, lines.end);
      await flush();
      if (loop.failure) throw loop.failure;
    }
    const rest = cutter.rest();
    if (rest !== null) loop.processBytes(rest.buf, 0, rest.end);
    if (loop.failure) throw loop.failure;
    loop.converter.end(true);
    await flush();
  } finally {
    if (timer) clearInterval(timer);
    await flush().catch(() => undefined);
  }
  loop.finish();
  return loop.stats;
}

/**
 * The same loop on file descriptors with blocking reads and writes. Reads
 * land after the part line the last read left, in one buffer: no copy but
 * that part line's.
 */
export function formatFd(inFd: number, outFd: number, report: (message: string) => void, makeConverter: ConverterFactory, o: FormatStreamOptions): FormatStats {
  const loop = new LineLoop(report, makeConverter, o);
  // Room for a "\n" and SLACK bytes after what is read.
  let buf = Buffer.allocUnsafe(READ_SIZE + 1 + SLACK);
  let have = 0;
  const flush = () => {
    const out = loop.take(false);
    if (out !== null) writeAll(outFd, out);
  };
  try {
    for (;;) {
      if (have === buf.length - 1 - SLACK) {
        // A line longer than the buffer.
        const bigger = Buffer.allocUnsafe(2 * buf.length);
        buf.copy(bigger, 0, 0, have);
        buf = bigger;
      }
      const n = readRetrying(inFd, buf, have, buf.length - 1 - SLACK - have);
      if (n === 0) break;
      // Only the new bytes: the part line carried has no "\n".
      const found = buf.subarray(have, have + n).lastIndexOf(10);
      const lastNl = found === -1 ? -1 : have + found;
      have += n;
      if (lastNl === -1) continue;
      loop.processBytes(buf, 0, lastNl);
      flush();
      if (loop.failure) throw loop.failure;
      have = buf.copy(buf, 0, lastNl + 1, have);
    }
    if (have > 0) {
      buf[have] = 10;
      loop.processBytes(buf, 0, have);
    }
    if (loop.failure) throw loop.failure;
    loop.converter.end(true);
  } finally {
    flush();
  }
  loop.finish();
  return loop.stats;
}

/** A descriptor someone left non-blocking answers EAGAIN: wait a moment and read again. */
function readRetrying(fd: number, buf: Buffer, offset: number, length: number): number {
  for (;;) {
    try {
      return readSync(fd, buf, offset, length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') pause();
      else if (code === 'EOF') return 0;
      else throw err;
    }
  }
}

function writeAll(fd: number, data: Buffer): void {
  let off = 0;
  while (off < data.length) {
    try {
      off += writeSync(fd, data, off, data.length - off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      pause();
    }
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function pause(): void {
  Atomics.wait(sleeper, 0, 0, 2);
}

/** Empty, or only spaces, tabs and a "\r". */
export function isBlank(line: string): boolean {
  if (line.length === 0) return true;
  const c = line.charCodeAt(0);
  if (c !== 32 && c !== 9 && c !== 13) return false;
  return line.trim() === '';
}
