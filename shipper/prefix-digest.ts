// --truncate must remove exactly the bytes it read and had acknowledged.
// A file truncated or rewritten in place while a run shipped it
// (logrotate's copytruncate, `: > app.log`, an application truncating its
// own log) may have grown past `acked` again with lines nobody read; a size
// check alone would remove them. So the digest of the complete lines is
// taken while the file is read, and compared with the file's bytes just
// before anything is changed.
import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';

/** SHA-256 of a file's first `length` bytes. */
export interface PrefixDigest {
  length: number;
  sha256: string;
}

/** The digest of the complete lines of a byte stream as it passes: of [0, end of its last "\n"). */
export class LinePrefixDigest {
  private readonly hash: Hash = createHash('sha256');
  /** The hash as it stood just after the last "\n" (null: none seen). */
  private atLineEnd: Hash | null = null;
  private total = 0;
  private length = 0;

  async *tap(chunks: AsyncIterable<Buffer | string>): AsyncGenerator<Buffer> {
    for await (const chunk of chunks) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      this.add(buf);
      yield buf;
    }
  }

  private add(buf: Buffer): void {
    const nl = buf.lastIndexOf(10);
    if (nl !== -1) {
      this.hash.update(buf.subarray(0, nl + 1));
      this.atLineEnd = this.hash.copy();
      this.length = this.total + nl + 1;
      this.hash.update(buf.subarray(nl + 1));
    } else {
      this.hash.update(buf);
    }
    this.total += buf.length;
  }

  digest(): PrefixDigest {
    return { length: this.length, sha256: (this.atLineEnd ?? createHash('sha256')).copy().digest('hex') };
  }
}

/** Whether the file still starts with the bytes the digest was taken of. */
export async function startsWith(fh: FileHandle, expected: PrefixDigest): Promise<boolean> {
  const hash = createHash('sha256');
  const buf = Buffer.alloc(Math.min(1024 * 1024, Math.max(1, expected.length)));
  for (let pos = 0; pos < expected.length;) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, expected.length - pos), pos);
    if (bytesRead === 0) return false;
    hash.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  return hash.digest('hex') === expected.sha256;
}
