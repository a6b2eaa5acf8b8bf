// Records a sink can never deliver (the server refuses them for good) go
// to a JSON-lines file with the reason, so nothing is lost silently and
// an operator can fix and replay them.
import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { SinkRecord } from './sink.js';

export class DeadLetterFile {
  constructor(readonly path: string) {}

  async add(sink: string, rec: SinkRecord, err: unknown): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    const line = JSON.stringify({ sink, id: rec.id, reason: (err as Error).message ?? String(err), at: new Date().toISOString(), record: rec.record });
    await appendFile(this.path, `${line}\n`, { mode: 0o600 });
  }
}
