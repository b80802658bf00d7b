/**
 * A file's byte ranges hashed (MD5 and the upload's checksum from the same chunks), with reads
 * through an open handle or, on a hash thread, blocking reads of a descriptor.
 */
import { readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { acquireHasher, createHasher, type ChecksumAlgorithm } from '../core/checksums.ts';
import { RangeDigest, computesMd5, type LocalDigest } from '../core/hashing.ts';

const CHUNK = 4 * 1024 * 1024;

/**
 * Hashes a byte range of an open file in 4 MiB reads, feeding MD5 and the checksum from the same
 * chunk, so memory stays at one chunk whatever the part size.
 */
export async function digestFileRange(
  fh: FileHandle,
  offset: number,
  length: number,
  alg: ChecksumAlgorithm | undefined,
  buf: Buffer = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(1, length))),
  onBytes?: (n: number) => void,
  withMd5 = true,
): Promise<LocalDigest> {
  // Held across reads: taken with acquireHasher, which never runs out at any concurrency.
  const d = new RangeDigest(computesMd5(alg, withMd5) ? await acquireHasher('MD5') : undefined, alg ? await acquireHasher(alg) : undefined);
  try {
    for (let done = 0; done < length; ) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, length - done), offset + done);
      done += d.feed(buf, bytesRead, offset + done, onBytes);
    }
  } catch (err) {
    // No digest: the pooled hashers go back (see digestFdRangeSync).
    d.dispose();
    throw err;
  }
  return d.result();
}

/**
 * The same, with blocking reads: for a worker thread, whose only job is this, a read straight
 * into the buffer costs no trip through libuv's thread pool (which the main thread's sends use).
 */
export function digestFdRangeSync(fd: number, offset: number, length: number, alg: ChecksumAlgorithm | undefined, buf: Buffer, onBytes?: (n: number) => void, withMd5 = true): LocalDigest {
  const d = new RangeDigest(computesMd5(alg, withMd5) ? createHasher('MD5') : undefined, alg ? createHasher(alg) : undefined);
  try {
    for (let done = 0; done < length; ) {
      const bytesRead = readSync(fd, buf, 0, Math.min(buf.length, length - done), offset + done);
      done += d.feed(buf, bytesRead, offset + done, onBytes);
    }
  } catch (err) {
    // A failed read leaves no digest: the hashers go back, or a hash thread working through its
    // queue would run out of pooled WASM instances (acquireHasher's callers make new ones instead).
    d.dispose();
    throw err;
  }
  return d.result();
}
