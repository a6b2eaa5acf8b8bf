// LineFormatter's fast path: a line's bytes to its JSON's bytes, with no
// string in between. It runs the schema's `simple` plan (schema.ts): each
// token is matched where the RegExp would match it, and each captured
// value is copied into the output as it is scanned. The plan only holds
// tokens whose RegExp has no choice to make (a token without blanks is the
// whole run of non-blanks; "..." ends at the first unescaped quote, [...]
// at the first "]"), so the scanner follows the RegExp's one path.
//
// It only decides the easy lines: every captured byte printable ASCII and
// nothing JSON must escape (a `"`, a `\`, a control character, a byte of a
// UTF-8 sequence: all left to the RegExp, as is any line that does not
// match). For those it gives byte for byte what LineFormatter.format()
// gives; for any other line it answers -1 and the caller asks format().
//
// Tokens and values are scanned and copied 4 bytes at a time (DataView
// reads and writes, which V8 compiles to plain loads and stores; bit tricks
// find the first byte of a class in a word), so the input must have a
// "\n" after its last line and a few bytes to spare after that, and the
// output a few bytes past what it receives (see format()).
import { convertValue, type FieldType } from './field-options.js';
import type { SimpleToken } from './schema.js';

const SKIP = 0;
const LIT = 1;
const CAP = 2;
const QUOTED = 3;
const BRACKETED = 4;
const REST = 5;

/** What a converted value may add to the captured bytes (`-` -> `null`, `on` -> `true`). */
const TYPED_GROWTH = 8;
/** Bytes read or written past the last one that counts (a word at a time). */
export const SLACK = 8;

const LF = 10;
const CR = 13;
const SPACE = 32;
const TAB = 9;
const QUOTE = 34;
const BACKSLASH = 92;

const EMPTY = new Uint8Array(0);
const utf8 = (text: string) => new Uint8Array(Buffer.from(text, 'utf8'));

// Word tricks: each byte of a word whose high bit ends up set in the mask is
// a byte of the class. A mask may flag bytes past the first flagged one by
// mistake (borrows), never before it: only the lowest flagged byte counts.
/** Bytes below 0x21: blanks, "\n", "\r", control characters. */
const BELOW_21 = 0x21212121;
/** Bytes below 0x20: "\n", "\r", tabs, control characters. */
const BELOW_20 = 0x20202020;
/** Bytes below 0x0e: "\n", "\r" and tabs among them. */
const BELOW_0E = 0x0e0e0e0e;
const ONES = 0x01010101;
const HIGH = 0x80808080;
const QUOTES = 0x22222222;
const BACKSLASHES = 0x5c5c5c5c;

/** The index (0-3) of the lowest flagged byte of a non-zero mask. */
function firstFlagged(m: number): number {
  return (31 - Math.clz32(m & -m)) >> 3;
}

/** Flags the bytes of x below `below` (a repeated byte), `"`, `\` and bytes of UTF-8 sequences (>= 0x80). */
function notPlain(x: number, below: number): number {
  const q = x ^ QUOTES;
  const b = x ^ BACKSLASHES;
  return (((x - below) | 0) & ~x) | x | (((q - ONES) | 0) & ~q) | (((b - ONES) | 0) & ~b);
}

/** A constant as little-endian words, written 4 bytes at a time. */
class Constant {
  readonly words: Int32Array;
  readonly length: number;
  constructor(readonly bytes: Uint8Array) {
    this.length = bytes.length;
    const padded = new Uint8Array(Math.ceil(bytes.length / 4) * 4);
    padded.set(bytes);
    this.words = new Int32Array(padded.length / 4);
    const view = new DataView(padded.buffer);
    for (let i = 0; i < this.words.length; i++) this.words[i] = view.getInt32(4 * i, true);
  }
}

class Op {
  constructor(
    readonly kind: number,
    /** LIT: the literal; CAP: the literal before the capture. */
    readonly prefix: Uint8Array,
    /** CAP: the literal after the capture. */
    readonly suffix: Uint8Array,
    /** Captures: the JSON before the value (see LineFormatter.before); null: a skip. */
    readonly before: Constant | null,
    /** A --types conversion of the value, or null (a string). */
    readonly type: Exclude<FieldType, 'string'> | null,
  ) {}
}

export class ByteFormatter {
  private readonly ops: Op[];
  private readonly end: Constant;
  /** Bytes a line's JSON may have beyond the line's own length ("\n" and SLACK included). */
  readonly maxGrowth: number;
  /** After a format() that did not answer -1: where the line's "\n" is. */
  lineEnd = 0;

  constructor(plan: SimpleToken[], before: string[], kinds: Array<FieldType | 'quoted'>, end: string) {
    const typeOf = (cap: number) => {
      const kind = kinds[cap]!;
      return kind === 'string' || kind === 'quoted' ? null : kind;
    };
    const capture = (kind: number, cap: number, prefix = EMPTY, suffix = EMPTY) =>
      cap < 0 ? new Op(kind, prefix, suffix, null, null) : new Op(kind, prefix, suffix, new Constant(utf8(before[cap]!)), typeOf(cap));
    this.ops = plan.map((tok) => {
      switch (tok.t) {
        case 'skip':
          return new Op(SKIP, EMPTY, EMPTY, null, null);
        case 'lit':
          return new Op(LIT, utf8(tok.text), EMPTY, null, null);
        case 'cap':
          return capture(CAP, tok.cap, utf8(tok.prefix), utf8(tok.suffix));
        case 'quoted':
          return capture(QUOTED, tok.cap);
        case 'bracketed':
          return capture(BRACKETED, tok.cap);
        case 'rest':
          return capture(REST, tok.cap);
      }
    });
    this.end = new Constant(utf8(end));
    let growth = this.end.words.length * 4 + 1 + SLACK;
    for (const op of this.ops) if (op.before !== null) growth += op.before.words.length * 4 + (op.type !== null ? TYPED_GROWTH : 0);
    this.maxGrowth = growth;
  }

  /**
   * Writes the JSON of the line at src[start] and a "\n" into out at pos;
   * returns the position after that "\n" and sets lineEnd, or returns -1
   * when the line is not one this path decides (out past pos is then
   * garbage). The line ends at the first "\n" (a "\r" before it is not
   * part of it); there must be one, followed by SLACK readable bytes; out
   * must have room for the line's length + maxGrowth bytes. The line must
   * not be blank (the caller skips those).
   */
  format(src: Uint8Array, view: DataView, start: number, out: Uint8Array, outView: DataView, pos: number): number {
    const ops = this.ops;
    const n = ops.length;
    let p = start;
    let c = src[p]!;
    while (c === SPACE || c === TAB) c = src[++p]!;
    for (let k = 0; k < n; k++) {
      const op = ops[k]!;
      if (op.kind === REST) return this.rest(op, k, src, view, p, out, outView, pos);
      if (k > 0) {
        // The blanks between two tokens.
        if (c !== SPACE && c !== TAB) return -1;
        do c = src[++p]!;
        while (c === SPACE || c === TAB);
      }
      if (c === LF || (c === CR && src[p + 1] === LF)) return -1;
      const before = op.before;
      switch (op.kind) {
        case SKIP:
          p = tokenEnd(src, view, p + 1);
          break;
        case LIT: {
          const lit = op.prefix;
          for (let j = 0; j < lit.length; j++, p++) if (src[p] !== lit[j]) return -1;
          break;
        }
        case CAP: {
          const prefix = op.prefix;
          for (let j = 0; j < prefix.length; j++, p++) if (src[p] !== prefix[j]) return -1;
          const from = p;
          if (op.type !== null) {
            p = tokenEnd(src, view, p);
          } else {
            pos = putConstant(outView, pos, before!);
            // Copied while scanned, up to the next blank or line end; a byte
            // that is not plain is fine only in the suffix.
            let bad = -1;
            let at = pos;
            for (;;) {
              const x = view.getInt32(p, true);
              outView.setInt32(at, x, true);
              const m = notPlain(x, BELOW_21) & HIGH;
              if (m === 0) {
                p += 4;
                at += 4;
                continue;
              }
              const f = firstFlagged(m);
              p += f;
              at += f;
              c = src[p]!;
              if (c === SPACE || c === TAB || c === LF || (c === CR && src[p + 1] === LF)) break;
              if (bad < 0) bad = p;
              out[at++] = c;
              p++;
            }
            if (bad >= 0 && bad < p - op.suffix.length) return -1;
            pos = at;
          }
          // The token must end with the suffix; the capture is what lies between.
          const suffix = op.suffix;
          const to = p - suffix.length;
          if (to < from) return -1;
          for (let j = 0; j < suffix.length; j++) if (src[to + j] !== suffix[j]) return -1;
          if (op.type === null) pos -= suffix.length;
          else if ((pos = this.typed(op, before!, src, from, to, out, outView, pos)) < 0) return -1;
          break;
        }
        case QUOTED: {
          // "..." up to the first unescaped quote; a capture with a `\` is the RegExp's.
          if (c !== QUOTE) return -1;
          const from = ++p;
          if (before === null) {
            while ((c = src[p]!) !== QUOTE) {
              if (c === LF) return -1;
              if (c === BACKSLASH) {
                // `\\.`: "." is no line terminator (\r, or U+2028/9 among the UTF-8 bytes).
                c = src[++p]!;
                if (c === LF || c === CR || c > 127) return -1;
              }
              p++;
            }
          } else {
            while ((c = src[p]!) !== QUOTE) {
              if (c < 32 || c > 127 || c === BACKSLASH) return -1;
              p++;
            }
            if ((pos = this.value(op, before, src, from, p, out, outView, pos)) < 0) return -1;
          }
          p++;
          break;
        }
        case BRACKETED: {
          // [...] up to the first "]".
          if (c !== 91) return -1;
          const from = ++p;
          while ((c = src[p]!) !== 93) {
            if (c === LF) return -1;
            p++;
          }
          if (before !== null) {
            for (let j = from; j < p; j++) if ((c = src[j]!) < 32 || c > 127 || c === QUOTE || c === BACKSLASH) return -1;
            if ((pos = this.value(op, before, src, from, p, out, outView, pos)) < 0) return -1;
          }
          p++;
          break;
        }
      }
      c = src[p]!;
    }
    while (c === SPACE || c === TAB) c = src[++p]!;
    if (c === CR && src[p + 1] === LF) c = src[++p]!;
    if (c !== LF) return -1;
    this.lineEnd = p;
    return finish(outView, out, pos, this.end);
  }

  /** The last token, `$name...` or `_...`: from the next non-blank to the last one (may be empty). */
  private rest(op: Op, k: number, src: Uint8Array, view: DataView, p: number, out: Uint8Array, outView: DataView, pos: number): number {
    let c = src[p]!;
    if (k > 0 && c !== LF && !(c === CR && src[p + 1] === LF)) {
      if (c !== SPACE && c !== TAB) return -1;
      do c = src[++p]!;
      while (c === SPACE || c === TAB);
    }
    const before = op.before;
    const from = p;
    let at = pos;
    if (before !== null && op.type === null) {
      at = pos = putConstant(outView, pos, before);
    }
    // `.*?` up to the line end, then blanks: anything but a line terminator
    // (\r, or U+2028/9 among the UTF-8 bytes); a value must be plain too.
    const copy = before !== null && op.type === null;
    for (;;) {
      const x = view.getInt32(p, true);
      let m: number;
      if (copy) {
        outView.setInt32(at, x, true);
        m = notPlain(x, BELOW_20) & HIGH;
      } else {
        m = ((((x - BELOW_0E) | 0) & ~x) | x) & HIGH;
      }
      if (m === 0) {
        p += 4;
        at += 4;
        continue;
      }
      const f = firstFlagged(m);
      p += f;
      at += f;
      c = src[p]!;
      if (c === LF) break;
      if (c === CR) {
        if (src[p + 1] === LF) break;
        return -1;
      }
      if (c === TAB || (copy && c === SPACE)) {
        // Blanks: the end of the value if only blanks follow.
        let q = p;
        while ((c = src[++q]!) === SPACE || c === TAB);
        if (c === LF || (c === CR && src[q + 1] === LF)) break;
        if (copy) return -1;
      } else if (copy || c > 127) {
        return -1;
      }
      if (copy) out[at++] = src[p]!;
      p++;
    }
    let to = p;
    while (to > from && ((c = src[to - 1]!) === SPACE || c === TAB)) to--;
    if (before !== null) {
      if (op.type === null) pos += to - from;
      else if ((pos = this.typed(op, before, src, from, to, out, outView, pos)) < 0) return -1;
    }
    while (src[p] !== LF) p++;
    this.lineEnd = p;
    return finish(outView, out, pos, this.end);
  }

  /** A checked value src[from, to) (printable ASCII, no `"` or `\`), with the JSON before it. */
  private value(op: Op, before: Constant, src: Uint8Array, from: number, to: number, out: Uint8Array, outView: DataView, pos: number): number {
    if (op.type !== null) return this.typed(op, before, src, from, to, out, outView, pos);
    pos = putConstant(outView, pos, before);
    for (let j = from; j < to; j++) out[pos++] = src[j]!;
    return pos;
  }

  /** A --types value; -1 when it does not convert (format() then says why) or may not fit. */
  private typed(op: Op, before: Constant, src: Uint8Array, from: number, to: number, out: Uint8Array, outView: DataView, pos: number): number {
    let text = '';
    for (let j = from; j < to; j++) {
      const c = src[j]!;
      if (c < 32 || c > 127 || c === QUOTE || c === BACKSLASH) return -1;
      text += String.fromCharCode(c);
    }
    const json = convertValue(text, op.type!);
    if (json === undefined || json.length > to - from + TYPED_GROWTH) return -1;
    pos = putConstant(outView, pos, before);
    for (let j = 0; j < json.length; j++) out[pos++] = json.charCodeAt(j);
    return pos;
  }
}

/** From p (inside a token or at its end): where the token ends (a blank, or the line end). */
function tokenEnd(src: Uint8Array, view: DataView, p: number): number {
  for (;;) {
    const x = view.getInt32(p, true);
    const m = ((x - BELOW_21) | 0) & ~x & HIGH;
    if (m === 0) {
      p += 4;
      continue;
    }
    p += firstFlagged(m);
    const c = src[p]!;
    if (c === SPACE || c === TAB || c === LF || (c === CR && src[p + 1] === LF)) return p;
    p++;
  }
}

function putConstant(view: DataView, pos: number, k: Constant): number {
  const words = k.words;
  for (let i = 0; i < words.length; i++) view.setInt32(pos + 4 * i, words[i]!, true);
  return pos + k.length;
}

function finish(view: DataView, out: Uint8Array, pos: number, end: Constant): number {
  pos = putConstant(view, pos, end);
  out[pos] = LF;
  return pos + 1;
}
