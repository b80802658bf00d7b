/**
 * Operations around uploads rather than an upload itself: list what is incomplete on the server,
 * check a finished object against the local file, abort by id.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CHECKSUM_ALGORITHMS, loadHashers, type ChecksumAlgorithm } from './checksums.ts';
import { ObjectVerificationError, S3RequestError, isNoSuchUpload } from './errors.ts';
import { fingerprint } from './file-source.ts';
import { deleteJournal, readJournal, type JournalData } from './journal.ts';
import { listAllParts, listPartsCaller } from './list-parts.ts';
import { allParts, type PartPlan } from './planner.ts';
import type { VerificationLevel } from './events.ts';
import type { RequestOptions, S3Port } from './s3-port.ts';
import { hashPartsInWorkers } from './verify-pool.ts';
import { expectedValues, judgeObject, type ExpectedObject } from './verify-object.ts';

export interface JournalEntry {
  path: string;
  data: JournalData;
}

/** Every readable journal in a state folder (unreadable ones are skipped, not fatal, here). */
export async function readAllJournals(stateDir: string): Promise<JournalEntry[]> {
  let names: string[];
  try {
    names = await readdir(stateDir);
  } catch {
    return [];
  }
  const out: JournalEntry[] = [];
  for (const n of names.filter((x) => x.endsWith('.json'))) {
    const path = join(stateDir, n);
    const data = await readJournal(path).catch(() => undefined);
    if (data) out.push({ path, data });
  }
  return out;
}

export interface IncompleteUploadRow {
  key: string;
  uploadId: string;
  initiated?: Date;
  parts: number;
  bytes: number;
  /** the local journal that knows this upload, if any */
  journalPath?: string;
  /** the local file that journal uploads */
  sourcePath?: string;
}

/** Incomplete multipart uploads under a prefix, with their parts so far and whether a journal knows them. */
export async function listIncompleteUploads(s3: S3Port, bucket: string, prefix: string | undefined, stateDir: string, req: RequestOptions = {}): Promise<IncompleteUploadRow[]> {
  const journals = new Map((await readAllJournals(stateDir)).map((j) => [`${j.data.bucket}\n${j.data.uploadId}`, j]));
  const rows: IncompleteUploadRow[] = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  for (let page = 0; page < 10_000; page++) {
    const out = await s3.listMultipartUploads({ bucket, ...(prefix ? { prefix } : {}), ...(keyMarker ? { keyMarker } : {}), ...(uploadIdMarker ? { uploadIdMarker } : {}) }, req);
    for (const u of out.uploads) {
      let parts = 0;
      let bytes = 0;
      try {
        const listed = await listAllParts(listPartsCaller(s3, { bucket, key: u.key, uploadId: u.uploadId }, req));
        parts = listed.parts.length;
        bytes = listed.parts.reduce((a, p) => a + Math.max(0, p.size), 0);
      } catch (err) {
        // Finished or aborted between the two calls.
        if (!(err instanceof S3RequestError)) throw err;
      }
      const row: IncompleteUploadRow = { key: u.key, uploadId: u.uploadId, parts, bytes };
      if (u.initiated) row.initiated = u.initiated;
      const j = journals.get(`${bucket}\n${u.uploadId}`);
      if (j) {
        row.journalPath = j.path;
        row.sourcePath = j.data.source.path;
      }
      rows.push(row);
    }
    if (!out.isTruncated || (!out.nextKeyMarker && !out.nextUploadIdMarker)) break;
    if (out.nextKeyMarker === keyMarker && out.nextUploadIdMarker === uploadIdMarker) break; // marker stuck
    keyMarker = out.nextKeyMarker;
    uploadIdMarker = out.nextUploadIdMarker;
  }
  return rows;
}

/** Aborts the given uploads and removes any local journal for them. Returns the ids aborted. */
export async function abortUploads(s3: S3Port, bucket: string, uploads: { key: string; uploadId: string }[], stateDir: string, req: RequestOptions = {}): Promise<string[]> {
  const journals = await readAllJournals(stateDir);
  const done: string[] = [];
  for (const u of uploads) {
    try {
      await s3.abortMultipartUpload({ bucket, key: u.key, uploadId: u.uploadId }, req);
    } catch (err) {
      if (!isNoSuchUpload(err)) throw err;
    }
    for (const j of journals) if (j.data.bucket === bucket && j.data.uploadId === u.uploadId) await deleteJournal(j.path);
    done.push(u.uploadId);
  }
  return done;
}

export interface VerifyObjectResult {
  level: VerificationLevel;
  checks: string[];
  mismatches: string[];
  partSize: number;
  partCount: number;
  checksumAlgorithm: ChecksumAlgorithm | null;
  bytesHashed: number;
}

/**
 * Checks a finished object against the local file without downloading it: HEAD the object (with
 * checksums) and its first part (for the part size), hash the file in the same parts on worker
 * threads, and compare size, multipart ETag and checksum.
 */
export async function verifyObject(
  s3: S3Port,
  args: { file: string; bucket: string; key: string; req?: RequestOptions; hashWorkers?: number; onBytes?: (n: number) => void },
): Promise<VerifyObjectResult> {
  await loadHashers();
  const req = args.req ?? {};
  const ctx = { bucket: args.bucket, key: args.key };
  const fp = await fingerprint(args.file);
  const head = await s3.headObject({ bucket: args.bucket, key: args.key }, req);
  if (!head) throw new ObjectVerificationError(ctx, ['the object does not exist']);
  const alg = CHECKSUM_ALGORITHMS.find((a) => head.checksums[a] !== undefined) ?? null;
  const base = { partSize: fp.size, partCount: 1, checksumAlgorithm: alg, bytesHashed: 0 };
  if (head.size !== fp.size) return { ...base, level: 'size', checks: [], mismatches: [`size: server ${head.size}, local ${fp.size}`] };

  // Part layout: from the ETag's "-N" and the size of part 1.
  const multi = /-(\d+)"?$/.exec(head.etag);
  let plan: PartPlan = { fileSize: fp.size, partSize: Math.max(1, fp.size), partCount: 1 };
  let layoutKnown = !multi;
  if (multi) {
    const part1 = await s3.headObject({ bucket: args.bucket, key: args.key, partNumber: 1 }, req).catch(() => undefined);
    const n = Number(multi[1]);
    if (part1 && part1.size > 0 && (part1.partsCount === undefined || part1.partsCount === n) && Math.ceil(fp.size / part1.size) === n) {
      plan = { fileSize: fp.size, partSize: part1.size, partCount: n };
      layoutKnown = true;
    }
  }
  const parts = allParts(plan);
  let bytesHashed = 0;
  const digests = await hashPartsInWorkers(fp.path, parts, alg ?? undefined, {
    ...(args.hashWorkers !== undefined ? { workers: args.hashWorkers } : {}),
    onBytes: (n) => {
      bytesHashed += n;
      args.onBytes?.(n);
    },
  });
  const etagIsMd5 = layoutKnown && !(head.serverSideEncryption ?? '').startsWith('aws:kms') && !head.sseCustomerAlgorithm;
  const expected: ExpectedObject = {
    size: fp.size,
    algorithm: alg,
    partDigests: parts.map((p) => ({ size: p.size, checksum: digests.get(p.partNumber)?.checksum ?? Buffer.alloc(0) })),
  };
  if (etagIsMd5) expected.partMd5Hex = parts.map((p) => digests.get(p.partNumber)!.md5Hex);
  const values = expectedValues(expected);
  // A single PUT's ETag is the plain MD5 of the file, not a multipart ETag.
  if (!multi && etagIsMd5) values.etag = digests.get(1)!.md5Hex;
  const verdict = judgeObject(head, expected, values);
  return { ...verdict, partSize: plan.partSize, partCount: plan.partCount, checksumAlgorithm: alg, bytesHashed };
}
