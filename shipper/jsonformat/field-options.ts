// `--fields machine=server,env=prod` (constants added to every object) and
// `--types port=int,bytes=int` (conversions of captured values).
import { UsageError } from '../../lib/errors.js';

export const FIELD_TYPES = ['string', 'int', 'float', 'bool'] as const;
export type FieldType = (typeof FIELD_TYPES)[number];

const KEY = /^[A-Za-z][A-Za-z0-9_]*$/;

/**
 * Parses `a=1,b=2` (option given once or more). A value may contain `=`;
 * `\,` is a literal comma. Later occurrences of a key win.
 */
export function parseAssignments(values: string[], option: string): Array<[string, string]> {
  const out = new Map<string, string>();
  for (const value of values) {
    for (const item of splitUnescaped(value)) {
      if (item.trim() === '') continue;
      const eq = item.indexOf('=');
      if (eq <= 0) throw new UsageError(`${option}: expected name=value, got ${JSON.stringify(item)}`);
      const key = item.slice(0, eq).trim();
      if (!KEY.test(key)) throw new UsageError(`${option}: ${JSON.stringify(key)} is not a field name (a letter, then letters, digits or "_")`);
      out.set(key, item.slice(eq + 1));
    }
  }
  return [...out];
}

function splitUnescaped(value: string): string[] {
  const items: string[] = [];
  let cur = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '\\' && value[i + 1] === ',') {
      cur += ',';
      i++;
    } else if (c === ',') {
      items.push(cur);
      cur = '';
    } else {
      cur += c;
    }
  }
  items.push(cur);
  return items;
}

export function parseTypes(values: string[]): Map<string, FieldType> {
  const types = new Map<string, FieldType>();
  for (const [key, type] of parseAssignments(values, '--types')) {
    if (!(FIELD_TYPES as readonly string[]).includes(type)) {
      throw new UsageError(`--types: ${key}=${type}: the type must be one of ${FIELD_TYPES.join(', ')}`);
    }
    types.set(key, type as FieldType);
  }
  return types;
}

const INT = /^[-+]?\d+$/;
const FLOAT = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;
const TRUE = new Set(['true', 'yes', 'on', '1']);
const FALSE = new Set(['false', 'no', 'off', '0']);

/**
 * The JSON text of `value` converted to `type`, or undefined when it does
 * not convert. `-` (what access logs write for "no value") becomes null.
 */
export function convertValue(value: string, type: Exclude<FieldType, 'string'>): string | undefined {
  if (value === '-') return 'null';
  switch (type) {
    case 'int': {
      if (!INT.test(value)) return undefined;
      const n = Number(value);
      return Number.isSafeInteger(n) ? String(n) : undefined;
    }
    case 'float': {
      if (!FLOAT.test(value)) return undefined;
      const n = Number(value);
      return Number.isFinite(n) ? String(n) : undefined;
    }
    case 'bool': {
      const v = value.toLowerCase();
      return TRUE.has(v) ? 'true' : FALSE.has(v) ? 'false' : undefined;
    }
  }
}
