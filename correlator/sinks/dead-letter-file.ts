// Records a sink can never deliver (the server refuses them for good) go
// to a JSON-lines file with the reason, so nothing is lost silently and
// an operator can fix and replay them. The line keeps everything the sink
// was given, not only the record: a replay must write the same `version`
// (ClickHouse's ReplacingMergeTree keeps the highest) and, for a record an
// admin change moved, the deletion rows at its `formerTimes`, or the row at
// the old time stays live. A record counts as set aside once
// its line is on disk, whole (LineAppender): a failed append leaves no
// fragment for the retry to be glued to.
import { LineAppender } from '../../lib/line-appender.js';
import type { SinkRecord } from './sink.js';

export class DeadLetterFile {
  private readonly file: LineAppender;

  constructor(readonly path: string) {
    this.file = new LineAppender(path, { mode: 0o600, sync: true });
  }

  async add(sink: string, rec: SinkRecord, err: unknown): Promise<void> {
    const line = JSON.stringify({
      sink,
      id: rec.id,
      reason: (err as Error).message ?? String(err),
      at: new Date().toISOString(),
      version: rec.version,
      deleted: rec.deleted,
      ...(rec.formerTimes !== undefined && rec.formerTimes.length > 0 ? { formerTimes: rec.formerTimes } : {}),
      record: rec.record,
    });
    await this.file.append(`${line}\n`);
  }

  close(): Promise<void> {
    return this.file.close();
  }
}
