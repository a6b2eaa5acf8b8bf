// Deterministic document ids: the same line of the same source always gets
// the same _id, so a batch sent again (an answer lost, a run that failed
// half-way and is run again) stores nothing twice: the ingress answers 409
// for an id it already holds, and that counts as stored.
//
//   <source key, 12 hex> <byte offset, 12 hex> <content hash, 16 hex>
//
// - the source key hashes the source's identity (--source-id, else the
//   file's absolute path, else "stdin") and its generation (a counter the
//   --state file raises when the file is rotated or truncated, so a new
//   line at an old offset is a new document);
// - the offset orders a source's documents in _all_docs (and keeps
//   CouchDB's b-tree appends local);
// - the content hash makes a rewritten file's different line at a known
//   offset a different document.
import { createHash, hash as oneShotHash } from 'node:crypto';

export function sourceKey(sourceId: string, generation: number): string {
  return createHash('sha256').update(`${sourceId}\0${generation}`).digest('hex').slice(0, 12);
}

/** The id of the document made of the line(s) whose first byte is at `offset`. */
export function docId(key: string, offset: number, content: string | readonly string[]): string {
  return `${key}${offset.toString(16).padStart(12, '0')}${contentHash(content).slice(0, 16)}`;
}

/** SHA-256 in hex; the one-shot form for a single line is several times cheaper than a Hash object. */
function contentHash(content: string | readonly string[]): string {
  if (typeof content === 'string') return oneShotHash('sha256', content, 'hex');
  const hash = createHash('sha256');
  for (const part of content) hash.update(part).update('\n');
  return hash.digest('hex');
}

/** The document's JSON text with `_id` first; `json` is an object's JSON text. */
export function withId(json: string, id: string): string {
  const rest = json.slice(1).trimStart();
  return `{"_id":${JSON.stringify(id)}${rest.startsWith('}') ? '' : ','}${rest}`;
}
