// Turns a write request's raw body into JSON values. The nesting depth is
// checked while the text is scanned, before JSON.parse sees it: a hostile
// body of millions of "[" costs one linear pass and stops at the first
// bracket too deep, instead of blocking the event loop in the parser.
// Document rules (reserved fields, exact depth) are checked per document in
// validate-docs.
import { isUtf8 } from 'node:buffer';
import { badRequest } from '../../lib/errors.js';
import { checkCountBeforeParsing, loneSurrogateError, loneSurrogateIn } from './validate-docs.js';

/**
 * The position of the first bracket nested deeper than `maxDepth` (strings
 * skipped, escapes honoured), or -1. Invalid JSON is left to JSON.parse.
 * Strings are skipped with indexOf rather than a character at a time: most
 * of a log document's bytes are string contents, and this scan runs over
 * every byte of every write (a quarter of its former cost on log bulks).
 */
export function tooDeepAt(text: string, maxDepth: number, from = 0, to = text.length): number {
  let depth = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      i = closingQuote(text, i);
      if (i < 0 || i >= to) return -1; // unterminated: JSON.parse's to refuse
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth) return i;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return -1;
}

/**
 * How many values the arrays at nesting `level` hold (1: a top-level
 * array's elements; 2: those of `{"docs": [...]}`), counting stops once
 * past `limit`. Run before JSON.parse so that a small gzip body of a
 * million `{}` is refused for its count without parsing a million values
 * (which held the event loop for over a second: found by a review).
 * Invalid JSON is left to JSON.parse.
 */
export function valuesAt(text: string, level: number, limit: number): number {
  let depth = 0;
  let count = 0;
  let inArray = false; // the container at `level` is an array
  let expect = false; // a value may start here (after its array's "[" or a ",")
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) continue;
    if (depth === level && inArray) {
      if (c === 0x2c) {
        expect = true;
        continue;
      }
      if (expect && c !== 0x5d && c !== 0x7d) {
        expect = false;
        if (++count > limit) return count;
      }
    }
    if (c === 0x22) {
      i = closingQuote(text, i);
      if (i < 0) return count;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth === level) {
        inArray = c === 0x5b;
        expect = inArray;
      }
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return count;
}

/** What the parsers take for a line that is not blank (`line.trim() !== ''`: the same whitespace). */
const NON_SPACE = /\S/g;

/** Non-blank lines of an NDJSON text, counting stops once past `limit`. */
export function linesIn(text: string, limit: number): number {
  let count = 0;
  for (let start = 0; ;) {
    NON_SPACE.lastIndex = start;
    const found = NON_SPACE.exec(text);
    if (found === null || ++count > limit) return count;
    const end = text.indexOf('\n', found.index);
    if (end < 0) return count;
    start = end + 1;
  }
}

/**
 * The index of the quote closing the string opened at `open`, or -1: the
 * next quote preceded by an even run of backslashes (the run cannot reach
 * back past the opening quote, which is no backslash).
 */
function closingQuote(text: string, open: number): number {
  let i = open;
  for (;;) {
    const q = text.indexOf('"', i + 1);
    if (q < 0) return -1;
    i = q;
    let b = q - 1;
    while (text.charCodeAt(b) === 0x5c) b--;
    if (((q - 1 - b) & 1) === 0) return q;
  }
}

/** An exponent of three digits, or 309 digits in a row: where a number out of a double's range can be. */
// (?<!\d): tried only where a run of digits starts, or a body of long digit runs costs seconds (found by a code review).
const MAYBE_UNSAFE = /[eE]\+?\d{3}|(?<!\d)\d{309}/;

const isNumberChar = (c: number) => (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d;

/**
 * The first number of a JSON text out of a double's range: JSON.parse reads
 * 1e400 as Infinity, which was stored as null (CouchDB refuses it). The
 * common text (no 3-digit exponent, no 309 digits in a row) costs one
 * native regular-expression scan; the rest is walked, strings skipped.
 *
 * Integers beyond ±2^53 pass, rounded to the nearest double as JSON.parse
 * reads them: nanosecond timestamps (1.8e18, the seed's HTTP logs) are
 * among them, and refusing them would refuse the logs couchlog is for.
 * Storing them exactly would take forwarding their text (README, Bodies).
 */
export function unsafeNumberIn(text: string): string | null {
  if (!MAYBE_UNSAFE.test(text)) return null;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      i = closingQuote(text, i);
      if (i < 0) return null;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1;
      while (j < text.length && isNumberChar(text.charCodeAt(j))) j++;
      const token = text.slice(i, j);
      const n = Number(token);
      if (!Number.isFinite(n)) return token;
      i = j - 1;
    }
  }
  return null;
}

/** The 400 for an unsafe number (unsafeNumberIn). */
export function unsafeNumberError(token: string, where: string) {
  return badRequest(
    'INGRESS_UNSAFE_NUMBER',
    `${where} holds the number ${token.length > 40 ? `${token.slice(0, 40)}...` : token}, which is out of range: send it as a string`,
  );
}

/**
 * A body's bytes as text, refused unless they are UTF-8 (as JSON must be):
 * decoding would turn each bad byte into U+FFFD, so different bodies would
 * store the same content and the same ids, where CouchDB itself refuses them.
 */
export function utf8Text(raw: Buffer, where = 'request body'): string {
  if (!isUtf8(raw)) throw badRequest('INGRESS_INVALID_JSON', `${where} is not valid UTF-8`);
  return raw.toString('utf8');
}

export function parseJson(text: string, where = 'request body', maxDepth = Infinity): unknown {
  if (text.trim() === '') throw badRequest('INGRESS_EMPTY_BODY', `${where} is empty`);
  if (Number.isFinite(maxDepth) && tooDeepAt(text, maxDepth) >= 0) {
    throw badRequest('INGRESS_TOO_DEEP', `${where} is nested deeper than ${maxDepth} levels`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // A RangeError means nesting deep enough to overflow the parser's stack.
    const detail = err instanceof RangeError ? 'nested too deeply' : (err as Error).message;
    throw badRequest('INGRESS_INVALID_JSON', `${where} is not valid JSON: ${detail}`);
  }
  const lone = loneSurrogateIn(text, value);
  if (lone !== null) throw loneSurrogateError(lone, where);
  const unsafe = unsafeNumberIn(text);
  if (unsafe !== null) throw unsafeNumberError(unsafe, where);
  return value;
}

/** One JSON value per line; blank lines are skipped; errors name the line. More than `maxDocs` lines are refused before any is parsed. */
export function parseNdjson(text: string, maxDepth = Infinity, maxDocs = Infinity): unknown[] {
  if (Number.isFinite(maxDocs)) checkCountBeforeParsing(linesIn(text, maxDocs), { maxDocs });
  const docs: unknown[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    docs.push(parseJson(line, `line ${i + 1}`, maxDepth));
  }
  if (docs.length === 0) throw badRequest('INGRESS_EMPTY_BODY', 'request body holds no documents');
  return docs;
}
