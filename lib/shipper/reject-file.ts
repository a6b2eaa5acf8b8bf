// Lines that give no document (no schema match) and documents the ingress
// refuses are written here, one JSON object per line with the reason, so
// that nothing is dropped silently and --truncate can still remove them
// from the log. Opened on the first reject; synced before any truncation.
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';

export interface RejectEntry {
  source: string;
  offset: number;
  /** Line number, when reading started at the beginning of the source. */
  line?: number;
  reason: string;
  /** The raw line(s). */
  text: string | string[];
  /** The document that was refused, when there was one. */
  doc?: string;
}

export class RejectFile {
  private fd: number | null = null;
  count = 0;

  constructor(readonly path: string) {}

  write(entry: RejectEntry): void {
    if (this.fd === null) this.fd = openSync(this.path, 'a', 0o600);
    const { doc, ...rest } = entry;
    let json = JSON.stringify({ at: new Date().toISOString(), ...rest });
    if (doc !== undefined) json = `${json.slice(0, -1)},"doc":${doc}}`;
    writeSync(this.fd, `${json}\n`);
    this.count++;
  }

  sync(): void {
    if (this.fd !== null) fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd === null) return;
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
  }
}
