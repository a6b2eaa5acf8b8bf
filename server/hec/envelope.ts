// HEC request bodies -> log documents. The event endpoint takes JSON
// envelopes, concatenated or one per line; the raw endpoint one event per
// line with metadata from the query string. Everything is checked before
// anything is written: one bad event refuses the whole request, naming it
// (`invalid-event-number`, counted from 0).
//
// Document shape (docs: README "Splunk HEC"):
//  - an object `event` is the document itself, as if POSTed to /log_<app>;
//    anything else is stored as {"message": event};
//  - `time` (epoch seconds, fractions kept to the ms) becomes `time` as
//    RFC 3339 UTC, which the correlator and the by_time report read;
//  - `host`, `source`, `sourcetype` and the `fields` members are added as
//    top-level fields; the event's own fields of the same name win;
//  - `index` picks the app (database), it is not stored;
//  - an event's own `_id` is kept (as on POST /log_<app>); one already
//    stored counts as stored, so a shipper's retry is not stored twice.
import { CouchlogError } from '../../lib/errors.js';
import { checkCountBeforeParsing, loneSurrogateIn, validateDoc, type DocRules, type LogDoc } from '../write/validate-docs.js';
import { linesIn, unsafeNumberIn } from '../write/parse-body.js';
import { HecError } from './errors.js';
import type { WriteToken } from './tokens.js';

export interface HecDoc {
  app: string;
  doc: LogDoc;
}

/** Request-wide defaults: the raw endpoint's query parameters. */
export interface HecDefaults {
  host?: string;
  source?: string;
  sourcetype?: string;
  index?: string;
  time?: string;
}

const META = ['host', 'source', 'sourcetype'] as const;

/**
 * Splits a body of concatenated or newline-separated JSON values. Scans for
 * the end of each top-level object (strings and escapes respected) and
 * parses each one on its own, so an error names its event. The nesting is
 * checked while scanning, before JSON.parse, for every member of the
 * envelope (`time`, `index`, `fields` as much as `event`): an event may be
 * `maxDepth` deep, its envelope one more. (Found by a black-box test: a
 * `time` nested 250,000 deep overflowed the stack and answered 500, which
 * HEC clients retry for ever.)
 */
export function splitEnvelopes(text: string, maxDepth: number, maxEvents = Infinity): unknown[] {
  const out: unknown[] = [];
  const n = text.length;
  let i = 0;
  while (true) {
    while (i < n && isSpace(text.charCodeAt(i))) i++;
    if (i >= n) break;
    // Refused at the first event past the limit, not after parsing them all.
    if (out.length === maxEvents) checkCountBeforeParsing(maxEvents + 1, { maxDocs: maxEvents });
    const start = i;
    const index = out.length;
    if (text.charCodeAt(i) !== 0x7b /* { */) throw new HecError('INVALID_DATA_FORMAT', index, {}, 'an event envelope must be a JSON object');
    let depth = 0;
    let inString = false;
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (inString) {
        if (c === 0x5c /* \ */) i++;
        else if (c === 0x22 /* " */) inString = false;
      } else if (c === 0x22) inString = true;
      else if (c === 0x7b || c === 0x5b) {
        if (++depth > maxDepth + 1)
          throw new HecError('INVALID_DATA_FORMAT', index, {}, `event ${index} is nested deeper than ${maxDepth} levels (ingress.max_json_depth)`);
      } else if (c === 0x7d || c === 0x5d) {
        depth--;
        if (depth === 0) {
          i++;
          break;
        }
      }
    }
    if (depth !== 0) throw new HecError('INVALID_DATA_FORMAT', index, {}, 'the last event envelope is incomplete');
    const envelope = text.slice(start, i);
    let value: unknown;
    try {
      value = JSON.parse(envelope);
    } catch (err) {
      throw new HecError('INVALID_DATA_FORMAT', index, {}, `event ${index} is not valid JSON: ${(err as Error).message}`);
    }
    if (loneSurrogateIn(envelope, value) !== null)
      throw new HecError('INVALID_DATA_FORMAT', index, {}, `event ${index} holds a string that is not valid Unicode (a lone surrogate)`);
    const unsafe = unsafeNumberIn(envelope);
    if (unsafe !== null)
      throw new HecError(
        'INVALID_DATA_FORMAT',
        index,
        {},
        `event ${index} holds the number ${unsafe.slice(0, 40)}, which is out of range: send it as a string`,
      );
    out.push(value);
  }
  if (out.length === 0) throw new HecError('NO_DATA');
  return out;
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** The app an `index` names (`web` or `log_web`), if the token may write there. */
export function appOfIndex(index: unknown, token: WriteToken, eventNumber?: number): string {
  if (index === undefined || index === null || index === '') return token.apps[0]!;
  if (typeof index === 'string') {
    if (token.apps.includes(index)) return index;
    if (index.startsWith('log_') && token.apps.includes(index.slice(4))) return index.slice(4);
  }
  throw new HecError('INCORRECT_INDEX', eventNumber, {}, `token "${token.name}" may not write to index ${described(index)}`);
}

/** A value for an error message: short strings and numbers as JSON, anything else by its kind (never the whole of it). */
function described(value: unknown): string {
  if (typeof value === 'string') return value.length <= 64 ? JSON.stringify(value) : `${JSON.stringify(value.slice(0, 64))}…`;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return Array.isArray(value) ? 'an array' : value === null ? 'null' : `an ${typeof value}`;
}

/** HEC time (epoch seconds, number or numeric string) as RFC 3339 UTC with ms. */
export function hecTime(value: unknown, eventNumber?: number): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const seconds = typeof value === 'number' ? value : typeof value === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(value) ? Number(value) : NaN;
  const ms = Math.round(seconds * 1000);
  if (!Number.isFinite(ms) || ms < 0 || ms > 253402300799999) {
    throw new HecError('INVALID_DATA_FORMAT', eventNumber, {}, `time must be epoch seconds, got ${described(value)}`);
  }
  return new Date(ms).toISOString();
}

function checkRules(doc: LogDoc, rules: DocRules, i: number): LogDoc {
  try {
    return validateDoc(doc, rules, `event ${i}`);
  } catch (err) {
    if (err instanceof CouchlogError) throw new HecError('INVALID_DATA_FORMAT', i, {}, err.message);
    throw err;
  }
}

/** One envelope of the event endpoint as a document of its app. */
export function envelopeToDoc(value: unknown, i: number, token: WriteToken, rules: DocRules, defaults: HecDefaults = {}): HecDoc {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new HecError('INVALID_DATA_FORMAT', i, {}, 'an event envelope must be a JSON object');
  }
  const env = value as Record<string, unknown>;
  const event = env.event;
  if (event === undefined || event === null) throw new HecError('EVENT_REQUIRED', i);
  if (typeof event === 'string' && event.trim() === '') throw new HecError('EVENT_BLANK', i);
  const app = appOfIndex(env.index ?? defaults.index, token, i);
  const doc: LogDoc = typeof event === 'object' && !Array.isArray(event) ? (event as LogDoc) : { message: event };
  const time = hecTime(env.time ?? defaults.time, i);
  if (time !== undefined && doc.time === undefined) doc.time = time;
  for (const key of META) {
    const v = env[key] ?? defaults[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') throw new HecError('INVALID_DATA_FORMAT', i, {}, `${key} must be a string`);
    if (doc[key] === undefined) doc[key] = v;
  }
  const fields = env.fields;
  if (fields !== undefined && fields !== null) {
    if (typeof fields !== 'object' || Array.isArray(fields)) throw new HecError('INDEXED_FIELDS', i, {}, 'fields must be an object');
    for (const [k, v] of Object.entries(fields as Record<string, unknown>)) {
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) throw new HecError('INDEXED_FIELDS', i, {}, `fields.${k} must be a value or an array`);
      if (doc[k] === undefined) doc[k] = v;
    }
  }
  return { app, doc: checkRules(doc, rules, i) };
}

/** The raw endpoint: one event per non-blank line, metadata from the query string. */
export function rawToDocs(text: string, token: WriteToken, rules: DocRules, defaults: HecDefaults): HecDoc[] {
  checkCountBeforeParsing(linesIn(text, rules.maxDocs), rules);
  const app = appOfIndex(defaults.index, token);
  const time = hecTime(defaults.time);
  const out: HecDoc[] = [];
  for (const line of text.split('\n')) {
    const message = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (message.trim() === '') continue;
    const doc: LogDoc = { message };
    if (time !== undefined) doc.time = time;
    for (const key of META) if (defaults[key] !== undefined) doc[key] = defaults[key];
    out.push({ app, doc: checkRules(doc, rules, out.length) });
  }
  if (out.length === 0) throw new HecError('NO_DATA');
  return out;
}
