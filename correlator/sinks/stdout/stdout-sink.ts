// JSON lines on standard output (for piping into another tool).
import type { Sink, SinkRecord } from '../sink.js';

export class StdoutSink implements Sink {
  readonly name = 'stdout';
  readonly failingSince = null;
  private pending = 0;

  constructor(private readonly out: NodeJS.WritableStream = process.stdout) {}

  get backlog(): number {
    return this.pending;
  }

  get full(): boolean {
    return false;
  }

  write(records: SinkRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    this.pending += records.length;
    const text = records.map((r) => JSON.stringify({ id: r.id, ...r.record })).join('\n') + '\n';
    return new Promise((resolve) =>
      this.out.write(text, () => {
        this.pending -= records.length;
        resolve();
      }),
    );
  }

  async close(): Promise<void> {}
}
