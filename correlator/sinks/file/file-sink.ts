// JSON lines appended to a file; SIGHUP reopens it, so logrotate can move
// the file away and the next records go to a fresh one.
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import type { Sink, SinkRecord } from '../sink.js';

export class FileSink implements Sink {
  readonly name = 'file';
  private stream: WriteStream;
  private pending = 0;
  failingSince: number | null = null;

  constructor(readonly path: string) {
    this.stream = this.open();
  }

  private open(): WriteStream {
    mkdirSync(dirname(this.path), { recursive: true });
    const stream = createWriteStream(this.path, { flags: 'a', mode: 0o640 });
    stream.on('error', () => {
      this.failingSince ??= Date.now();
    });
    return stream;
  }

  get backlog(): number {
    return this.pending;
  }

  get full(): boolean {
    return this.stream.writableNeedDrain;
  }

  write(records: SinkRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    const text = records.map((r) => JSON.stringify({ id: r.id, ...r.record })).join('\n') + '\n';
    this.pending += records.length;
    return new Promise((resolve) => {
      const attempt = (stream: WriteStream) =>
        stream.write(text, (err) => {
          if (err) {
            // The file went away under us (disk full, removed): reopen and retry.
            this.failingSince ??= Date.now();
            setTimeout(() => attempt((this.stream = this.open())), 1000);
            return;
          }
          this.failingSince = null;
          this.pending -= records.length;
          resolve();
        });
      attempt(this.stream);
    });
  }

  async reopen(): Promise<void> {
    const old = this.stream;
    this.stream = this.open();
    await new Promise<void>((resolve) => old.end(resolve));
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.stream.end(resolve));
  }
}
