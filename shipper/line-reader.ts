// Splits a byte stream into lines, keeping each line's byte offset and end
// (just after its "\n"): the offsets are what --truncate and --state count
// in, and part of each document's id.
export interface RawLine {
  /** The line without its "\n" (a "\r" before it is left to the converter). */
  text: string;
  offset: number;
  end: number;
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
): AsyncGenerator<RawLine[]> {
  let carry: Buffer | null = null;
  let base = start;
  for await (const chunk of chunks) {
    let buf: Buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (carry !== null) buf = Buffer.concat([carry, buf]);
    const lines: RawLine[] = [];
    let pos = 0;
    for (let nl = buf.indexOf(10, pos); nl !== -1; nl = buf.indexOf(10, pos)) {
      lines.push({ text: buf.toString('utf8', pos, nl), offset: base + pos, end: base + nl + 1 });
      pos = nl + 1;
    }
    carry = pos < buf.length ? Buffer.from(buf.subarray(pos)) : null;
    base += pos;
    if (lines.length > 0) yield lines;
  }
  if (carry !== null && includeUnterminated) yield [{ text: carry.toString('utf8'), offset: base, end: base + carry.length }];
}
