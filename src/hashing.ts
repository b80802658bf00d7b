import type { FileHandle } from 'node:fs/promises';
import { createHasher, type ChecksumAlgorithm } from './checksums.ts';

/**
 * What partwise knows about one part's bytes: MD5 (for Content-MD5 and MD5 ETags) and the upload's
 * checksum. MD5 is left out where the server's part checksums are the evidence: it is the slowest
 * hash in the process, and the checksum alone then proves the part.
 */
export interface LocalDigest {
  md5Hex?: string;
  /** raw digest of the upload's checksum algorithm; absent when checksums are off */
  checksum?: Buffer;
}

export function digestBuffer(data: Uint8Array, alg: ChecksumAlgorithm | undefined, withMd5 = true): LocalDigest {
  const out: LocalDigest = {};
  if (withMd5 || !alg) {
    const md5 = createHasher('MD5');
    md5.update(data);
    out.md5Hex = md5.digest().toString('hex');
  }
  if (alg) {
    const h = createHasher(alg);
    h.update(data);
    out.checksum = h.digest();
  }
  return out;
}

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
  const md5 = withMd5 || !alg ? createHasher('MD5') : undefined;
  const h = alg ? createHasher(alg) : undefined;
  let done = 0;
  while (done < length) {
    const want = Math.min(buf.length, length - done);
    const { bytesRead } = await fh.read(buf, 0, want, offset + done);
    if (bytesRead === 0) throw new Error(`unexpected end of file at offset ${offset + done} (the file shrank)`);
    const view = buf.subarray(0, bytesRead);
    md5?.update(view);
    h?.update(view);
    done += bytesRead;
    onBytes?.(bytesRead);
  }
  const out: LocalDigest = md5 ? { md5Hex: md5.digest().toString('hex') } : {};
  if (h) out.checksum = h.digest();
  return out;
}
