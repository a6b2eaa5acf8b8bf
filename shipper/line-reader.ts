// Splits a byte stream into lines, keeping each line's byte offset and end
// (just after its "\n"): the offsets are what --truncate and --state count
// in, and part of each document's id.
//
// Memory and time stay linear in the input whatever its lines: the part of
// a line that spans chunks is kept as a list and joined once its "\n"
// comes (joining at every chunk made a 100 MiB line cost minutes and
// 300 MiB), and a line longer than `maxLineBytes` (no document that large
// can be stored) is not kept at all past its first bytes: it is given as
// `tooLong`, for the reject file, once its end is known.
export interface RawLine {
  /** The line without its "\n" (a "\r" before it is left to the converter); only its first TOO_LONG_KEPT bytes when tooLong. */
  text: string;
  offset: number;
  end: number;
  /** Longer than maxLineBytes: `text` is its beginning. */
  tooLong?: true;
}

/** What is kept of a line over the limit, to show in the reject file. */
export const TOO_LONG_KEPT = 4096;

/** The part of a line read so far, across chunks. */
class Partial {
  private parts: Buffer[] = [];
  length = 0;
  /** Past the limit: only the first TOO_LONG_KEPT bytes are kept. */
  tooLong = false;

  constructor(private readonly max: number) {}

  add(buf: Buffer): void {
    if (buf.length === 0) return;
    this.length += buf.length;
    if (this.tooLong) return;
    this.parts.push(buf);
    if (this.length > this.max) {
      this.parts = [Buffer.concat(this.parts).subarray(0, TOO_LONG_KEPT)];
      this.tooLong = true;
    }
  }

  take(): Buffer {
    const whole = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    this.parts = [];
    this.length = 0;
    this.tooLong = false;
    return whole;
  }
}

/**
 * Lines of `chunks`, whose first byte is at `start`, a chunk's worth at a
 * time. A last line without "\n" is given only when includeUnterminated:
 * in a file someone is still writing it may be half a line.
 */
export async function* readLines(
  chunks: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
  start: number,
  includeUnterminated: boolean,
  maxLineBytes = Infinity,
): AsyncGenerator<RawLine[]> {
  const partial = new Partial(maxLineBytes);
  let base = start;
  for await (const chunk of chunks) {
    const buf: Buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const lines: RawLine[] = [];
    let pos = 0;
    for (let nl = buf.indexOf(10); nl !== -1; nl = buf.indexOf(10, pos)) {
      if (partial.length > 0 || nl - pos > maxLineBytes) {
        partial.add(buf.subarray(pos, nl));
        const end = base + partial.length + 1;
        lines.push(line(partial, base, end));
        base = end;
      } else {
        lines.push({ text: buf.toString('utf8', pos, nl), offset: base, end: base + nl - pos + 1 });
        base += nl - pos + 1;
      }
      pos = nl + 1;
    }
    // Copied: the rest of this chunk must not keep the whole chunk alive.
    if (pos < buf.length) partial.add(Buffer.from(buf.subarray(pos)));
    if (lines.length > 0) yield lines;
  }
  if (partial.length > 0 && includeUnterminated) yield [line(partial, base, base + partial.length)];
}

function line(partial: Partial, offset: number, end: number): RawLine {
  const tooLong = partial.tooLong;
  const text = partial.take().toString('utf8');
  return tooLong ? { text, offset, end, tooLong } : { text, offset, end };
}
