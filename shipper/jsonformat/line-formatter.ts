// Turns one log line into the JSON text of one object, with a compiled
// schema, constant fields and type conversions. The JSON is built as text
// from precomputed key prefixes: no intermediate object, no JSON.stringify
// unless a value holds a character JSON must escape. Most schemas also get
// a byte path (byte-formatter.ts) for the jsonformat loop.
import { UsageError } from '../../lib/errors.js';
import { ByteFormatter } from './byte-formatter.js';
import { compileSchema, type Capture, type CompiledSchema } from './schema.js';
import { convertValue, type FieldType } from './field-options.js';

export interface FormatterOptions {
  schema: string;
  /** Constants added after the captures, in this order. */
  fields?: Array<[string, string]>;
  types?: Map<string, FieldType>;
}

/** What made a line fail; set when format() returns null. */
export interface Mismatch {
  reason: string;
}

/** A character JSON strings must escape: `"`, `\` or a control character. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f]/;

export class LineFormatter {
  readonly schema: CompiledSchema;
  /** The reason the last format() returned null. */
  lastMismatch: Mismatch = { reason: '' };
  /**
   * The text before each value: the previous value's closing quote, the
   * key, and this value's opening quote when it is a string. Built once,
   * so a line costs one regex exec and one string of 2n+1 pieces.
   */
  private readonly before: string[];
  private readonly kinds: Array<FieldType | 'quoted'>;
  private readonly end: string;
  /**
   * The same conversion from bytes to bytes for the lines it can decide
   * (format-stream.ts asks format() for the others); null when the schema
   * has no simple plan.
   */
  readonly bytes: ByteFormatter | null;

  constructor(options: FormatterOptions) {
    this.schema = compileSchema(options.schema);
    const types = options.types ?? new Map<string, FieldType>();
    const fields = options.fields ?? [];
    const captured = new Set(this.schema.captures.map((c) => c.name));
    for (const [key] of fields) {
      if (captured.has(key)) throw new UsageError(`--fields: ${key} is also captured by the schema`);
    }
    for (const key of types.keys()) {
      if (!captured.has(key) && !fields.some(([k]) => k === key)) {
        throw new UsageError(`--types: ${key} is neither captured by the schema nor given in --fields`);
      }
    }
    this.kinds = this.schema.captures.map((c) => kindOf(c, types));
    const quote = (i: number) => (i >= 0 && isString(this.kinds[i]!) ? '"' : '');
    this.before = this.schema.captures.map((c, i) => `${quote(i - 1)}${i === 0 ? '{' : ','}${JSON.stringify(c.name)}:${quote(i)}`);
    this.end = quote(this.kinds.length - 1) + constantsJson(fields, types, this.schema.captures.length === 0) + '}';
    this.bytes = this.schema.simple ? new ByteFormatter(this.schema.simple, this.before, this.kinds, this.end) : null;
  }

  /** The JSON text of the line's object, or null (see lastMismatch). */
  format(line: string): string | null {
    // CRLF files: the \r is not part of the last value.
    if (line.charCodeAt(line.length - 1) === 13) line = line.slice(0, -1);
    // Most lines have nothing to escape: plainRegex then matches and its
    // captures go into the JSON as they are.
    let m = this.schema.plainRegex.exec(line);
    const plain = m !== null;
    if (m === null) m = this.schema.regex.exec(line);
    if (m === null) {
      this.lastMismatch = { reason: 'does not match the schema' };
      return null;
    }
    let out = '';
    const n = this.before.length;
    for (let i = 0; i < n; i++) {
      let value = m[i + 1] ?? '';
      const kind = this.kinds[i]!;
      if (kind === 'string' || kind === 'quoted') {
        if (kind === 'quoted' && value.includes('\\')) value = unescapeQuoted(value);
        if (!plain && NEEDS_ESCAPE.test(value)) value = JSON.stringify(value).slice(1, -1);
      } else {
        const json = convertValue(value, kind);
        if (json === undefined) {
          this.lastMismatch = { reason: `${this.schema.captures[i]!.name}: ${JSON.stringify(value)} is not ${kind === 'int' ? 'an' : 'a'} ${kind}` };
          return null;
        }
        value = json;
      }
      out += this.before[i]! + value;
    }
    return out + this.end;
  }
}

function isString(kind: FieldType | 'quoted'): boolean {
  return kind === 'string' || kind === 'quoted';
}

/** Quoted captures decode `\"` and `\\` (Apache's escapes); anything else stays as written. */
function unescapeQuoted(value: string): string {
  return value.replace(/\\(["\\])/g, '$1');
}

function kindOf(c: Capture, types: Map<string, FieldType>): FieldType | 'quoted' {
  const type = types.get(c.name) ?? 'string';
  if (type === 'string' && c.kind === 'quoted') return 'quoted';
  return type;
}

function constantsJson(fields: Array<[string, string]>, types: Map<string, FieldType>, first: boolean): string {
  let out = '';
  fields.forEach(([key, value], i) => {
    const type = types.get(key) ?? 'string';
    const json = type === 'string' ? JSON.stringify(value) : convertValue(value, type);
    if (json === undefined) throw new UsageError(`--fields: ${key}=${value} is not ${type === 'int' ? 'an' : 'a'} ${type}`);
    out += `${first && i === 0 ? '{' : ','}${JSON.stringify(key)}:${json}`;
  });
  if (first && fields.length === 0) out = '{';
  return out;
}
