// Small state files (the shipper's --state, the forwarder's checkpoint)
// replaced whole: after a crash or a power cut the file holds the old text
// or the new, never a fragment or nothing.
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** Replaces `file` with `text` as one step that survives a crash: a temporary file, fsync, rename, fsync of the folder. */
export function writeFileDurably(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    const buf = Buffer.from(text);
    for (let done = 0; done < buf.length;) done += writeSync(fd, buf, done, buf.length - done);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  try {
    const dir = openSync(dirname(file), 'r');
    try {
      fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  } catch {
    // Some filesystems cannot fsync a directory; the rename is still atomic.
  }
}
