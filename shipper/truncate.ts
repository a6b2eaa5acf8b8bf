// --truncate: remove the acknowledged prefix [0, acked) of a log file that
// its writer (fail2ban, with O_APPEND) keeps appending to, without losing a
// line appended meanwhile. The seed's `rm` / `echo "" >` lose those lines;
// so does truncating and writing the tail back (logrotate's copytruncate):
// a line appended between reading the tail and truncating is gone.
//
// "collapse" (the default where the filesystem has it: ext4, XFS) has no
// such window. fallocate(FALLOC_FL_COLLAPSE_RANGE) removes a range from the
// start of the file in one step under the inode lock, the same lock an
// O_APPEND write takes to find the end of the file, so each appended line
// lands either before (and shifts down with the rest) or after. It only
// removes whole filesystem blocks, so:
//   1. the acknowledged lines in the last, partial block [s, acked) are
//      overwritten in place with one blank line (spaces and a "\n"; every
//      reader skips blank lines) - the writer never writes there, it only
//      appends at the end;
//   2. whole blocks [0, F) are collapsed away.
// The file then starts with one blank line shorter than a block, which the
// next run reads as blank, acknowledges and removes. A crash between 1 and
// 2 leaves the lines before s where they were: read again, sent again
// under the same ids, stored nothing twice.
//
// Where statfs says the filesystem cannot collapse, auto goes straight to
// copy before anything is written; where fallocate refuses anyway (ext2/3
// share ext4's magic number), it falls back after the blanking, which only
// touched acknowledged lines.
//
// "copy" (elsewhere: tmpfs, btrfs, NFS...) is copytruncate: re-read the
// tail until the size is stable, truncate, append the tail back. A line
// appended in the microseconds between the last size check and the
// truncate is lost; one appended between the truncate and the write-back
// lands before the tail (kept, out of order); a file whose size never
// holds still (a writer busier than the copy) is left alone for the next
// run. docs/shipper.md says so.
//
// Either way, nothing is changed unless the file still starts with the
// bytes that were read and acknowledged (prefix-digest.ts).
import { spawn } from 'node:child_process';
import { open, statfs, type FileHandle } from 'node:fs/promises';
import { startsWith, type PrefixDigest } from './prefix-digest.js';

export type TruncateMethod = 'auto' | 'collapse' | 'copy';

export interface TruncateResult {
  method: 'collapse' | 'copy' | 'none';
  /** Bytes removed from the start of the file. */
  removed: number;
  /** Acknowledged bytes overwritten with a blank line instead of removed. */
  blanked: number;
  /** Why collapse was not used, when auto fell back to copy. */
  fallbackReason?: string;
}

/**
 * `fh` must be open read-write ('r+') on the file that was read; `read` is
 * the digest of its first `acked` bytes as they were read.
 */
export async function removeAckedPrefix(fh: FileHandle, acked: number, method: TruncateMethod, read: PrefixDigest): Promise<TruncateResult> {
  if (acked <= 0) return { method: 'none', removed: 0, blanked: 0 };
  if (read.length !== acked) throw new Error(`internal: ${acked} bytes acknowledged but ${read.length} read up to a line end; left alone`);
  if (method === 'copy') return copyTruncate(fh, read);
  // Known not to collapse: say so before blanking anything.
  const unsupported = await collapseUnsupportedReason(fh);
  if (unsupported !== null) {
    if (method === 'collapse') throw new CollapseUnsupported(unsupported);
    return { ...(await copyTruncate(fh, read)), fallbackReason: unsupported };
  }
  try {
    return await collapse(fh, read);
  } catch (err) {
    if (method === 'collapse' || !(err instanceof CollapseUnsupported)) throw err;
    return { ...(await copyTruncate(fh, read)), fallbackReason: err.message };
  }
}

export class FileChanged extends Error {}

/** Refuses to touch a file that no longer starts with what was read and acknowledged. */
async function checkUnchanged(fh: FileHandle, size: number, read: PrefixDigest): Promise<void> {
  if (size < read.length)
    throw new FileChanged(`the file is shorter (${size} bytes) than what was acknowledged (${read.length}): it was truncated by someone else; left alone`);
  if (!(await startsWith(fh, read)))
    throw new FileChanged(
      `the file no longer starts with the ${read.length} bytes that were shipped: it was truncated or rewritten while it was read; left alone (its lines are read again next run)`,
    );
}

export class CollapseUnsupported extends Error {}

/** statfs f_type of filesystems that implement FALLOC_FL_COLLAPSE_RANGE (ext4 shares 0xEF53 with ext2/3, which fallocate then refuses). */
const COLLAPSING_FILESYSTEMS = new Map<number, string>([
  [0xef53, 'ext4'],
  [0x58465342, 'xfs'],
  [0xf2f52010, 'f2fs'],
]);

async function collapseUnsupportedReason(fh: FileHandle): Promise<string | null> {
  try {
    const { type } = await statfs(`/proc/self/fd/${fh.fd}`);
    return COLLAPSING_FILESYSTEMS.has(type) ? null : `the filesystem (type 0x${type.toString(16)}) cannot collapse ranges (ext4, XFS and f2fs can)`;
  } catch {
    return null; // unknown: try, and fall back if fallocate refuses
  }
}

async function collapse(fh: FileHandle, read: PrefixDigest): Promise<TruncateResult> {
  const acked = read.length;
  const st = await fh.stat();
  await checkUnchanged(fh, st.size, read);
  const block = st.blksize > 0 ? st.blksize : 4096;
  // Collapsing must leave at least one byte (the kernel refuses a range
  // that reaches the end of the file).
  const collapsible = Math.floor(Math.min(acked, st.size - 1) / block) * block;
  const s = collapsible === acked ? acked : await lineStart(fh, collapsible);
  if (acked > s) {
    await fh.write(Buffer.from(`${' '.repeat(acked - s - 1)}\n`), 0, acked - s, s);
    await fh.datasync();
  }
  if (collapsible > 0) {
    await runFallocate(fh, collapsible);
    await verifyHead(fh, acked - collapsible);
  }
  return { method: 'collapse', removed: collapsible, blanked: acked - collapsible };
}

/** First byte of the line that holds byte `at` (the acknowledged part never changes, so reading it is safe). */
async function lineStart(fh: FileHandle, at: number): Promise<number> {
  const step = 64 * 1024;
  let end = at;
  while (end > 0) {
    const from = Math.max(0, end - step);
    const buf = Buffer.alloc(end - from);
    await fh.read(buf, 0, buf.length, from);
    const nl = buf.lastIndexOf(10);
    if (nl !== -1) return from + nl + 1;
    end = from;
  }
  return 0;
}

/** util-linux fallocate(1) on our own descriptor (passed as fd 3), so a rename cannot make it touch another file. */
function runFallocate(fh: FileHandle, length: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    const child = spawn('fallocate', ['--collapse-range', '--offset', '0', '--length', String(length), '/proc/self/fd/3'], {
      stdio: ['ignore', 'ignore', 'pipe', fh.fd],
    });
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err: NodeJS.ErrnoException) =>
      reject(new CollapseUnsupported(err.code === 'ENOENT' ? 'the fallocate command (util-linux) is not installed' : err.message)),
    );
    child.on('close', (code) => {
      if (code === 0) return resolve();
      const msg = stderr.trim() || `fallocate exited with ${code}`;
      // EOPNOTSUPP: the filesystem cannot; EINVAL: not on block boundaries
      // for it (bigalloc clusters...). Nothing was changed in either case.
      if (/not supported|Invalid argument/i.test(msg)) reject(new CollapseUnsupported(msg));
      else reject(new Error(msg));
    });
  });
}

/** After collapsing, the file must start with what is left of the blank line. */
async function verifyHead(fh: FileHandle, blankLeft: number): Promise<void> {
  if (blankLeft === 0) return;
  const buf = Buffer.alloc(blankLeft);
  await fh.read(buf, 0, blankLeft, 0);
  const ok = buf[blankLeft - 1] === 10 && buf.subarray(0, blankLeft - 1).every((b) => b === 32);
  if (!ok) throw new Error('after collapsing, the file does not start where expected; check it');
}

/** Reads of the tail before a file that keeps growing is left alone. */
const COPY_ATTEMPTS = 100;
const GUARD_BYTES = 4096;

async function readAt(fh: FileHandle, from: number, to: number): Promise<Buffer> {
  const buf = Buffer.alloc(Math.max(0, to - from));
  if (buf.length > 0) await fh.read(buf, 0, buf.length, from);
  return buf;
}

async function copyTruncate(fh: FileHandle, read: PrefixDigest): Promise<TruncateResult> {
  const acked = read.length;
  await checkUnchanged(fh, (await fh.stat()).size, read);
  // The last bytes shipped, compared again just before truncating: a file truncated and refilled
  // during the re-reads below is caught without reading the whole prefix again in the window
  // between the last size check and the truncation, where every microsecond can lose a line.
  const guard = await readAt(fh, Math.max(0, acked - GUARD_BYTES), acked);
  let tail: Buffer | null = null;
  for (let attempt = 0; attempt < COPY_ATTEMPTS && tail === null; attempt++) {
    const size = (await fh.stat()).size;
    if (size < acked) await checkUnchanged(fh, size, read);
    const copy = await readAt(fh, acked, size);
    if ((await fh.stat()).size === size) tail = copy;
  }
  // Truncating now would drop what was appended since the last read.
  if (tail === null) throw new FileChanged(`the file kept growing while its tail was copied (${COPY_ATTEMPTS} reads): not truncated; the next run tries again`);
  if (!(await readAt(fh, Math.max(0, acked - GUARD_BYTES), acked)).equals(guard))
    throw new FileChanged('the file was truncated or rewritten while its tail was copied: left alone (its lines are read again next run)');
  await fh.truncate(0);
  if (tail.length > 0) {
    // O_APPEND, so a line the writer appends meanwhile is not overwritten.
    const appender = await open(`/proc/self/fd/${fh.fd}`, 'a');
    try {
      await appender.write(tail);
      await appender.datasync();
    } finally {
      await appender.close();
    }
  }
  return { method: 'copy', removed: acked, blanked: 0 };
}
