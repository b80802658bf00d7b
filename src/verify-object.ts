import { compositeChecksum, fullObjectChecksum, isCrc, multipartEtag, stripQuotes, type ChecksumAlgorithm, type PartDigest } from './checksums.ts';
import type { VerificationLevel } from './progress.ts';
import type { HeadOutput } from './s3-port.ts';

export interface ExpectedObject {
  size: number;
  /** hex MD5 of each part in order, when part ETags are MD5s; undefined otherwise */
  partMd5Hex?: string[];
  algorithm: ChecksumAlgorithm | null;
  /** the upload's checksum digest of each part in order */
  partDigests: PartDigest[];
}

export interface ExpectedValues {
  etag?: string;
  fullObject?: string;
  composite?: string;
}

/** What the finished object must show, computed from per-part digests (the file is not read again). */
export function expectedValues(e: ExpectedObject): ExpectedValues {
  const out: ExpectedValues = {};
  if (e.partMd5Hex) out.etag = multipartEtag(e.partMd5Hex);
  if (e.algorithm) {
    if (isCrc(e.algorithm)) out.fullObject = fullObjectChecksum(e.algorithm, e.partDigests);
    out.composite = compositeChecksum(e.algorithm, e.partDigests);
  }
  return out;
}

export interface ObjectJudgement {
  level: VerificationLevel;
  checks: string[];
  mismatches: string[];
}

const RANK: VerificationLevel[] = ['size', 'multipart-etag', 'composite-checksum', 'full-object-checksum'];

/**
 * The verdict on a finished object, from HeadObject only (Complete's response is not trusted:
 * Ceph 16 returns an empty ETag there). Every value the server reports is compared; the level is
 * the strongest check that passed, and any mismatch fails the whole object.
 */
export function judgeObject(head: HeadOutput, e: ExpectedObject, expected: ExpectedValues = expectedValues(e)): ObjectJudgement {
  const checks: string[] = [];
  const mismatches: string[] = [];
  let level: VerificationLevel = 'size';
  const raise = (l: VerificationLevel) => {
    if (RANK.indexOf(l) > RANK.indexOf(level)) level = l;
  };

  if (head.size === e.size) checks.push(`size ${e.size}`);
  else mismatches.push(`size: server ${head.size}, local ${e.size}`);

  if (expected.etag) {
    const got = stripQuotes(head.etag).toLowerCase();
    if (got === expected.etag) {
      checks.push(`multipart ETag ${got}`);
      raise('multipart-etag');
    } else mismatches.push(`ETag: server ${got || '(none)'}, expected ${expected.etag}`);
  }

  const alg = e.algorithm;
  const got = alg ? head.checksums[alg] : undefined;
  if (alg && got) {
    const composite = /-\d+$/.test(got) || head.checksumType === 'COMPOSITE';
    if (composite) {
      const want = expected.composite!;
      // GetObjectAttributes-style values drop the "-N"; HeadObject keeps it.
      if (got === want || got === want.replace(/-\d+$/, '')) {
        checks.push(`composite ${alg} ${got}`);
        raise('composite-checksum');
      } else mismatches.push(`${alg} (composite): server ${got}, expected ${want}`);
    } else if (expected.fullObject) {
      if (got === expected.fullObject) {
        checks.push(`full-object ${alg} ${got}`);
        raise('full-object-checksum');
      } else mismatches.push(`${alg} (full object): server ${got}, expected ${expected.fullObject}`);
    }
  }
  return { level, checks, mismatches };
}
