/**
 * Operations around uploads rather than an upload itself: list what is incomplete on the server,
 * check a finished object against the local file, abort by id.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CHECKSUM_ALGORITHMS, etagsAreMd5, isCrc, loadHashers, type ChecksumAlgorithm } from './checksums.ts';
import { ObjectVerificationError, S3RequestError, isNoSuchUpload } from './errors.ts';
import { fingerprint } from './file-source.ts';
import { acquireLock, deleteJournal, readJournal, type JournalData } from './journal.ts';
import { listAllParts, listPartsCaller } from './list-parts.ts';
import { allParts, type PartPlan } from './planner.ts';
import type { VerificationLevel } from './events.ts';
import type { HeadOutput, RequestOptions, S3Port } from './s3-port.ts';
import { hashPartsInWorkers } from './verify-pool.ts';
import { expectedObject, expectedValues, judgeObject, provesBytes } from './verify-object.ts';

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
  /** parts and bytes so far; absent when ListParts failed (see partsError) */
  parts?: number;
  bytes?: number;
  /** why the parts could not be listed (AccessDenied, …): never shown as "0 parts" */
  partsError?: string;
  /** when a lifecycle rule will abort it (x-amz-abort-date), when the server says */
  abortDate?: Date;
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
      const row: IncompleteUploadRow = { key: u.key, uploadId: u.uploadId };
      try {
        const listed = await listAllParts(listPartsCaller(s3, { bucket, key: u.key, uploadId: u.uploadId }, req));
        row.parts = listed.parts.length;
        row.bytes = listed.parts.reduce((a, p) => a + Math.max(0, p.size), 0);
        if (listed.abortDate) row.abortDate = listed.abortDate;
      } catch (err) {
        if (!(err instanceof S3RequestError)) throw err;
        // Finished or aborted between the two calls, or not allowed: say which, never "0 parts".
        row.partsError = isNoSuchUpload(err) ? 'gone (completed or aborted meanwhile)' : `${err.s3Code}${err.httpStatus ? ` (HTTP ${err.httpStatus})` : ''}`;
      }
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
    // A journaled upload is aborted under its lock: never while a process is driving it.
    const mine = journals.filter((j) => j.data.bucket === bucket && j.data.uploadId === u.uploadId);
    const releases = [];
    try {
      for (const j of mine) releases.push(await acquireLock(j.path, { bucket, key: u.key, uploadId: u.uploadId, journalPath: j.path }));
      try {
        await s3.abortMultipartUpload({ bucket, key: u.key, uploadId: u.uploadId }, req);
      } catch (err) {
        if (!isNoSuchUpload(err)) throw err;
      }
      for (const j of mine) await deleteJournal(j.path);
    } finally {
      for (const r of releases) await r();
    }
    done.push(u.uploadId);
  }
  return done;
}

export interface VerifyObjectResult {
  level: VerificationLevel;
  checks: string[];
  mismatches: string[];
  /** true only on evidence that identifies the bytes (never on size alone) */
  proven: boolean;
  /** when not proven and nothing differs: why nothing could be proven */
  why?: string;
  partSize: number;
  partCount: number;
  checksumAlgorithm: ChecksumAlgorithm | null;
  bytesHashed: number;
}

/**
 * Checks a finished object against the local file without downloading it: HEAD the object (with
 * checksums) and its first part (for the part size), hash the file in the same parts on worker
 * threads, and compare size, multipart ETag and checksum. When the part layout cannot be learned,
 * only a full-object CRC (which does not depend on it) can still prove the object.
 */
export async function verifyObject(
  s3: S3Port,
  args: { file: string; bucket: string; key: string; req?: RequestOptions; hashWorkers?: number; onBytes?: (n: number) => void; signal?: AbortSignal; head?: HeadOutput },
): Promise<VerifyObjectResult> {
  const req = args.req ?? {};
  const ctx = { bucket: args.bucket, key: args.key };
  const fp = await fingerprint(args.file);
  // A caller that has just looked at the object passes what it saw: no second HEAD.
  const head = args.head ?? (await s3.headObject({ bucket: args.bucket, key: args.key }, req, args.signal));
  if (!head) throw new ObjectVerificationError(ctx, ['there is no object at the key (or no such bucket)']);
  const alg = CHECKSUM_ALGORITHMS.find((a) => head.checksums[a] !== undefined) ?? null;
  // The object's own algorithm only (its expected values are computed here; the file is hashed on
  // worker threads, which load their own): not every hasher, some of which need WebAssembly.
  await loadHashers([alg ?? undefined]);
  const base = { partSize: fp.size, partCount: 1, checksumAlgorithm: alg, bytesHashed: 0 };
  if (head.size !== fp.size) return { ...base, level: 'size', checks: [], mismatches: [`size: server ${head.size}, local ${fp.size}`], proven: false };

  // Part layout: from the ETag's "-N" and the size of part 1.
  const multi = /-(\d+)"?$/.exec(head.etag);
  let layout: PartPlan | undefined = multi ? undefined : { fileSize: fp.size, partSize: Math.max(1, fp.size), partCount: 1 };
  let layoutWhy = '';
  if (multi) {
    const n = Number(multi[1]);
    try {
      const part1 = await s3.headObject({ bucket: args.bucket, key: args.key, partNumber: 1 }, req);
      if (part1 && part1.size > 0 && (part1.partsCount === undefined || part1.partsCount === n) && Math.ceil(fp.size / part1.size) === n) {
        layout = { fileSize: fp.size, partSize: part1.size, partCount: n };
      } else layoutWhy = part1 ? `part 1 is ${part1.size} bytes, which does not make ${n} parts of this file` : 'HEAD of part 1 found nothing';
    } catch (err) {
      layoutWhy = `HEAD of part 1 failed: ${(err as Error).message}`;
    }
  }
  const got = alg ? head.checksums[alg]! : undefined;
  // Without the layout, only a full-object CRC can be computed: any partition of the file combines to it.
  const fullObjectOnly = !layout && alg !== null && isCrc(alg) && head.checksumType !== 'COMPOSITE' && !/-\d+$/.test(got ?? '');
  if (!layout && !fullObjectOnly) {
    const why = `the part layout could not be learned (${layoutWhy}), and ${alg ? `the server's ${alg} value (${got}) depends on it` : 'the server reports no checksum'}`;
    return { ...base, level: 'size', checks: [`size ${fp.size}`], mismatches: [], proven: false, why };
  }
  const plan: PartPlan = layout ?? { fileSize: fp.size, partSize: 64 * 1024 * 1024, partCount: Math.max(1, Math.ceil(fp.size / (64 * 1024 * 1024))) };
  const parts = allParts(plan);
  let bytesHashed = 0;
  const digests = await hashPartsInWorkers(fp.path, parts, alg ?? undefined, {
    ...(args.hashWorkers !== undefined ? { workers: args.hashWorkers } : {}),
    ...(args.signal ? { signal: args.signal } : {}),
    onBytes: (n) => {
      bytesHashed += n;
      args.onBytes?.(n);
    },
  });
  const etagIsMd5 = layout !== undefined && etagsAreMd5({ serverSideEncryption: head.serverSideEncryption, sseCustomerAlgorithm: head.sseCustomerAlgorithm });
  const expected = expectedObject(plan, alg, etagIsMd5, digests);
  const values = expectedValues(expected);
  if (fullObjectOnly) delete values.composite;
  if (!multi) {
    // A single PUT: its ETag is the plain MD5 of the file and its checksum the plain digest of the
    // file (whatever the algorithm), not a multipart ETag or a checksum of part checksums.
    if (etagIsMd5) values.etag = digests.get(1)!.md5Hex;
    delete values.composite;
    const whole = digests.get(1)!.checksum;
    if (alg && whole) values.fullObject = whole.toString('base64');
  }
  const verdict = judgeObject(head, expected, values);
  const proven = provesBytes(verdict);
  const out: VerifyObjectResult = { ...verdict, proven, partSize: layout ? plan.partSize : 0, partCount: layout ? plan.partCount : Number(multi?.[1] ?? 1), checksumAlgorithm: alg, bytesHashed };
  if (!proven && verdict.mismatches.length === 0) out.why = 'the server reports nothing that identifies the object (only its size matches)';
  return out;
}
