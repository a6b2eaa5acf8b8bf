// Turns a write request's raw body into JSON values. Document rules
// (nesting depth, reserved fields) are checked per document in validate-docs.
import { badRequest } from '../../lib/errors.js';

export function parseJson(text: string, where = 'request body'): unknown {
  if (text.trim() === '') throw badRequest('INGRESS_EMPTY_BODY', `${where} is empty`);
  try {
    return JSON.parse(text);
  } catch (err) {
    // A RangeError means nesting deep enough to overflow the parser's stack.
    const detail = err instanceof RangeError ? 'nested too deeply' : (err as Error).message;
    throw badRequest('INGRESS_INVALID_JSON', `${where} is not valid JSON: ${detail}`);
  }
}

/** One JSON value per line; blank lines are skipped; errors name the line. */
export function parseNdjson(text: string): unknown[] {
  const docs: unknown[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    docs.push(parseJson(line, `line ${i + 1}`));
  }
  if (docs.length === 0) throw badRequest('INGRESS_EMPTY_BODY', 'request body holds no documents');
  return docs;
}
