/** An upload's options: their type, their validation, and what is derived from them once. */
import { createHash } from 'node:crypto';
import pLimit, { type LimitFunction } from 'p-limit';
import { DEFAULT_CHECKSUM_ALGORITHM, isChecksumAlgorithm, loadHashers, type ChecksumAlgorithm, type ChecksumType } from '../core/checksums.ts';
import { InvalidOptionsError } from '../core/errors.ts';
import { S3_MAX_PARTS, S3_MAX_PART_SIZE, planParts, type PartPlan } from '../core/planner.ts';
import { PACED_SLICE, type RateLimiter } from '../core/rate-limit.ts';
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from '../core/retry.ts';
import { hasExplicitSettings, settingsProblems, type ObjectSettingOptions } from '../core/object-settings.ts';
import type { RequestOptions, S3Port } from '../s3/port.ts';
import { ARENA_BYTES } from '../local/file-source.ts';
import { ADAPTIVE_MAX, ADAPTIVE_START, Throttle } from '../core/throttle.ts';

export interface EngineOptions extends RequestOptions, ObjectSettingOptions {
  file: string;
  bucket: string;
  key: string;
  s3: S3Port;
  /** wanted part size in bytes (default 16 MiB); raised to fit 10,000 parts. A resume keeps the journal's. */
  partSize?: number;
  /** the server's minimum part size (default 5 MiB); lower only for servers configured for it */
  minPartSize?: number;
  /** the server's part-count limit (default S3's 10,000; Swift's s3api allows 1,000): the part size is raised to fit it */
  maxParts?: number;
  /**
   * parallel UploadPart calls, fixed. Without it the level is searched: from 8, doubled while the
   * aggregate rate rises, up to 32 (see core/throttle.ts). Ignored when `limiter` is given.
   */
  concurrency?: number;
  /** one p-limit limiter shared by several uploads, so a backup tool bounds all of them at once */
  limiter?: LimitFunction;
  /**
   * Bandwidth cap in bytes per second for this upload's part bodies (at least 64 KiB/s). To cap
   * several uploads together (the whole process), pass one `rateLimiter` to all of them instead.
   */
  maxBytesPerSecond?: number;
  /** one `new RateLimiter(bytesPerSecond)` shared by several uploads; wins over maxBytesPerSecond */
  rateLimiter?: RateLimiter;
  /** additional checksum (default CRC32C); 'none' relies on Content-MD5 and MD5 ETags only */
  checksumAlgorithm?: ChecksumAlgorithm | 'none';
  /**
   * FULL_OBJECT (default for CRCs: the same value on every server) or COMPOSITE (AWS's own default
   * for CRC32/CRC32C; the only type for SHA-1/SHA-256). CRC64NVME is always FULL_OBJECT.
   */
  checksumType?: ChecksumType;
  /** where journals live (default $PARTWISE_STATE_DIR or ~/.local/state/partwise) */
  stateDir?: string;
  /** stops new parts, aborts requests in flight and leaves the upload resumable (PausedError) */
  signal?: AbortSignal;
  retry?: Partial<RetryPolicy>;
  /** worker threads for the resume verification phase (default: one per core) */
  hashWorkers?: number;
  /**
   * Parts larger than this are not held in memory: they are hashed in a first pass over the file
   * and streamed from it in a second (the server checks the bytes against the precomputed MD5 and
   * checksum), through a 1 MiB arena per part in flight. Default 1 MiB: above it a held part
   * saves only the second read from the page cache, and costs its whole size in memory.
   */
  streamPartsAbove?: number;
  /** abort any journaled upload for this file and destination and start over */
  fresh?: boolean;
  /**
   * With no journal, look for uploads of this key already on the server and adopt the one proven
   * to hold this file (default false in the library, on in the CLI). An upload this machine was
   * creating when it was stopped is looked for whatever this says.
   */
  discover?: boolean;
  /** adopt this upload (with the same proof as discovery) instead of starting one */
  uploadId?: string;
  /**
   * Never replace an object at the key: refused before anything is sent when one is there (unless
   * it is proven to be this file), and Complete is sent with If-None-Match so a writer that got
   * there meanwhile is not replaced either.
   */
  noOverwrite?: boolean;
  /** test hook: randomness for retry jitter */
  random?: () => number;
  /** test hook: the clock the throttle reads */
  now?: () => number;
}

export const DEFAULT_STREAM_PARTS_ABOVE = ARENA_BYTES;

/** The level of a stream's uploads when none is given: its parts are held in memory. */
export const HELD_PARTS_CONCURRENCY = 4;

/**
 * The limiter for an upload's parts: the caller's, or one of its own. With no concurrency given its
 * level is searched (core/throttle.ts), unless the parts are held in memory (a stream's): there a
 * higher level would cost a part size each, so it stays where it starts.
 */
export function partLimiter(o: Pick<EngineOptions, 'concurrency' | 'limiter' | 'now'>, held = false): LimitFunction {
  if (o.limiter) return o.limiter;
  // Held parts cost a part size each: a stream starts (and stays) where a fixed level always began.
  const limiter = pLimit(o.concurrency ?? (held ? HELD_PARTS_CONCURRENCY : ADAPTIVE_START));
  if (o.concurrency === undefined && !held) Throttle.for(limiter, { search: { max: ADAPTIVE_MAX }, ...(o.now ? { now: o.now } : {}) });
  return limiter;
}

/** The part layout for `size` bytes under the options' part size, the server's minimum part size and its part-count limit. */
export function planFor(size: number, o: Pick<EngineOptions, 'partSize' | 'minPartSize' | 'maxParts'>): PartPlan {
  return planParts(size, { ...(o.partSize !== undefined ? { partSize: o.partSize } : {}), ...(o.minPartSize !== undefined ? { minPartSize: o.minPartSize } : {}), ...(o.maxParts !== undefined ? { maxParts: o.maxParts } : {}) });
}

export function validateOptions(o: EngineOptions): void {
  if (!o.file || !o.bucket || !o.key) throw new InvalidOptionsError('file, bucket and key are required');
  // A folder's name: the next upload to it would replace the object without a word (the command appends the file's name).
  if (o.key.endsWith('/')) throw new InvalidOptionsError(`the key ${JSON.stringify(o.key)} ends with "/", a folder's name: give the object's whole key`);
  // JavaScript callers get no type check: an S3Client (or nothing) where the port goes is said in words.
  if (typeof (o.s3 as Partial<EngineOptions['s3']> | undefined)?.describeEndpoint !== 'function') {
    throw new InvalidOptionsError('s3 must be an S3 port: new SdkS3Port(createS3Client({ region, endpoint })) or new SdkS3Port(yourS3Client), both exported (createUpload and createStreamUpload make one from client / endpoint / region)');
  }
  if (o.checksumAlgorithm !== undefined && o.checksumAlgorithm !== 'none' && !isChecksumAlgorithm(o.checksumAlgorithm)) {
    throw new InvalidOptionsError(`checksumAlgorithm must be one of CRC64NVME, CRC32C, CRC32, SHA256, SHA1 or none; got ${String(o.checksumAlgorithm)}`);
  }
  if (o.maxParts !== undefined && (!Number.isSafeInteger(o.maxParts) || o.maxParts < 1 || o.maxParts > S3_MAX_PARTS)) {
    throw new InvalidOptionsError(`maxParts must be a whole number from 1 to ${S3_MAX_PARTS}; got ${o.maxParts}`);
  }
  if (o.concurrency !== undefined && (!Number.isInteger(o.concurrency) || o.concurrency < 1)) {
    throw new InvalidOptionsError(`concurrency must be a positive integer; got ${o.concurrency}`);
  }
  if (o.checksumType !== undefined) {
    const alg = o.checksumAlgorithm ?? DEFAULT_CHECKSUM_ALGORITHM;
    const ok = o.checksumType === 'COMPOSITE' ? alg !== 'CRC64NVME' && alg !== 'none' : alg === 'CRC32' || alg === 'CRC32C' || alg === 'CRC64NVME';
    if (!ok) throw new InvalidOptionsError(`checksumType ${o.checksumType} cannot be used with ${alg}: SHA-1/SHA-256 are COMPOSITE only, CRC64NVME FULL_OBJECT only`);
  }
  if (o.sseCustomerKey && o.sseCustomerKey.length !== 32) throw new InvalidOptionsError('sseCustomerKey must be 32 bytes (AES-256)');
  if (o.checksumAlgorithm === 'none' && (o.sseCustomerKey || o.serverSideEncryption?.startsWith('aws:kms'))) {
    // Under SSE-KMS and SSE-C ETags are not MD5s: without a checksum nothing could prove the object.
    throw new InvalidOptionsError('checksumAlgorithm none cannot be used with SSE-KMS or SSE-C: their ETags are not MD5s, so nothing could verify the upload; use a checksum (CRC32C is the default)');
  }
  if (o.maxBytesPerSecond !== undefined && !(Number.isFinite(o.maxBytesPerSecond) && o.maxBytesPerSecond >= PACED_SLICE)) {
    // Below one slice per second a part's request would sit silent long enough to time out.
    throw new InvalidOptionsError(`maxBytesPerSecond must be at least ${PACED_SLICE} (64 KiB/s); got ${o.maxBytesPerSecond}`);
  }
  const settings = settingsProblems(o);
  if (settings.length) throw new InvalidOptionsError(settings.join('; '));
  if (o.uploadId && hasExplicitSettings(o)) {
    throw new InvalidOptionsError('uploadId cannot be combined with object settings: an upload started elsewhere cannot be checked for its tags, ACL, storage class or Object Lock; start a new upload instead');
  }
  if (o.streamPartsAbove !== undefined && (!Number.isSafeInteger(o.streamPartsAbove) || o.streamPartsAbove < 1 || o.streamPartsAbove > S3_MAX_PART_SIZE)) {
    throw new InvalidOptionsError(`streamPartsAbove must be a whole number of bytes from 1 to 5 GiB; got ${o.streamPartsAbove}`);
  }
}

/** The checksum asked for: undefined when none was (a resume then keeps its upload's), null for 'none'. */
export function wantedAlgorithm(o: Pick<EngineOptions, 'checksumAlgorithm'>): ChecksumAlgorithm | null | undefined {
  return o.checksumAlgorithm === undefined ? undefined : o.checksumAlgorithm === 'none' ? null : o.checksumAlgorithm;
}

/** The checksum a new upload or object is sent with: the one asked for, else the default; null for 'none'. */
export function sendAlgorithm(o: Pick<EngineOptions, 'checksumAlgorithm'>): ChecksumAlgorithm | null {
  const w = wantedAlgorithm(o);
  return w === undefined ? DEFAULT_CHECKSUM_ALGORITHM : w;
}

/**
 * Loads what an upload hashes with before it creates or sends anything: a checksum this runtime
 * cannot compute (CRC64NVME needs WebAssembly, which `node --jitless` lacks) is refused, for a new
 * upload (choose another) or one being resumed (`resuming`: its upload id; go on elsewhere).
 */
export async function loadSendHashers(alg: ChecksumAlgorithm | null, resuming?: string): Promise<void> {
  await loadHashers([alg ?? undefined, 'MD5']).catch((err: unknown) => {
    const why = `The ${alg ?? 'MD5'} checksum cannot be computed in this runtime (${(err as Error)?.message ?? String(err)})`;
    throw new InvalidOptionsError(
      resuming
        ? `${why}, and upload ${resuming} uses it: resume it in a runtime that can (one with WebAssembly: not node --jitless), or start over with another checksum (fresh: true, checksumAlgorithm: 'CRC32C'; CLI: --fresh --checksum crc32c). The upload and its journal are kept.`
        : `${why}; choose another (CLI: --checksum crc32c). Nothing was created on the server.`,
      err,
    );
  });
}

export function retryPolicy(o: EngineOptions): RetryPolicy {
  return { ...DEFAULT_RETRY_POLICY, ...o.retry };
}

/** The per-request parameters every S3 call carries (never logged, never journaled). */
export function requestOptions(o: RequestOptions): RequestOptions {
  const r: RequestOptions = {};
  if (o.requestPayer) r.requestPayer = o.requestPayer;
  if (o.expectedBucketOwner) r.expectedBucketOwner = o.expectedBucketOwner;
  if (o.sseCustomerKey) r.sseCustomerKey = o.sseCustomerKey;
  if (o.serverSideEncryption) r.serverSideEncryption = o.serverSideEncryption;
  if (o.sseKmsKeyId) r.sseKmsKeyId = o.sseKmsKeyId;
  return r;
}

/** What the journal keeps of an SSE-C key: its MD5, which S3 itself stores, to refuse another key. */
export function sseKeyMd5(o: EngineOptions): string | null {
  return o.sseCustomerKey ? createHash('md5').update(o.sseCustomerKey).digest('base64') : null;
}
