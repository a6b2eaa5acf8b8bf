// --truncate without --state: the generation of a file's document ids.
// Ids are <source key><offset><content hash> (doc-id.ts), and a run with
// --truncate removes what it stored, so the next run's lines start again
// at offset 0. With the same source key, a new line identical to an old
// one at the same offset (a message without a timestamp, repeated) got
// the id of a document already stored: "already stored", and then
// truncated away, lost. So each run that removed something raises the
// file's generation, kept next to the file, and the next run's ids are new.
//
// What must stay true: the generation is raised only after the removal
// succeeded (a run that fails before leaves the file as it was, and its
// next run sends the same lines with the same ids: stored once). A crash
// between the removal and the save keeps the old generation: only a line
// identical to one of the removed ones, at its very offset, could then be
// taken for it.
import { readFileSync } from 'node:fs';
import { OperationError } from '../lib/errors.js';
import { writeFileDurably } from '../lib/durable-file.js';

export const generationFile = (path: string): string => `${path}.couchlog-ship.generation`;

/** The file's current generation: 0 before its first truncation (the ids couchlog gave before there was one). */
export function readGeneration(path: string): number {
  const file = generationFile(path);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw new OperationError(`${file}: ${(err as Error).message}`);
  }
  const generation = (JSON.parse(text) as { generation?: unknown }).generation;
  if (typeof generation !== 'number' || !Number.isSafeInteger(generation) || generation < 0)
    throw new OperationError(
      `${file} is not a couchlog-ship generation file; move it away only if the log file was emptied too (else lines may be taken for stored ones)`,
    );
  return generation;
}

export function saveGeneration(path: string, generation: number): void {
  writeFileDurably(generationFile(path), `${JSON.stringify({ generation })}\n`);
}
