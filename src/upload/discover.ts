/**
 * Discovery: with no journal, find the multipart uploads already open for exactly this key, prove
 * which (if any) holds this file's bytes with the same evidence a resume uses, and adopt it. A
 * candidate with a part that does not match is never adopted; one with no parts is never adopted
 * either: if this machine recorded, just before CreateMultipartUpload, that it was creating one, the
 * single empty upload started about then is aborted (no orphan), and a new one begins.
 */
import { checksumTypeFor, etagsAreMd5, isChecksumAlgorithm, stripQuotes, type ChecksumAlgorithm, type ChecksumType } from '../core/checksums.ts';
import type { EngineContext } from './context.ts';
import { InvalidOptionsError, S3RequestError, isNoSuchUpload, isPermanentRefusal } from '../core/errors.ts';
import { fingerprint, type SourceFingerprint } from '../local/file-source.ts';
import { abortMultipart } from './finish.ts';
import { verifyObject, type VerifyObjectResult } from './inspect.ts';
import { JOURNAL_SCHEMA, type JournalData } from '../local/journal.ts';
import type { ListAllResult } from '../s3/list-parts.ts';
import { loadSendHashers, sendAlgorithm, sseKeyMd5 } from './options.ts';
import { S3_MAX_PARTS, type PartPlan } from '../core/planner.ts';
import type { RemotePart } from '../core/reconcile.ts';
import type { HeadOutput, IncompleteUpload } from '../s3/port.ts';
import type { CandidateReport, CandidateStatus, DiscoveryReport } from './events.ts';
import { listRemote, verifyListed } from './session.ts';
import type { RemoteVerification } from './types.ts';

export interface Adoption {
  journal: JournalData;
  plan: PartPlan;
  verified: RemoteVerification;
}

/** Every in-progress upload of exactly `key` (the listing's prefix is only a prefix), every page. */
export async function uploadsOfKey(cx: EngineContext, bucket: string, key: string): Promise<IncompleteUpload[]> {
  const out: IncompleteUpload[] = [];
  let keyMarker: string | undefined;
  let uploadIdMarker: string | undefined;
  for (let page = 0; page < 10_000; page++) {
    const res = await cx.retry(() =>
      cx.s3.listMultipartUploads({ bucket, prefix: key, ...(keyMarker ? { keyMarker } : {}), ...(uploadIdMarker ? { uploadIdMarker } : {}) }, cx.req, cx.signal),
    );
    out.push(...res.uploads.filter((u) => u.key === key));
    if (!res.isTruncated || (!res.nextKeyMarker && !res.nextUploadIdMarker)) break;
    if (res.nextKeyMarker === keyMarker && res.nextUploadIdMarker === uploadIdMarker) break; // marker stuck
    if (res.nextKeyMarker !== undefined && res.nextKeyMarker > key) break; // sorted by key: past ours
    keyMarker = res.nextKeyMarker;
    uploadIdMarker = res.nextUploadIdMarker;
  }
  return out;
}

/**
 * The part size an upload was made with, from its listed parts: every part but the file's last has
 * the part size; the last has the rest. Refused when the parts cannot be this file's layout.
 */
export function inferLayout(parts: readonly Pick<RemotePart, 'partNumber' | 'size'>[], fileSize: number): { partSize: number; partCount: number } | { why: string } {
  if (parts.length === 0) return { why: 'it has no parts yet' };
  const partSize = Math.max(...parts.map((p) => p.size));
  if (partSize <= 0) return { why: 'its parts are empty' };
  const partCount = Math.max(1, Math.ceil(fileSize / partSize));
  if (partCount > S3_MAX_PARTS) return { why: `with ${partSize}-byte parts this file would need ${partCount} parts, over S3's 10,000` };
  const lastSize = fileSize - (partCount - 1) * partSize;
  for (const p of parts) {
    if (p.partNumber > partCount) return { why: `part ${p.partNumber} is beyond the ${partCount} parts of ${partSize} bytes this file would have` };
    const want = p.partNumber === partCount ? lastSize : partSize;
    if (p.size !== want) return { why: `part ${p.partNumber} has ${p.size} bytes; with ${partSize}-byte parts this file's part ${p.partNumber} has ${want}` };
  }
  return { partSize, partCount };
}

interface Evaluated {
  report: CandidateReport;
  adoption?: Adoption;
}

function journalFor(cx: EngineContext, fp: SourceFingerprint, uploadId: string, plan: PartPlan, listed: ListAllResult, endpoint: string): JournalData {
  const o = cx.o;
  const named = listed.checksumAlgorithm ?? listed.parts.find((p) => p.checksumAlgorithm)?.checksumAlgorithm;
  const alg: ChecksumAlgorithm | null = isChecksumAlgorithm(named) ? named : listed.parts.length === 0 ? sendAlgorithm(o) : null;
  const type: ChecksumType | null = alg ? (listed.checksumType === 'COMPOSITE' || listed.checksumType === 'FULL_OBJECT' ? listed.checksumType : (o.checksumType ?? checksumTypeFor(alg))) : null;
  const now = new Date().toISOString();
  return {
    schema: JOURNAL_SCHEMA,
    bucket: o.bucket,
    key: o.key,
    uploadId,
    endpoint,
    partSize: plan.partSize,
    partCount: plan.partCount,
    checksumAlgorithm: alg,
    checksumType: type,
    etagIsMd5: etagsAreMd5({ serverSideEncryption: o.serverSideEncryption, sseCustomerAlgorithm: o.sseCustomerKey ? 'AES256' : undefined, etag: listed.parts[0]?.etag }),
    source: fp,
    sseCustomerKeyMd5: sseKeyMd5(o),
    createdAt: now,
    updatedAt: now,
    parts: [],
  };
}

/** How far the server's `initiated` may be from this machine's intent: S3's own clock-skew tolerance. */
export const INTENT_WINDOW_MS = 15 * 60_000;

async function evaluate(cx: EngineContext, fp: SourceFingerprint, u: IncompleteUpload, endpoint: string, intentAt: number | undefined): Promise<Evaluated | undefined> {
  const base = { uploadId: u.uploadId, ...(u.initiated ? { initiated: u.initiated } : {}) };
  let listed: ListAllResult;
  try {
    listed = await listRemote(cx, { bucket: cx.o.bucket, key: cx.o.key, uploadId: u.uploadId });
  } catch (err) {
    if (isNoSuchUpload(err)) return undefined; // finished or aborted meanwhile
    if (err instanceof S3RequestError) return { report: { ...base, parts: 0, status: 'unprovable', why: `its parts cannot be listed (${err.s3Code})` } };
    throw err;
  }
  const report = { ...base, parts: listed.parts.length, ...(listed.abortDate ? { abortDate: listed.abortDate } : {}) };
  if (listed.abortDate && listed.abortDate.getTime() <= Date.now()) {
    return { report: { ...report, status: 'expired', why: `a lifecycle rule aborts it (abort date ${listed.abortDate.toISOString()} has passed)` } };
  }
  let plan: PartPlan;
  if (listed.parts.length === 0) {
    // Nothing to prove it by; only this machine's record of creating it, at about that time, makes it ours.
    const ours = intentAt !== undefined && u.initiated !== undefined && Math.abs(u.initiated.getTime() - intentAt) <= INTENT_WINDOW_MS;
    return { report: ours ? { ...report, status: 'ours-empty', why: 'this machine created it and was stopped before its journal was written; it has no parts' } : { ...report, status: 'unprovable', why: 'it has no parts to prove it holds this file' } };
  } else {
    const layout = inferLayout(listed.parts, fp.size);
    if ('why' in layout) return { report: { ...report, status: 'stale', why: `its parts are not this file's layout: ${layout.why}` } };
    plan = { fileSize: fp.size, ...layout };
  }
  const journal = journalFor(cx, fp, u.uploadId, plan, listed, endpoint);
  try {
    await loadSendHashers(journal.checksumAlgorithm, u.uploadId);
  } catch (err) {
    // Its parts cannot be hashed here (CRC64NVME without WebAssembly): not provable by this run.
    if (!(err instanceof InvalidOptionsError)) throw err;
    const why = (err.cause as Error | undefined)?.message ?? err.message;
    return { report: { ...report, status: 'unprovable', partSize: plan.partSize, why: `its ${journal.checksumAlgorithm} part checksums cannot be computed in this runtime (${why}); a run where they can (with WebAssembly: not node --jitless) can prove and adopt it` } };
  }
  const verified = await verifyListed(cx, journal, plan, fp, listed);
  const r = verified.report;
  if (r.extraParts.length) return { report: { ...report, status: 'stale', why: `it has parts ${r.extraParts.join(', ')} beyond this file's ${plan.partCount}` } };
  // Encryption must be what this run asks for: an ETag equal to the part's MD5 means the part is
  // stored plain (SSE-KMS and SSE-C ETags are not MD5s).
  const encrypted = cx.o.sseCustomerKey !== undefined || (cx.o.serverSideEncryption ?? '').startsWith('aws:kms');
  const plainPart = listed.parts.find((p) => verified.local.get(p.partNumber)?.md5Hex === stripQuotes(p.etag).toLowerCase());
  if (encrypted && plainPart) return { report: { ...report, status: 'stale', partSize: plan.partSize, why: `its parts are not encrypted as this upload asks (part ${plainPart.partNumber}'s ETag is its MD5)` } };
  const listedNumbers = new Set(listed.parts.map((p) => p.partNumber));
  const bad = r.parts.find((p) => listedNumbers.has(p.partNumber) && p.status !== 'verified');
  if (bad) {
    const status: CandidateStatus = bad.status === 'unverifiable' ? 'unprovable' : 'stale';
    return { report: { ...report, status, partSize: plan.partSize, why: `part ${bad.partNumber}: ${bad.status}${bad.detail ? ` (${bad.detail})` : ''}` } };
  }
  const why = listed.parts.length ? `all ${listed.parts.length} of its parts match this file (${[...new Set(r.parts.flatMap((p) => p.basis))].join(' and ')})` : 'this machine created it and was stopped before its journal was written';
  return { report: { ...report, status: 'match', partSize: plan.partSize, why }, adoption: { journal, plan, verified } };
}

/**
 * Finds and proves the uploads of this key. `uploadId`: only that one (adopt it or say why not).
 * `intentAt`: this machine recorded, at that time, that it was about to create an upload.
 */
export async function discover(cx: EngineContext, fp: SourceFingerprint, endpoint: string, opts: { uploadId?: string; intentAt?: number; dryRun?: boolean } = {}): Promise<{ report: DiscoveryReport; adoption?: Adoption }> {
  const key = cx.o.key;
  let uploads: IncompleteUpload[];
  let unlisted: string | undefined;
  try {
    uploads = opts.uploadId ? [{ key, uploadId: opts.uploadId }] : await uploadsOfKey(cx, cx.o.bucket, key);
  } catch (err) {
    if (!(err instanceof S3RequestError && (err.s3Code === 'AccessDenied' || isPermanentRefusal(err)))) throw err;
    // Without s3:ListBucketMultipartUploads, or on a server without the call, nothing can be found; say so and go on.
    const why = err.s3Code === 'AccessDenied' ? `${err.s3Code}: needs s3:ListBucketMultipartUploads` : `this server does not ${err.s3Code === 'MethodNotAllowed' || err.httpStatus === 405 ? 'allow' : 'implement'} ListMultipartUploads: ${err.s3Code}${err.httpStatus ? ` (HTTP ${err.httpStatus})` : ''}${err.serverMessage ? `, "${err.serverMessage}"` : ''}`;
    cx.emit('warning', { code: 'DISCOVERY_SKIPPED', message: `cannot list the uploads of this key (${why}); starting a new upload` });
    uploads = [];
    unlisted = `the uploads of this key could not be listed (${why})`;
  }
  // Newest first: when several match, the most recent is adopted.
  uploads.sort((a, b) => (b.initiated?.getTime() ?? 0) - (a.initiated?.getTime() ?? 0));
  const evaluated: Evaluated[] = [];
  for (const u of uploads) {
    const e = await evaluate(cx, fp, u, endpoint, opts.uploadId ? undefined : opts.intentAt);
    if (e) evaluated.push(e);
  }
  const chosen = evaluated.find((e) => e.adoption);
  // Only one empty upload near the intent can be ours; two or more are ambiguous and left alone.
  const empties = evaluated.filter((e) => e.report.status === 'ours-empty');
  if (empties.length > 1) for (const e of empties) Object.assign(e.report, { status: 'unprovable', why: 'it has no parts, and more than one empty upload started about when this machine created one' });
  const ownEmpty = empties.length === 1 ? empties[0]!.report.uploadId : undefined;
  if (ownEmpty && !opts.dryRun) await abortMultipart(cx, { bucket: cx.o.bucket, key, uploadId: ownEmpty });
  const candidates = evaluated.map((e) => e.report);
  const report: DiscoveryReport = chosen
    ? { key, candidates, chosen: chosen.report.uploadId, why: `adopting upload ${chosen.report.uploadId}: ${chosen.report.why}` }
    : { key, candidates, why: candidates.length ? `none of the ${candidates.length} open upload(s) of this key is proven to hold this file` : (unlisted ?? 'no upload of this key is open on the server') };
  if (ownEmpty) report.aborted = [ownEmpty];
  cx.emit('discover', report);
  return chosen?.adoption ? { report, adoption: chosen.adoption } : { report };
}

/**
 * What is at the key: `exists` when HEAD found an object, `present` when that object is proven to
 * be this file. A HEAD this run may not make (4xx) counts as nothing seen.
 */
export async function lookAtKey(cx: EngineContext, opts: { existsOnly?: boolean } = {}): Promise<{ exists: boolean; head?: HeadOutput; present?: VerifyObjectResult & { etag: string } }> {
  const o = cx.o;
  const head = await cx.retry(() => cx.s3.headObject({ bucket: o.bucket, key: o.key }, cx.req, cx.signal)).catch((err: unknown) => {
    // Cannot look (no s3:GetObject, or an SSE-C object this run has no key for): just upload.
    if (err instanceof S3RequestError && err.httpStatus !== undefined && err.httpStatus >= 400 && err.httpStatus < 500) return undefined;
    throw err;
  });
  if (!head) return { exists: false };
  if (opts.existsOnly) return { exists: true, head };
  const fp = await fingerprint(o.file);
  if (head.size !== fp.size) return { exists: true, head };
  // Stored as this run asks: the same encryption, or it is not "already there".
  const wantC = o.sseCustomerKey !== undefined;
  const wantKms = (o.serverSideEncryption ?? '').startsWith('aws:kms');
  const wantS3 = o.serverSideEncryption === 'AES256';
  const headKms = (head.serverSideEncryption ?? '').startsWith('aws:kms');
  if (wantC !== Boolean(head.sseCustomerAlgorithm) || wantKms !== headKms || (wantS3 && head.serverSideEncryption !== 'AES256')) return { exists: true, head };
  const r = await verifyObject(cx.s3, { file: o.file, bucket: o.bucket, key: o.key, req: cx.req, signal: cx.signal, head, ...(o.hashWorkers !== undefined ? { hashWorkers: o.hashWorkers } : {}) });
  return r.proven ? { exists: true, head, present: { ...r, etag: head.etag } } : { exists: true, head };
}
