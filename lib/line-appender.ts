// Appends whole JSON lines to a file: the correlator's file sink, the
// dead-letter files of the correlator and of the forwarder. What must stay true:
//  - an append is all of its text or, to a reader, nothing: when a write
//    fails half-way (disk full), the part already in the file is cut off
//    again (or, if even that fails, ended by a newline before the next
//    line), so a retried line never lands glued to a fragment;
//  - with `sync`, an append resolves only once the data is on disk
//    (fdatasync): a caller that acknowledges records on it (the correlator
//    then saves a checkpoint past them) loses nothing to a power cut;
//  - appends run one at a time, in the order they were asked for;
//  - the file is opened on first use and again after a failure or reopen()
//    (logrotate moved it away, someone removed it).
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface LineAppenderOptions {
  mode: number;
  /** fdatasync before an append resolves. */
  sync: boolean;
}

export class LineAppender {
  private handle: FileHandle | null = null;
  /** A failed append left a fragment that could not be cut off: the next one starts with a newline. */
  private fragmentLeft = false;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    readonly path: string,
    private readonly o: LineAppenderOptions,
  ) {}

  /** `text` is whole lines, each ending in "\n". Rejects when the file cannot take it (nothing readable was added then). */
  append(text: string): Promise<void> {
    return this.serial(() => this.appendNow(text));
  }

  /** Closes the file; the next append opens the path again. */
  reopen(): Promise<void> {
    return this.serial(() => this.closeHandle());
  }

  close(): Promise<void> {
    return this.reopen();
  }

  private serial<T>(step: () => Promise<T>): Promise<T> {
    const run = this.tail.then(step, step);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async appendNow(text: string): Promise<void> {
    const fh = await this.open();
    const buf = Buffer.from(this.fragmentLeft ? `\n${text}` : text);
    const { size } = await fh.stat();
    try {
      // O_APPEND: every write goes to the end, whatever the position; a short write is continued.
      for (let done = 0; done < buf.length;) done += (await fh.write(buf, done, buf.length - done)).bytesWritten;
      if (this.o.sync) await fh.datasync();
      this.fragmentLeft = false;
    } catch (err) {
      try {
        await fh.truncate(size);
      } catch {
        this.fragmentLeft = true;
      }
      await this.closeHandle();
      throw err;
    }
  }

  private async open(): Promise<FileHandle> {
    if (this.handle) return this.handle;
    await mkdir(dirname(this.path), { recursive: true });
    this.handle = await open(this.path, 'a', this.o.mode);
    return this.handle;
  }

  private async closeHandle(): Promise<void> {
    const fh = this.handle;
    this.handle = null;
    await fh?.close().catch(() => undefined);
  }
}
