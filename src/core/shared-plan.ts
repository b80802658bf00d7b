/**
 * One object from many workers: the pure part. A plan (what the planner began: the upload, the
 * part layout, the source's identity) and receipts (what each worker holds proven on the server)
 * live in the bucket beside the key; this module decides each worker's range of parts, reads the
 * worker index a scheduler gives, checks a plan or a receipt is whole and says what is wrong with
 * it, and combines part CRCs into range and object CRCs without reading any data.
 */
import { createHash } from 'node:crypto';
import { crcCombine, type ChecksumAlgorithm } from './checksums.ts';
import { InvalidOptionsError } from './errors.ts';
import type { ObjectSettings } from './object-settings.ts';

/** The checksums whose part values combine into the whole object's (FULL_OBJECT). */
export type CombinableAlgorithm = 'CRC32' | 'CRC32C' | 'CRC64NVME';
export const COMBINABLE: readonly CombinableAlgorithm[] = ['CRC64NVME', 'CRC32C', 'CRC32'];

export function isCombinable(alg: ChecksumAlgorithm | null | undefined): alg is CombinableAlgorithm {
  return alg === 'CRC32' || alg === 'CRC32C' || alg === 'CRC64NVME';
}

/** A few spread samples of the source, so a worker that has other bytes than the planner is refused. */
export interface SourceSample {
  offset: number;
  length: number;
  /** base64 CRC32C of the sample's bytes */
  crc32c: string;
}

export interface SharedPlan {
  format: 'partwise-plan';
  version: 1;
  bucket: string;
  key: string;
  uploadId: string;
  createdAt: string;
  workers: number;
  size: number;
  partSize: number;
  partCount: number;
  checksumAlgorithm: CombinableAlgorithm;
  checksumType: 'FULL_OBJECT';
  /** what identifies the bytes: size and modification time as the planner saw them, and samples */
  source: { name: string; size: number; mtimeMs: number; samples: SourceSample[] };
  /** the object settings the upload was created with (no secrets: an SSE-C key is not allowed here) */
  settings: ObjectSettings;
  /**
   * Set by the finish step once the object is proven, before any receipt is removed: the plan stays
   * as this small record, so every step run again (a requeued finish, the whole pipeline rerun)
   * proves the object by it and does nothing, instead of failing for want of a plan.
   */
  finished?: FinishedRecord;
}

export interface FinishedRecord {
  /** the object's full-object checksum (base64), combined from the receipts and shown by the server */
  checksum: string;
  etag: string;
  finishedAt: string;
}

export interface ReceiptPart {
  partNumber: number;
  size: number;
  /** base64 checksum of the part, as the worker hashed it and the server stored it */
  checksum: string;
}

export interface Receipt {
  format: 'partwise-receipt';
  version: 1;
  uploadId: string;
  worker: number;
  workers: number;
  first: number;
  last: number;
  parts: ReceiptPart[];
  bytes: number;
  /** the range's combined CRC (base64), '' for an empty range */
  crc: string;
  writtenAt: string;
  host: string;
}

/** Where the plan and receipts of a shared upload live: beside the key, under one prefix. */
export function planKey(key: string): string {
  return `${key}.partwise/plan.json`;
}

export function receiptKey(key: string, worker: number, workers: number): string {
  const w = String(workers).length;
  return `${key}.partwise/receipt-${String(worker).padStart(w, '0')}-of-${workers}.json`;
}

/** Worker i of N takes parts first..last (contiguous, 1-based, inclusive; empty when N exceeds the parts). */
export function rangeOf(worker: number, workers: number, partCount: number): { first: number; last: number } {
  const per = Math.ceil(partCount / workers);
  return { first: worker * per + 1, last: Math.min((worker + 1) * per, partCount) };
}

/** The worker whose range holds a part. */
export function workerOf(partNumber: number, workers: number, partCount: number): number {
  return Math.floor((partNumber - 1) / Math.ceil(partCount / workers));
}

/** "I/N" (0-based index I of N), as given on the command line. */
export function parseIndex(text: string, flag: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!m) throw new InvalidOptionsError(`${flag} takes I/N (0 ≤ I < N) or auto; got ${JSON.stringify(text)}`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || index >= count) throw new InvalidOptionsError(`${flag} ${text}: the index must be from 0 to N-1`);
  return { index, count };
}

/**
 * The index a scheduler gives its array task, from the environment: Slurm's SLURM_ARRAY_TASK_ID, a
 * Kubernetes Indexed Job's JOB_COMPLETION_INDEX, AWS Batch's AWS_BATCH_JOB_ARRAY_INDEX. Never the
 * count: Slurm's SLURM_ARRAY_TASK_COUNT (and _MIN) describe the array submitted, and a rerun of one
 * task (sbatch --array=2) is an array of one whose minimum is 2, so the task id itself is the index
 * and N comes from the plan or from auto/N.
 */
export function indexFromEnv(env: Record<string, string | undefined>, flag: string): { index: number; from: string } {
  const num = (name: string) => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    if (!/^\d+$/.test(v)) throw new InvalidOptionsError(`${flag} auto: ${name}=${JSON.stringify(v)} is not a whole number`);
    return Number(v);
  };
  for (const name of ['SLURM_ARRAY_TASK_ID', 'JOB_COMPLETION_INDEX', 'AWS_BATCH_JOB_ARRAY_INDEX']) {
    const v = num(name);
    if (v !== undefined) return { index: v, from: name };
  }
  throw new InvalidOptionsError(`${flag} auto: no scheduler index in the environment (SLURM_ARRAY_TASK_ID, JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX); give it as I/N`);
}

/** Which of N shards a folder entry belongs to: a stable hash of its relative path, the same on every host. */
export function shardOf(relPath: string, count: number): number {
  return createHash('sha256').update(relPath).digest().readUInt32BE(0) % count;
}

const toBig = (b64: string) => BigInt(`0x${Buffer.from(b64, 'base64').toString('hex') || '0'}`);
function fromBig(alg: CombinableAlgorithm, v: bigint): string {
  const out = Buffer.alloc(alg === 'CRC64NVME' ? 8 : 4);
  if (alg === 'CRC64NVME') out.writeBigUInt64BE(v);
  else out.writeUInt32BE(Number(v));
  return out.toString('base64');
}

/**
 * The CRC of consecutive pieces (parts, or workers' ranges) from each piece's CRC and length, as S3
 * combines part CRCs into a FULL_OBJECT value: no byte is read. Empty pieces are skipped; '' for none.
 */
export function combineCrcs(alg: CombinableAlgorithm, pieces: readonly { crc: string; bytes: number }[]): string {
  let acc: bigint | undefined;
  for (const p of pieces) {
    if (p.bytes === 0 && p.crc === '') continue;
    const v = toBig(p.crc);
    acc = acc === undefined ? v : crcCombine(alg, acc, v, p.bytes);
  }
  return acc === undefined ? '' : fromBig(alg, acc);
}

/** A receipt's parts' combined CRC: what its `crc` must be. */
export function receiptCrc(alg: CombinableAlgorithm, parts: readonly ReceiptPart[]): string {
  return combineCrcs(alg, parts.map((p) => ({ crc: p.checksum, bytes: p.size })));
}

/** What is wrong with a plan read from the bucket (a partial write, another program's object), or []. */
export function planProblems(p: unknown, bucket: string, key: string): string[] {
  const o = p as Partial<SharedPlan> | undefined;
  if (!o || typeof o !== 'object' || o.format !== 'partwise-plan') return ['it is not a partwise plan'];
  if (o.version !== 1) return [`it is plan version ${String(o.version)}, not 1 (written by another partwise version?)`];
  const out: string[] = [];
  if (o.bucket !== bucket || o.key !== key) out.push(`it is for s3://${o.bucket}/${o.key}`);
  for (const f of ['workers', 'size', 'partSize', 'partCount'] as const) if (!Number.isSafeInteger(o[f]) || (o[f] as number) < (f === 'size' ? 0 : 1)) out.push(`${f} is not valid`);
  if (!isCombinable(o.checksumAlgorithm)) out.push('its checksum is not one whose part values combine (CRC32, CRC32C, CRC64NVME)');
  if (typeof o.uploadId !== 'string' || !o.uploadId) out.push('it names no upload');
  if (!o.source || !Array.isArray(o.source.samples)) out.push('it has no source identity');
  if (o.finished !== undefined && (typeof o.finished !== 'object' || o.finished === null || typeof o.finished.checksum !== 'string' || !o.finished.checksum)) out.push('its finished record names no checksum');
  return out;
}

/** What is wrong with worker `worker`'s receipt against the plan and its own contents, or []. */
export function receiptProblems(r: unknown, plan: SharedPlan, worker: number): string[] {
  const o = r as Partial<Receipt> | undefined;
  if (!o || typeof o !== 'object' || o.format !== 'partwise-receipt' || o.version !== 1 || !Array.isArray(o.parts)) return ['it is not a partwise receipt'];
  if (o.uploadId !== plan.uploadId) return [`it is for upload ${o.uploadId}, not the plan's ${plan.uploadId}`];
  const want = rangeOf(worker, plan.workers, plan.partCount);
  if (o.worker !== worker || o.workers !== plan.workers || o.first !== want.first || o.last !== want.last) return [`it is for worker ${o.worker}/${o.workers} parts ${o.first}..${o.last}, not worker ${worker}/${plan.workers} parts ${want.first}..${want.last}`];
  const out: string[] = [];
  const expected = Math.max(0, want.last - want.first + 1);
  if (o.parts.length !== expected) out.push(`it lists ${o.parts.length} parts, its range has ${expected}`);
  o.parts.forEach((p, i) => {
    const n = want.first + i;
    const size = n < plan.partCount ? plan.partSize : plan.size - (plan.partCount - 1) * plan.partSize;
    if (p.partNumber !== n || p.size !== size || typeof p.checksum !== 'string') out.push(`its entry ${i} is not part ${n} of ${size} bytes`);
  });
  if (!out.length && o.bytes !== o.parts.reduce((a, p) => a + p.size, 0)) out.push(`its bytes (${o.bytes}) are not its parts' sizes added up`);
  if (!out.length && o.crc !== receiptCrc(plan.checksumAlgorithm, o.parts)) out.push(`its range CRC ${o.crc} is not the combination of its parts' (${receiptCrc(plan.checksumAlgorithm, o.parts)})`);
  return out;
}
