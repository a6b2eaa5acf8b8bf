// Turns design-document source functions into the strings CouchDB stores.

/** A design document as CouchDB stores it, minus `_rev`. */
export interface DesignDoc {
  _id: string;
  language: 'javascript';
  [field: string]: unknown;
}

/** The function's own source: what CouchDB evaluates. */
export function fnSource(fn: (...args: never[]) => unknown): string {
  const src = fn.toString();
  // Named functions serialize as `function name(...)`; CouchDB wants an
  // anonymous function expression.
  return src.replace(/^function\s+[A-Za-z0-9_$]*\s*\(/, 'function (');
}

/** Fields that CouchDB owns: ignored when deciding whether a push is needed. */
const SERVER_FIELDS = new Set(['_rev', '_revisions', '_conflicts']);

/** Same content, whatever the key order and server-side fields. */
export function sameDesignDoc(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  return canonical(strip(a)) === canonical(strip(b));
}

function strip(doc: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(doc).filter(([k]) => !SERVER_FIELDS.has(k)));
}

export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
