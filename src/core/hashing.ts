import { createHasher, type ChecksumAlgorithm, type Hasher } from './checksums.ts';

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

/** MD5 is computed when asked for, or when there is no checksum: it is then the only evidence. */
export function computesMd5(alg: ChecksumAlgorithm | null | undefined, withMd5: boolean): boolean {
  return withMd5 || !alg;
}

export function digestBuffer(data: Uint8Array, alg: ChecksumAlgorithm | undefined, withMd5 = true): LocalDigest {
  const out: LocalDigest = {};
  if (computesMd5(alg, withMd5)) {
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

/** MD5 (when asked for, or when there is no checksum) and the checksum, fed from the same chunks. */
export class RangeDigest {
  constructor(
    private readonly md5: Hasher | undefined,
    private readonly h: Hasher | undefined,
  ) {}

  feed(buf: Buffer, bytesRead: number, at: number, onBytes?: (n: number) => void): number {
    if (bytesRead === 0) throw new Error(`unexpected end of file at offset ${at} (the file shrank)`);
    const view = buf.subarray(0, bytesRead);
    this.md5?.update(view);
    this.h?.update(view);
    onBytes?.(bytesRead);
    return bytesRead;
  }

  dispose(): void {
    this.md5?.dispose?.();
    this.h?.dispose?.();
  }

  result(): LocalDigest {
    const out: LocalDigest = this.md5 ? { md5Hex: this.md5.digest().toString('hex') } : {};
    if (this.h) out.checksum = this.h.digest();
    return out;
  }
}
