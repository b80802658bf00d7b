/**
 * Layer core/: pure decisions and the types they work on: the part plan (this file),
 * reconciliation, the verdict on an object, checksums and hashing of bytes, retry and throttle
 * policies, the rate cap's token bucket, object settings, glob patterns, the error hierarchy. It
 * imports nothing of partwise's but core/, and makes no S3 call and no file or network I/O.
 */
import { FileTooLargeError, InvalidOptionsError } from './errors.ts';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** S3's limits (User Guide, "Amazon S3 multipart upload limits"). */
export const S3_MIN_PART_SIZE = 5 * MiB;
export const S3_MAX_PART_SIZE = 5 * GiB;
export const S3_MAX_PARTS = 10_000;
export const S3_MAX_OBJECT_SIZE = S3_MAX_PARTS * S3_MAX_PART_SIZE;

/** 16 MiB parts: few enough requests to keep per-request overhead low, small enough that a retry is cheap. */
export const DEFAULT_PART_SIZE = 16 * MiB;

export interface PlanOptions {
  /** Wanted part size; raised when the file would need more than 10,000 parts. */
  partSize?: number;
  /**
   * Smallest part the server accepts (S3: 5 MiB). Lower only for servers configured to accept
   * smaller parts (RGW `rgw multipart min part size`), e.g. to test >1,000-part uploads cheaply.
   */
  minPartSize?: number;
  /** S3's 10,000 (a test hook) */
  maxParts?: number;
}

export interface PlannedPart {
  partNumber: number;
  offset: number;
  size: number;
}

export interface PartPlan {
  fileSize: number;
  partSize: number;
  partCount: number;
  /** set when the requested part size had to be raised to fit 10,000 parts */
  adjustedFrom?: number;
}

/**
 * Chooses the part size for a file: the requested (or default) size, raised to the smallest
 * whole MiB that fits the file in 10,000 parts, and never under the server's minimum.
 * A 0-byte file is one empty part: S3 has no minimum for the last part.
 */
export function planParts(fileSize: number, opts: PlanOptions = {}): PartPlan {
  if (!Number.isSafeInteger(fileSize) || fileSize < 0) throw new InvalidOptionsError(`file size must be a non-negative integer, got ${fileSize}`);
  const minPart = opts.minPartSize ?? S3_MIN_PART_SIZE;
  if (!Number.isSafeInteger(minPart) || minPart < 1) throw new InvalidOptionsError(`minPartSize must be a positive integer, got ${minPart}`);
  const requested = opts.partSize ?? DEFAULT_PART_SIZE;
  if (!Number.isSafeInteger(requested) || requested < 1) throw new InvalidOptionsError(`partSize must be a positive integer, got ${requested}`);
  if (requested > S3_MAX_PART_SIZE) throw new InvalidOptionsError(`partSize ${requested} is above S3's 5 GiB part limit`);
  if (requested < minPart) {
    throw new InvalidOptionsError(`partSize ${requested} is below the server's minimum part size ${minPart}; set minPartSize only if your server accepts smaller parts`);
  }
  if (fileSize > S3_MAX_OBJECT_SIZE) throw new FileTooLargeError(fileSize, S3_MAX_OBJECT_SIZE);

  let partSize = requested;
  let adjustedFrom: number | undefined;
  const needed = Math.ceil(fileSize / (opts.maxParts ?? S3_MAX_PARTS));
  if (needed > partSize) {
    adjustedFrom = requested;
    // Round up to a whole MiB (friendlier numbers, same part count), but never past 5 GiB.
    partSize = Math.min(S3_MAX_PART_SIZE, Math.ceil(needed / MiB) * MiB);
  }
  const partCount = fileSize === 0 ? 1 : Math.ceil(fileSize / partSize);
  return adjustedFrom === undefined ? { fileSize, partSize, partCount } : { fileSize, partSize, partCount, adjustedFrom };
}

export function partAt(plan: PartPlan, partNumber: number): PlannedPart {
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > plan.partCount) {
    throw new RangeError(`part ${partNumber} is outside 1..${plan.partCount}`);
  }
  const offset = (partNumber - 1) * plan.partSize;
  return { partNumber, offset, size: Math.min(plan.partSize, plan.fileSize - offset) };
}

/** The plan an existing upload's part size gives a file of this size (a journal's, an adopted upload's). */
export function planWithPartSize(fileSize: number, partSize: number): PartPlan {
  return { fileSize, partSize, partCount: fileSize === 0 ? 1 : Math.ceil(fileSize / partSize) };
}

/** Of the parts something claims (a journal, a listing), those the plan has, at the plan's size. */
export function partsOfPlan(plan: PartPlan, claimed: Iterable<{ partNumber: number; size: number }>): PlannedPart[] {
  const out: PlannedPart[] = [];
  for (const c of claimed) {
    if (!Number.isInteger(c.partNumber) || c.partNumber < 1 || c.partNumber > plan.partCount) continue;
    const p = partAt(plan, c.partNumber);
    if (p.size === c.size) out.push(p);
  }
  return out;
}

export function allParts(plan: PartPlan): PlannedPart[] {
  const out: PlannedPart[] = [];
  for (let n = 1; n <= plan.partCount; n++) out.push(partAt(plan, n));
  return out;
}
