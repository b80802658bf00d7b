/**
 * Operations around uploads rather than an upload itself: list what is incomplete on the server,
 * check a finished object against the local file, abort by id.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CHECKSUM_ALGORITHMS, etagsAreMd5, isCrc, loadHashers, type ChecksumAlgorithm } from '../core/checksums.ts';
import { ObjectVerificationError, S3RequestError, isNoSuchUpload } from '../core/errors.ts';
import { fingerprint } from '../local/file-source.ts';
import { deleteJournal, readJournal, type JournalData } from '../local/journal.ts';
import { acquireLock } from '../local/lock.ts';
import { listAllParts, listPartsCaller } from '../s3/list-parts.ts';
import pLimit from 'p-limit';
import { allParts, type PlannedPart } from '../core/planner.ts';
import type { VerificationLevel } from './events.ts';
import type { HeadOutput, RequestOptions, S3Port } from '../s3/port.ts';
import { hashPartsInWorkers } from '../local/verify-pool.ts';
import { expectedFromParts, expectedValues, judgeObject, provesBytes } from '../core/verify-object.ts';

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

  // Part layout: the ETag's "-N", and every part's size as the server gives it.
  const multi = /-(\d+)"?$/.exec(head.etag);
  let layout: PlannedPart[] | undefined = multi ? undefined : [{ partNumber: 1, offset: 0, size: fp.size }];
  let layoutWhy = '';
  if (multi) {
    const learned = await partLayout(s3, { bucket: args.bucket, key: args.key }, req, Number(multi[1]), fp.size, args.signal);
    if (typeof learned === 'string') layoutWhy = learned;
    else layout = learned;
  }
  const got = alg ? head.checksums[alg]! : undefined;
  // Without the layout, only a full-object CRC can be computed: any partition of the file combines to it.
  const fullObjectOnly = !layout && alg !== null && isCrc(alg) && head.checksumType !== 'COMPOSITE' && !/-\d+$/.test(got ?? '');
  if (!layout && !fullObjectOnly) {
    const why = `the part layout could not be learned (${layoutWhy}), and ${alg ? `the server's ${alg} value (${got}) depends on it` : 'the server reports no checksum'}`;
    return { ...base, level: 'size', checks: [`size ${fp.size}`], mismatches: [], proven: false, why };
  }
  const parts = layout ?? allParts({ fileSize: fp.size, partSize: 64 * 1024 * 1024, partCount: Math.max(1, Math.ceil(fp.size / (64 * 1024 * 1024))) });
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
  const expected = expectedFromParts(parts, alg, etagIsMd5, digests);
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
  const out: VerifyObjectResult = { ...verdict, proven, partSize: layout ? layout[0]!.size : 0, partCount: layout ? layout.length : Number(multi?.[1] ?? 1), checksumAlgorithm: alg, bytesHashed };
  if (!proven && verdict.mismatches.length === 0) {
    const md5 = multi ? undefined : digests.get(1)?.md5Hex;
    out.why =
      verdict.plainEtag !== undefined
        ? `its ETag ${verdict.plainEtag} is ${md5 ? `not the file's MD5 (${md5})` : 'not a multipart ETag'}: other bytes, or a server whose ETags are opaque (as Google Cloud Storage's); nothing else the server reports identifies the object`
        : 'the server reports nothing that identifies the object (only its size matches)';
  }
  return out;
}

/**
 * Every part's size of a finished multipart object of `count` parts, as the server gives it: its
 * part list (GetObjectAttributes, one call per 1,000 parts; servers list parts only for checksum
 * uploads), else a HEAD of each part. Parts need not be equal: another tool may have chosen any
 * sizes, and assuming part 1's would call an identical object different. Why not, in words, when
 * the sizes cannot be learned or do not make the file.
 */
async function partLayout(s3: S3Port, ref: { bucket: string; key: string }, req: RequestOptions, count: number, fileSize: number, signal?: AbortSignal): Promise<PlannedPart[] | string> {
  let sizes: number[] | undefined;
  try {
    const listed = await listAllParts(async (marker) => {
      const out = await s3.getObjectAttributes({ ...ref, maxParts: 1000, ...(marker !== undefined ? { partNumberMarker: marker } : {}) }, req, signal);
      return { parts: out.parts.map((p) => ({ ...p, etag: '' })), isTruncated: out.isTruncated, ...(out.nextPartNumberMarker !== undefined ? { nextPartNumberMarker: out.nextPartNumberMarker } : {}) };
    });
    if (listed.parts.length === count && listed.parts.every((p, i) => p.partNumber === i + 1 && p.size >= 0)) sizes = listed.parts.map((p) => p.size);
  } catch (err) {
    if (!(err instanceof S3RequestError)) throw err; // not offered or not allowed here: ask part by part
  }
  if (!sizes) {
    const limit = pLimit(16);
    try {
      sizes = await Promise.all(
        Array.from({ length: count }, (_, i) =>
          limit(async () => {
            const h = await s3.headObject({ ...ref, partNumber: i + 1 }, req, signal);
            if (!h) throw new Error(`HEAD of part ${i + 1} found nothing`);
            if (h.partsCount !== undefined && h.partsCount !== count) throw new Error(`part ${i + 1} says the object has ${h.partsCount} parts, its ETag ${count}`);
            return h.size;
          }),
        ),
      );
    } catch (err) {
      return `HEAD of a part failed: ${(err as Error).message}`;
    }
  }
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== fileSize || sizes.some((s) => s <= 0 && count > 1)) return `the part sizes the server gives (${sizes.length > 4 ? `${sizes.slice(0, 3).join(', ')}, … ${total} bytes in all` : sizes.join(', ')}) do not make ${count} parts of this file`;
  let offset = 0;
  return sizes.map((size, i) => {
    const p = { partNumber: i + 1, offset, size };
    offset += size;
    return p;
  });
}
