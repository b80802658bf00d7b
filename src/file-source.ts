import { open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { SourceUnreadableError } from './errors.ts';

/** Identifies the bytes a journal's parts came from; any change means the parts can't be trusted. */
export interface SourceFingerprint {
  path: string;
  size: number;
  mtimeMs: number;
  ino: number;
  dev: number;
}

export async function fingerprint(path: string): Promise<SourceFingerprint> {
  try {
    const real = await realpath(path);
    const st = await stat(real);
    if (!st.isFile()) throw new Error('not a regular file');
    return { path: real, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, dev: st.dev };
  } catch (err) {
    throw new SourceUnreadableError(path, err);
  }
}

/** Lists what differs between two fingerprints (empty when the file is unchanged). */
export function fingerprintDifferences(was: SourceFingerprint, now: SourceFingerprint): string[] {
  const out: string[] = [];
  if (was.size !== now.size) out.push(`size ${was.size} → ${now.size}`);
  if (was.mtimeMs !== now.mtimeMs) out.push(`modified ${new Date(was.mtimeMs).toISOString()} → ${new Date(now.mtimeMs).toISOString()}`);
  if (was.ino !== now.ino || (was.dev !== undefined && was.dev !== now.dev)) out.push('replaced by another file (inode changed)');
  return out;
}

export async function openSource(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (err) {
    throw new SourceUnreadableError(path, err);
  }
}

/** Reads exactly `length` bytes at `offset` (into `buf` when given, else a fresh buffer). */
export async function readRange(fh: FileHandle, offset: number, length: number, buf: Buffer = Buffer.allocUnsafe(length)): Promise<Buffer> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
    if (bytesRead === 0) throw new Error(`unexpected end of file at offset ${offset + done} (the file shrank during the upload)`);
    done += bytesRead;
  }
  return buf;
}
