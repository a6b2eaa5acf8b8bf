// The jsonformat schema language, compiled once into one anchored RegExp.
//
//   $date $hour _ _ _ \[$process\] _ $ip
//
// - Schema tokens are separated by whitespace and match the line's
//   whitespace-separated tokens (any run of spaces or tabs).
// - `$name` captures (a whole token, or the part of a token between literal
//   characters); `_` skips one token.
// - Every other character is a literal that must be there; `\` makes the
//   next character literal (`\[`, `\]`, `\"`, `\$`, `\\`, `\_`).
// - `"$name"` captures a double-quoted field that may contain spaces (with
//   `\"` and `\\` inside decoded); `[$name]` captures a bracketed field that
//   may contain spaces (`[10/Oct/2000:13:55:36 -0700]`). `"_"` and `[_]` skip one.
// - `$name...` as the last token captures the rest of the line (possibly
//   empty); `_...` ignores it. Without one, a line with more tokens than the
//   schema does not match.
// V8 compiles the RegExp to machine code; a line then costs one exec().
// Most schemas also compile to a plan for a byte scanner (`simple`, run by
// byte-formatter.ts), which decides the common lines without the RegExp.
import { UsageError } from '../../lib/errors.js';

export type CaptureKind = 'token' | 'quoted' | 'bracketed' | 'rest';

export interface Capture {
  name: string;
  kind: CaptureKind;
}

export interface CompiledSchema {
  source: string;
  captures: Capture[];
  /** Anchored at both ends; group i+1 is captures[i]. */
  regex: RegExp;
  /**
   * The same schema, except that captures may not hold `"`, `\` or control
   * characters. When it matches, its captures are exactly regex's (it tries
   * the same paths in the same order and accepts a subset of them) and go
   * into JSON as they are; when it does not, regex decides.
   */
  plainRegex: RegExp;
  /**
   * The schema as a byte scanner runs it (byte-formatter.ts), when every
   * token is one the RegExp matches without a choice to make: `_`, a
   * literal, `$name` with an optional literal before and after it, a
   * token that is only "$name", [$name], "_" or [_], and a last `$name...`
   * or `_...`; every literal printable ASCII. Null: the RegExps only.
   */
  simple: SimpleToken[] | null;
}

/** One schema token of CompiledSchema.simple; cap: the index in captures, -1 for a skip. */
export type SimpleToken =
  | { t: 'skip' }
  | { t: 'lit'; text: string }
  | { t: 'cap'; cap: number; prefix: string; suffix: string }
  | { t: 'quoted'; cap: number }
  | { t: 'bracketed'; cap: number }
  | { t: 'rest'; cap: number };

/** Names become JSON keys and CouchDB fields: no leading `_` (reserved by CouchDB). */
const NAME_START = /[A-Za-z]/;
const NAME_CHAR = /[A-Za-z0-9_]/;
const WS = '[ \\t]';
/** What a captured or skipped token may hold: anything but whitespace. */
const NOT_WS = '[^ \\t]';
/** ...and in a plain capture, nothing JSON must escape either. */
const PLAIN = '[^ \\t"\\\\\\u0000-\\u001f]';
const PLAIN_ANY = '[^"\\\\\\u0000-\\u001f]';
const PLAIN_IN_BRACKETS = '[^\\]"\\\\\\u0000-\\u001f]';

type Part = { t: 'lit'; text: string } | { t: 'cap'; name: string } | { t: 'quoted'; name: string | null } | { t: 'bracketed'; name: string | null };

type Token = { t: 'skip' } | { t: 'skip-rest' } | { t: 'rest'; name: string } | { t: 'parts'; parts: Part[] };

export class SchemaError extends UsageError {
  constructor(schema: string, at: number, problem: string) {
    super(`bad schema ${JSON.stringify(schema)} at character ${at + 1}: ${problem}`);
  }
}

export function compileSchema(schema: string): CompiledSchema {
  const tokens = tokenize(schema);
  if (tokens.length === 0) throw new SchemaError(schema, 0, 'the schema is empty');
  tokens.forEach((tok, i) => {
    if ((tok.t === 'rest' || tok.t === 'skip-rest') && i !== tokens.length - 1) {
      throw new SchemaError(schema, schema.indexOf('...'), '"..." (the rest of the line) must be the last token');
    }
  });
  const captures: Capture[] = [];
  const regex = schemaRegex(tokens, false, captures);
  checkNames(schema, captures);
  return { source: schema, captures, regex, plainRegex: schemaRegex(tokens, true, []), simple: simplePlan(tokens) };
}

/** See CompiledSchema.simple. */
function simplePlan(tokens: Token[]): SimpleToken[] | null {
  const plan: SimpleToken[] = [];
  let cap = 0;
  const printable = (text: string) => /^[\x21-\x7e]*$/.test(text);
  for (const tok of tokens) {
    if (tok.t === 'skip') plan.push({ t: 'skip' });
    else if (tok.t === 'skip-rest') plan.push({ t: 'rest', cap: -1 });
    else if (tok.t === 'rest') plan.push({ t: 'rest', cap: cap++ });
    else {
      const { parts } = tok;
      const caps = parts.filter((p) => p.t !== 'lit');
      if (parts.some((p) => p.t === 'lit' && !printable(p.text))) return null;
      if (caps.length === 0) {
        plan.push({ t: 'lit', text: parts.map((p) => (p.t === 'lit' ? p.text : '')).join('') });
        continue;
      }
      const only = caps[0]!;
      if (caps.length > 1) return null;
      if (only.t === 'quoted' || only.t === 'bracketed') {
        if (parts.length !== 1) return null;
        plan.push({ t: only.t, cap: only.name === null ? -1 : cap++ });
        continue;
      }
      const at = parts.indexOf(only);
      const lit = (p: Part | undefined) => (p?.t === 'lit' ? p.text : '');
      plan.push({ t: 'cap', cap: cap++, prefix: lit(parts[at - 1]), suffix: lit(parts[at + 1]) });
    }
  }
  return plan;
}

function schemaRegex(tokens: Token[], plain: boolean, captures: Capture[]): RegExp {
  let body = '';
  tokens.forEach((tok, i) => {
    if (tok.t === 'rest' || tok.t === 'skip-rest') {
      // The rest may be empty, so its separator is optional.
      if (tok.t === 'rest') captures.push({ name: tok.name, kind: 'rest' });
      const inner = tok.t === 'rest' ? (plain ? `(${PLAIN_ANY}*?)` : '(.*?)') : '.*?';
      body += i === 0 ? inner : `(?:${WS}+${inner})?`;
      return;
    }
    if (i > 0) body += `${WS}+`;
    body += tokenRegex(tok, plain, captures);
  });
  // dotAll: a line is cut at "\n" only, so `.` must also take U+2028/U+2029
  // (as the plain regex's classes do: it may only accept a subset).
  return new RegExp(`^${WS}*${body}${WS}*$`, 's');
}

function tokenRegex(tok: Token, plain: boolean, captures: Capture[]): string {
  if (tok.t === 'skip') return `${NOT_WS}+`;
  if (tok.t !== 'parts') throw new Error('unreachable');
  const { parts } = tok;
  const cls = plain ? PLAIN : NOT_WS;
  let re = '';
  parts.forEach((p, j) => {
    switch (p.t) {
      case 'lit':
        re += escapeRegex(p.text);
        return;
      case 'quoted':
        if (p.name) captures.push({ name: p.name, kind: 'quoted' });
        if (!p.name) re += '"(?:[^"\\\\]|\\\\.)*"';
        else re += plain ? `"(${PLAIN_ANY}*)"` : '"((?:[^"\\\\]|\\\\.)*)"';
        return;
      case 'bracketed':
        if (p.name) captures.push({ name: p.name, kind: 'bracketed' });
        if (!p.name) re += '\\[[^\\]]*\\]';
        else re += plain ? `\\[(${PLAIN_IN_BRACKETS}*)\\]` : '\\[([^\\]]*)\\]';
        return;
      case 'cap': {
        captures.push({ name: p.name, kind: 'token' });
        const alone = parts.length === 1;
        const atEnd = j === parts.length - 1;
        // Non-greedy before a literal: `$host:$port` splits at the first ':'
        // that lets the rest of the token match.
        re += alone ? `(${cls}+)` : atEnd ? `(${cls}*)` : `(${cls}*?)`;
        return;
      }
    }
  });
  return re;
}

function checkNames(schema: string, captures: Capture[]): void {
  const seen = new Set<string>();
  for (const c of captures) {
    if (seen.has(c.name)) throw new SchemaError(schema, schema.indexOf(`$${c.name}`), `$${c.name} is captured twice`);
    seen.add(c.name);
  }
}

function escapeRegex(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}

/** Splits the schema into tokens and each token into parts. */
function tokenize(schema: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = schema.length;
  const isWs = (c: string | undefined) => c === ' ' || c === '\t' || c === '\n' || c === '\r';
  while (i < n) {
    while (i < n && isWs(schema[i])) i++;
    if (i >= n) break;
    const start = i;
    while (i < n && !isWs(schema[i])) {
      // An escaped character (even whitespace) belongs to the token.
      if (schema[i] === '\\') i++;
      i++;
    }
    if (i > n) i = n;
    tokens.push(parseToken(schema, start, i));
  }
  return tokens;
}

function parseToken(schema: string, start: number, end: number): Token {
  const text = schema.slice(start, end);
  if (text === '_') return { t: 'skip' };
  if (text === '_...') return { t: 'skip-rest' };
  const rest = /^\$([A-Za-z][A-Za-z0-9_]*)\.\.\.$/.exec(text);
  if (rest) return { t: 'rest', name: rest[1]! };
  if (text.endsWith('...') && !text.endsWith('\\...') && text.includes('$')) {
    throw new SchemaError(schema, start, '"$name..." must be a token of its own');
  }
  const parts: Part[] = [];
  const lit = (c: string) => {
    const prev = parts[parts.length - 1];
    if (prev?.t === 'lit') prev.text += c;
    else parts.push({ t: 'lit', text: c });
  };
  let i = start;
  while (i < end) {
    const c = schema[i]!;
    if (c === '\\') {
      if (i + 1 >= end) throw new SchemaError(schema, i, 'a "\\" must be followed by the character it makes literal');
      lit(schema[i + 1]!);
      i += 2;
      continue;
    }
    if (c === '$') {
      const [name, next] = readName(schema, i + 1, end);
      pushCapture(schema, i, parts, { t: 'cap', name });
      i = next;
      continue;
    }
    if (c === '"' || c === '[') {
      const close = c === '"' ? '"' : ']';
      const kind = c === '"' ? 'quoted' : 'bracketed';
      let name: string | null;
      let next: number;
      if (schema[i + 1] === '_' && schema[i + 2] === close) {
        name = null;
        next = i + 3;
      } else if (schema[i + 1] === '$') {
        [name, next] = readName(schema, i + 2, end);
        if (schema[next] !== close) throw new SchemaError(schema, next, `${c}$${name} must be closed by ${close} right after the name`);
        next++;
      } else {
        throw new SchemaError(schema, i, `an unescaped ${c} opens a ${kind} capture (${c}$name${close} or ${c}_${close}); write \\${c} for a literal ${c}`);
      }
      pushCapture(schema, i, parts, { t: kind, name });
      i = next;
      continue;
    }
    if (c === ']') throw new SchemaError(schema, i, 'write \\] for a literal ]');
    lit(c);
    i++;
  }
  return { t: 'parts', parts };
}

function readName(schema: string, from: number, end: number): [string, number] {
  if (from >= end || !NAME_START.test(schema[from]!)) {
    throw new SchemaError(schema, from - 1, 'a "$" must be followed by a name starting with a letter (write \\$ for a literal $)');
  }
  let j = from + 1;
  while (j < end && NAME_CHAR.test(schema[j]!)) j++;
  return [schema.slice(from, j), j];
}

/** Two captures side by side would have no boundary between them. */
function pushCapture(schema: string, at: number, parts: Part[], part: Part): void {
  const prev = parts[parts.length - 1];
  if (prev && prev.t !== 'lit') throw new SchemaError(schema, at, 'two captures in one token need a literal character between them');
  parts.push(part);
}
