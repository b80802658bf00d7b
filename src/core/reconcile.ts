import { stripQuotes, type ChecksumAlgorithm } from './checksums.ts';
import type { LocalDigest } from './hashing.ts';
import { allParts, type PartPlan } from './planner.ts';

/** A part as the server lists it (ListParts). */
export interface RemotePart {
  partNumber: number;
  size: number;
  etag: string;
  /** base64 checksum of the upload's algorithm, when the server lists one */
  checksum?: string;
  /** which algorithm that checksum is (as the listing names it) */
  checksumAlgorithm?: ChecksumAlgorithm;
}

/** The evidence a part was verified by. */
export type VerificationBasis = 'checksum' | 'etag' | 'journal';

export type PartStatus = 'verified' | 'missing' | 'size-mismatch' | 'etag-mismatch' | 'checksum-mismatch' | 'unverifiable';

export interface PartVerdict {
  partNumber: number;
  status: PartStatus;
  size: number;
  basis: VerificationBasis[];
  detail?: string;
}

export interface ReconcileReport {
  parts: PartVerdict[];
  /** parts that need no upload */
  verified: number[];
  /** parts to (re-)upload, ascending */
  toUpload: number[];
  /** part numbers the server lists that the plan does not have */
  extraParts: number[];
  counts: Record<PartStatus, number>;
  bytesVerified: number;
  bytesToUpload: number;
  /**
   * The verification phase: bytes of the file hashed, how long it took (worker start-up included),
   * the rate in 10^9 bytes per second, and whether MD5 was computed. `headStartBytes`: of those bytes,
   * the ones hashed before the server's listing came in (from the journal's parts).
   */
  hashing?: { bytes: number; ms: number; gbPerSecond: number; md5: boolean; headStartBytes: number };
}

export interface ReconcileInput {
  plan: PartPlan;
  remote: RemotePart[];
  /** digests of the local file's chunks, for the parts the server lists */
  local: ReadonlyMap<number, LocalDigest>;
  algorithm: ChecksumAlgorithm | null;
  /** whether part ETags are MD5s of the part (not under SSE-KMS / SSE-C) */
  etagIsMd5: boolean;
  /** what this machine recorded when it uploaded each part (ETag and MD5 of the bytes sent) */
  journal?: ReadonlyMap<number, { etag: string; md5?: string | undefined }>;
}

/**
 * Classifies every planned part against what the server lists and what the local file holds.
 * A part is trusted only on positive evidence: a matching checksum, a matching MD5 ETag, or (when
 * neither is available) the server's ETag unchanged since this machine uploaded those same bytes.
 * Any failing check wins over any passing one.
 */
export function reconcile(input: ReconcileInput): ReconcileReport {
  const remoteByNumber = new Map<number, RemotePart>();
  const extra = new Set<number>();
  for (const r of input.remote) {
    if (r.partNumber < 1 || r.partNumber > input.plan.partCount) extra.add(r.partNumber);
    else remoteByNumber.set(r.partNumber, r);
  }

  const parts: PartVerdict[] = allParts(input.plan).map((p) => {
    const r = remoteByNumber.get(p.partNumber);
    const v = (status: PartStatus, basis: VerificationBasis[] = [], detail?: string): PartVerdict =>
      detail === undefined ? { partNumber: p.partNumber, status, size: p.size, basis } : { partNumber: p.partNumber, status, size: p.size, basis, detail };
    if (!r) return v('missing');
    if (r.size !== p.size) return v('size-mismatch', [], `server has ${r.size} bytes, the file's part has ${p.size}`);
    const local = input.local.get(p.partNumber);
    if (!local) return v('unverifiable', [], 'no local digest');

    const basis: VerificationBasis[] = [];
    if (input.algorithm && r.checksum !== undefined) {
      const mine = local.checksum?.toString('base64');
      if (mine === undefined) return v('unverifiable', [], 'no local checksum');
      if (mine !== r.checksum) return v('checksum-mismatch', [], `${input.algorithm} server ${r.checksum}, local ${mine}`);
      basis.push('checksum');
    }
    const etag = stripQuotes(r.etag).toLowerCase();
    if (input.etagIsMd5 && local.md5Hex !== undefined) {
      if (etag !== local.md5Hex) return v('etag-mismatch', [], `server ETag ${etag}, local MD5 ${local.md5Hex}`);
      basis.push('etag');
    }
    if (basis.length === 0) {
      // Opaque ETag and no checksum: trust only a part this machine uploaded (the server checked
      // its Content-MD5 then) whose ETag has not changed since, and whose bytes still hash the same.
      const j = input.journal?.get(p.partNumber);
      if (j && j.md5 !== undefined && stripQuotes(j.etag).toLowerCase() === etag && j.md5 === local.md5Hex) basis.push('journal');
    }
    if (basis.length === 0) return v('unverifiable', [], 'the server lists no checksum and its ETag is not an MD5');
    return v('verified', basis);
  });

  const counts: Record<PartStatus, number> = { verified: 0, missing: 0, 'size-mismatch': 0, 'etag-mismatch': 0, 'checksum-mismatch': 0, unverifiable: 0 };
  let bytesVerified = 0;
  let bytesToUpload = 0;
  const verified: number[] = [];
  const toUpload: number[] = [];
  for (const p of parts) {
    counts[p.status]++;
    if (p.status === 'verified') {
      verified.push(p.partNumber);
      bytesVerified += p.size;
    } else {
      toUpload.push(p.partNumber);
      bytesToUpload += p.size;
    }
  }
  return { parts, verified, toUpload, extraParts: [...extra].sort((a, b) => a - b), counts, bytesVerified, bytesToUpload };
}

/**
 * Whether verifying a resume computes MD5 too: not when the server stores part checksums (the
 * journal learnt it) and lists one for every part, since the checksum is then the evidence.
 */
export function needsMd5(j: { checksumAlgorithm: ChecksumAlgorithm | null; serverChecksums?: boolean | undefined }, listed?: ReadonlyArray<{ checksum?: unknown }>): boolean {
  return !(j.checksumAlgorithm && j.serverChecksums === true && (listed?.every((p) => p.checksum !== undefined) ?? true));
}
