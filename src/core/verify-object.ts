import { compositeChecksum, fullObjectChecksum, isCrc, multipartEtag, stripQuotes, type ChecksumAlgorithm, type PartDigest } from './checksums.ts';
import type { LocalDigest } from './hashing.ts';
import { allParts, type PartPlan, type PlannedPart } from './planner.ts';

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

/**
 * What the finished object must show, from the digest of every part in order. `etagIsMd5` adds
 * the multipart ETag (MD5 of the part MD5s); without a checksum algorithm, only that remains.
 */
export function expectedObject(plan: PartPlan, algorithm: ChecksumAlgorithm | null, etagIsMd5: boolean, digests: ReadonlyMap<number, LocalDigest>): ExpectedObject {
  return expectedFromParts(allParts(plan), algorithm, etagIsMd5, digests);
}

/** The same, for parts of any sizes (an object another tool uploaded, its layout learned from the server). */
export function expectedFromParts(parts: readonly Pick<PlannedPart, 'partNumber' | 'size'>[], algorithm: ChecksumAlgorithm | null, etagIsMd5: boolean, digests: ReadonlyMap<number, LocalDigest>): ExpectedObject {
  const partDigests: PartDigest[] = [];
  const md5s: string[] = [];
  for (const p of parts) {
    const d = digests.get(p.partNumber);
    if (!d) throw new Error(`no digest for part ${p.partNumber}`);
    partDigests.push({ size: p.size, checksum: d.checksum ?? Buffer.alloc(0) });
    if (d.md5Hex !== undefined) md5s.push(d.md5Hex);
  }
  const e: ExpectedObject = { size: parts.reduce((a, p) => a + p.size, 0), algorithm, partDigests };
  // The multipart ETag needs every part's MD5; parts proven by their checksum alone have none.
  if (etagIsMd5 && md5s.length === parts.length) e.partMd5Hex = md5s;
  return e;
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
  /**
   * The server's ETag has no "-N" and is not the value expected: where a multipart ETag was
   * expected, the plain MD5 of the whole object (s3rver) or an opaque value (Google Cloud
   * Storage); where the whole file's MD5 was, an opaque value or other bytes. Neither a match nor
   * a mismatch: evidence only once the whole file's MD5 equals it.
   */
  plainEtag?: string;
}

/**
 * The evidence rule in one place: an object is these bytes only when nothing differs *and* some
 * check identifies the bytes (a checksum or an MD5-based ETag). Size alone proves nothing.
 */
export function provesBytes(j: ObjectJudgement): boolean {
  return j.mismatches.length === 0 && j.level !== 'size';
}

/**
 * How strongly the object on the server is known to equal the local file. Every level but `size`
 * identifies the bytes; `size` alone proves nothing and comes with an UNVERIFIED warning.
 */
export type VerificationLevel = 'full-object-checksum' | 'composite-checksum' | 'object-md5' | 'multipart-etag' | 'size';

/** What an object shows of its bytes: a HeadObject, or Complete's own response (which carries no size). */
export interface ObjectFacts {
  size?: number;
  etag: string;
  checksums: Partial<Record<ChecksumAlgorithm, string>>;
  checksumType?: string;
}

const RANK: VerificationLevel[] = ['size', 'multipart-etag', 'object-md5', 'composite-checksum', 'full-object-checksum'];

/** The ETag of a whole-object MD5 or a multipart one ("-N"), as against an opaque or other form. */
const isMultipartEtag = (etag: string) => /^[0-9a-f]{32}-\d+$/.test(etag);

/**
 * The verdict on a finished object, from HeadObject only (Complete's response is not trusted:
 * Ceph 16 returns an empty ETag there). Every value the server reports is compared; the level is
 * the strongest check that passed, and any mismatch fails the whole object.
 */
export function judgeObject(head: ObjectFacts, e: ExpectedObject, expected: ExpectedValues = expectedValues(e)): ObjectJudgement {
  const checks: string[] = [];
  const mismatches: string[] = [];
  const out: Pick<ObjectJudgement, 'plainEtag'> = {};
  let level: VerificationLevel = 'size';
  const raise = (l: VerificationLevel) => {
    if (RANK.indexOf(l) > RANK.indexOf(level)) level = l;
  };

  if (head.size === e.size) checks.push(`size ${e.size}`);
  else if (head.size !== undefined) mismatches.push(`size: server ${head.size}, local ${e.size}`);

  if (expected.etag) {
    const got = stripQuotes(head.etag).toLowerCase();
    const multipart = isMultipartEtag(expected.etag);
    if (got === expected.etag) {
      checks.push(multipart ? `ETag ${got}` : `ETag ${got}, the MD5 of the whole file`);
      raise(multipart ? 'multipart-etag' : 'object-md5');
    } else if (got && !/-\d+$/.test(got)) {
      // A plain ETag that is not the expected value proves nothing either way: some servers give
      // a multipart object the whole object's MD5 (s3rver), others an opaque value (GCS).
      out.plainEtag = got;
    } else mismatches.push(`ETag: server ${got || '(none)'}, expected ${expected.etag}`);
  }

  const alg = e.algorithm;
  const got = alg ? head.checksums[alg] : undefined;
  if (alg && got) {
    const bare = got.replace(/-\d+$/, '');
    const labelled = bare !== got;
    if (expected.fullObject && bare === expected.fullObject) {
      // The CRC of the whole object. RGW labels it "-1" on single-part uploads; the value is what counts.
      checks.push(`full-object ${alg} ${got}`);
      raise('full-object-checksum');
    } else if (expected.composite && (got === expected.composite || bare === expected.composite.replace(/-\d+$/, ''))) {
      // GetObjectAttributes-style values drop the "-N"; HeadObject keeps it.
      checks.push(`composite ${alg} ${got}`);
      raise('composite-checksum');
    } else {
      const want = labelled || head.checksumType === 'COMPOSITE' || !expected.fullObject ? expected.composite : expected.fullObject;
      mismatches.push(`${alg}: server ${got}, expected ${want}`);
    }
  }
  return { level, checks, mismatches, ...out };
}

/**
 * The per-part checksums a server lists for a finished object (GetObjectAttributes), compared with
 * the local ones: all N matching is as strong as a composite checksum. Used when HeadObject
 * reports no checksum.
 */
export function judgeParts(listed: { partNumber: number; size: number; checksum?: string }[], e: ExpectedObject): { ok: boolean; check?: string; mismatches: string[] } {
  const mismatches: string[] = [];
  // No part checksums listed at all: no evidence either way (servers list them only for checksum uploads).
  if (!e.algorithm || listed.length === 0 || listed.every((p) => p.checksum === undefined)) return { ok: false, mismatches };
  if (listed.length !== e.partDigests.length) return { ok: false, mismatches: [`the server lists ${listed.length} parts, the upload has ${e.partDigests.length}`] };
  if (listed.some((p) => p.checksum === undefined)) return { ok: false, mismatches: ['the server lists a checksum for some parts but not all'] };
  listed.forEach((p, i) => {
    const want = e.partDigests[i]!;
    if (p.partNumber !== i + 1 || p.size !== want.size) mismatches.push(`part ${p.partNumber}: size ${p.size}, expected ${want.size}`);
    else if (p.checksum !== want.checksum.toString('base64')) mismatches.push(`part ${p.partNumber}: ${e.algorithm} ${p.checksum}, expected ${want.checksum.toString('base64')}`);
  });
  return mismatches.length ? { ok: false, mismatches } : { ok: true, check: `${e.algorithm} of all ${listed.length} parts (GetObjectAttributes)`, mismatches };
}
