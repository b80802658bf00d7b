/**
 * Finishing: CompleteMultipartUpload, recovery when it fails, and the verdict on the object. The
 * verdict comes from what the server reports of the object (HeadObject, else per-part checksums
 * from GetObjectAttributes, else Complete's own response when the object cannot be read), and it
 * counts only on evidence that identifies the bytes (`provesBytes`).
 */
import { checksumTypeFor, loadHashers, stripQuotes } from '../core/checksums.ts';
import type { EngineContext } from './context.ts';
import { settingsNotCarried } from './read-back.ts';
import { CompleteFailedError, ObjectExistsError, ObjectUnverifiedError, ObjectVerificationError, PausedError, S3RequestError, UploadGoneError, isNoSuchUpload } from '../core/errors.ts';
import { assertSourceUnchanged, type SourceFingerprint } from '../local/file-source.ts';
import { digestsFromJournal, type JournalData, type JournalPart } from '../local/journal.ts';
import { listAllParts } from '../s3/list-parts.ts';
import { allParts, type PartPlan } from '../core/planner.ts';
import { classifyError } from '../core/retry.ts';
import type { CompleteOutput, HeadOutput, S3Port } from '../s3/port.ts';
import type { Proof, Session } from './types.ts';
import { hashPartsInWorkers } from '../local/verify-pool.ts';
import type { LocalDigest } from '../core/hashing.ts';
import { expectedObject, expectedValues, judgeObject, judgeParts, provesBytes, type ExpectedObject, type ObjectJudgement } from '../core/verify-object.ts';

const isAccessDenied = (err: unknown) => err instanceof S3RequestError && (err.httpStatus === 403 || err.s3Code === 'AccessDenied');

/** What looking at the key found. Any other failure to look is thrown: "could not look" is never "not there". */
type Look = { kind: 'object'; head: HeadOutput } | { kind: 'absent' } | { kind: 'unreadable'; error: S3RequestError };

async function lookAtObject(cx: EngineContext, j: JournalData): Promise<Look> {
  try {
    const head = await cx.retry(() => cx.s3.headObject({ bucket: j.bucket, key: j.key }, cx.req, cx.signal));
    return head ? { kind: 'object', head } : { kind: 'absent' };
  } catch (err) {
    if (isAccessDenied(err)) return { kind: 'unreadable', error: err as S3RequestError };
    throw err;
  }
}

/** Complete's own response, judged like a HeadObject (it carries no size). */
function judgeCompleteResponse(j: JournalData, completed: CompleteOutput, expected: ExpectedObject, values: ReturnType<typeof expectedValues>): ObjectJudgement {
  const alg = j.checksumAlgorithm;
  const judgement = judgeObject(
    { etag: completed.etag ?? '', checksums: alg && completed.checksum ? { [alg]: completed.checksum } : {}, ...(completed.checksumType ? { checksumType: completed.checksumType } : {}) },
    expected,
    values,
  );
  judgement.checks = judgement.checks.map((c) => `${c} (Complete's response)`);
  return judgement;
}

function proofOf(judgement: ObjectJudgement, head: HeadOutput | undefined, whyNot: string): Proof {
  const proven = provesBytes(judgement);
  const why = proven ? undefined : judgement.mismatches.length ? `the object at the key differs: ${judgement.mismatches.join('; ')}` : whyNot;
  return { proven, judgement, ...(head ? { head } : {}), ...(why ? { why } : {}) };
}

/**
 * What was found at the key, judged against `expected`: HeadObject, then per-part checksums
 * (GetObjectAttributes) where HeadObject shows none, then Complete's own response when there is one
 * and the object could not be read or showed nothing that identifies it.
 */
/** Nothing to judge at the key (no object, or none this run may read) and no Complete response. */
function nothingToJudge(look: Exclude<Look, { kind: 'object' }>): Proof {
  if (look.kind === 'absent') return { proven: false, judgement: { level: 'size', checks: [], mismatches: ['the object is not there'] }, why: 'there is no object at the key' };
  return { proven: false, judgement: { level: 'size', checks: [], mismatches: [] }, why: unreadableWhy(look.error) };
}

const unreadableWhy = (e: S3RequestError) => `the object cannot be read (${e.s3Code}: no s3:GetObject?)`;

/**
 * The object's expected values, with the hasher they need loaded (a resume that sends nothing has
 * not loaded one: hashers are loaded where they are used).
 */
async function expectedValuesLoaded(expected: ExpectedObject): Promise<ReturnType<typeof expectedValues>> {
  await loadHashers([expected.algorithm ?? undefined]);
  return expectedValues(expected);
}

async function judgeLook(cx: EngineContext, j: JournalData, look: Look, expected: ExpectedObject, completed?: CompleteOutput): Promise<Proof> {
  const values = await expectedValuesLoaded(expected);
  if (look.kind !== 'object') {
    if (look.kind === 'absent' || !completed) return nothingToJudge(look);
    const why = unreadableWhy(look.error);
    cx.emit('warning', { code: 'NO_READ_ACCESS', message: "HeadObject was refused (no s3:GetObject?); judging the object by Complete's own response" });
    return proofOf(judgeCompleteResponse(j, completed, expected, values), undefined, `${why}, and Complete returned nothing that identifies it`);
  }
  const head = look.head;
  const judgement = judgeObject(head, expected, values);
  if (expected.algorithm && !head.checksums[expected.algorithm] && judgement.mismatches.length === 0) await checkPartsByAttributes(cx, j, expected, judgement);
  let plainWhy: string | undefined;
  if (!provesBytes(judgement) && judgement.mismatches.length === 0 && judgement.plainEtag !== undefined) plainWhy = await checkWholeMd5(cx, head.size ?? expected.size, judgement);
  if (!provesBytes(judgement) && judgement.mismatches.length === 0 && completed) {
    // HeadObject identified nothing (e.g. opaque ETags and no checksum shown): Complete's answer may.
    const fromComplete = judgeCompleteResponse(j, completed, expected, values);
    if (provesBytes(fromComplete)) return proofOf({ level: fromComplete.level, checks: [...judgement.checks, ...fromComplete.checks], mismatches: [] }, head, '');
  }
  return proofOf(judgement, head, plainWhy ?? 'the server reports nothing that identifies the object (only its size matches)');
}

/**
 * The object's ETag has no "-N" where a multipart one was expected: the plain MD5 of the whole
 * object (s3rver), or opaque (GCS). One MD5 pass over the file tells: equal, it identifies the
 * bytes; not equal, it is opaque, and proves nothing either way (never a mismatch). Without the
 * file (a stream, a shared upload's finish) it cannot be compared. Returns why, when not proven.
 */
async function checkWholeMd5(cx: EngineContext, size: number, judgement: ObjectJudgement): Promise<string | undefined> {
  const etag = judgement.plainEtag!;
  const file = cx.o.file;
  if (!file || file === '-') return `its ETag ${etag} is not a multipart ETag (the MD5 of the whole object, or an opaque value), which only the whole file can be compared with, and the server shows no checksum`;
  const digests = await hashPartsInWorkers(file, [{ partNumber: 1, offset: 0, size }], undefined, { workers: 1, signal: cx.signal });
  const md5 = digests.get(1)?.md5Hex;
  if (md5 === etag) {
    judgement.checks.push(`ETag ${etag}, the MD5 of the whole file`);
    if (judgement.level === 'size' || judgement.level === 'multipart-etag') judgement.level = 'object-md5';
    return undefined;
  }
  return `its ETag ${etag} is neither a multipart ETag nor the file's MD5 (${md5}): an opaque ETag, and the server shows no checksum`;
}

/** Everything the server will say about the object at the key, judged against `expected`. */
export async function proveObject(cx: EngineContext, j: JournalData, expected: ExpectedObject, completed?: CompleteOutput): Promise<Proof> {
  return judgeLook(cx, j, await lookAtObject(cx, j), expected, completed);
}

/** How long a just-completed object may take to show before its absence is believed (some servers and caches lag a write). */
export const SETTLE_DELAYS_MS = [200, 400, 800, 1600];

/**
 * The key looked at right after a Complete the server accepted: a not-found then is looked at again
 * (a read that lags the write, a cache) before anything is judged on it.
 */
async function lookAfterComplete(cx: EngineContext, j: JournalData): Promise<Look> {
  let look = await lookAtObject(cx, j);
  for (const ms of SETTLE_DELAYS_MS) {
    if (look.kind !== 'absent' || cx.signal.aborted) break;
    await new Promise((r) => setTimeout(r, ms));
    look = await lookAtObject(cx, j);
  }
  return look;
}

/** AbortMultipartUpload, tolerating an upload already gone. */
export async function abortMultipart(cx: EngineContext, j: Pick<JournalData, 'bucket' | 'key' | 'uploadId'>): Promise<void> {
  try {
    await cx.retry(() => cx.s3.abortMultipartUpload({ bucket: j.bucket, key: j.key, uploadId: j.uploadId }, cx.req));
  } catch (err) {
    if (!isNoSuchUpload(err)) throw err;
  }
}

/**
 * HeadObject reported no checksum (some servers don't): ask for the per-part checksums with
 * GetObjectAttributes instead. A server that does not support it leaves the judgement as it was.
 */
async function checkPartsByAttributes(cx: EngineContext, j: JournalData, expected: ExpectedObject, judgement: ObjectJudgement): Promise<void> {
  let listed: { partNumber: number; size: number; checksum?: string }[];
  try {
    // The same paging (and stuck-marker guard) as ListParts; these parts carry no ETag.
    const all = await listAllParts(async (marker) => {
      const out = await cx.retry(() => cx.s3.getObjectAttributes({ bucket: j.bucket, key: j.key, maxParts: 1000, ...(marker !== undefined ? { partNumberMarker: marker } : {}) }, cx.req, cx.signal));
      const page: Awaited<ReturnType<S3Port['listParts']>> = { parts: out.parts.map((p) => ({ ...p, etag: '' })), isTruncated: out.isTruncated };
      if (out.nextPartNumberMarker !== undefined) page.nextPartNumberMarker = out.nextPartNumberMarker;
      return page;
    });
    listed = all.parts;
  } catch (err) {
    if (err instanceof S3RequestError && classifyError(err) === 'fatal') return; // not supported (or not allowed) here
    throw err;
  }
  const parts = judgeParts(listed, expected);
  judgement.mismatches.push(...parts.mismatches);
  if (parts.ok && parts.check) {
    judgement.checks.push(parts.check);
    if (judgement.level === 'size' || judgement.level === 'multipart-etag') judgement.level = 'composite-checksum';
  }
}

/**
 * The upload is gone from the server: is the object at the key this file? The key is looked at
 * first (nothing there, or nothing readable, needs no hashing). Digests come from the journal
 * where it has every part (the fingerprint check made sure the file is the one it describes);
 * parts it lacks are hashed from the file.
 */
export async function proveFinished(cx: EngineContext, j: JournalData, plan: PartPlan, fp: SourceFingerprint, opts: { trustJournal?: boolean } = {}): Promise<Proof> {
  const look = await lookAtObject(cx, j);
  if (look.kind !== 'object') return nothingToJudge(look);
  const digests = opts.trustJournal === false ? new Map<number, LocalDigest>() : digestsFromJournal(j);
  const missing = allParts(plan).filter((p) => !digests.has(p.partNumber) || (j.checksumAlgorithm !== null && !digests.get(p.partNumber)!.checksum));
  if (missing.length) {
    const hashed = await hashPartsInWorkers(fp.path, missing, j.checksumAlgorithm ?? undefined, { signal: cx.signal, ...(cx.o.hashWorkers !== undefined ? { workers: cx.o.hashWorkers } : {}) });
    for (const [n, d] of hashed) digests.set(n, d);
  }
  return judgeLook(cx, j, look, expectedObject(plan, j.checksumAlgorithm, j.etagIsMd5, digests));
}

/**
 * RGW refuses a Complete body over `rgw_max_put_param_size` (1 MiB by default): 10,000 parts with
 * a checksum each exceed it. Above this, a FULL_OBJECT upload sends the part list without part
 * checksums; the server still checks the whole-object checksum it is given against its own part
 * checksums (the same evidence), and the part ETags identify the parts.
 */
export const COMPLETE_BODY_LIMIT = 1024 * 1024;

/** The size of Complete's XML body, as the SDK writes it (tags per part, plus the envelope). */
export function completeBodyBytes(parts: readonly JournalPart[], alg: string | null): number {
  let n = 200;
  for (const p of parts) {
    n += '<Part><ETag></ETag><PartNumber></PartNumber></Part>'.length + stripQuotes(p.etag).length + String(p.partNumber).length;
    if (alg && p.checksum) n += 2 * `<Checksum${alg}>`.length + 1 + p.checksum.length;
  }
  return n;
}

/** Parts 1..N in order, with no gap and sizes adding up to the file: what Complete will be given. */
function orderedParts(s: Session, ctx: ReturnType<EngineContext['errorContext']>): JournalPart[] {
  const byNumber = new Map(s.journal.parts.map((p) => [p.partNumber, p]));
  const ordered: JournalPart[] = [];
  for (let n = 1; n <= s.plan.partCount; n++) {
    const p = byNumber.get(n);
    if (!p) throw new CompleteFailedError(ctx, new Error(`part ${n} is missing from the part list (gap)`), true);
    ordered.push(p);
  }
  const total = ordered.reduce((a, p) => a + p.size, 0);
  if (total !== s.plan.fileSize) throw new CompleteFailedError(ctx, new Error(`part sizes add up to ${total}, the file has ${s.plan.fileSize} bytes`), true);
  return ordered;
}

/**
 * Whether running the upload again can finish it after Complete failed: yes, unless the server
 * refused the part list itself (a rerun would send the same one). A denied permission, a part
 * stored wrong (the resume re-verifies and resends it), a server error: all worth a rerun.
 */
function completeRetryable(err: unknown): boolean {
  return !(err instanceof S3RequestError && ['EntityTooSmall', 'InvalidPartOrder', 'MalformedXML', 'InvalidArgument'].includes(err.s3Code));
}

export interface Finished {
  proof: Proof;
  completed?: CompleteOutput;
}

/** Complete the upload and prove the object is the file. Throws unless proven. */
export async function finish(cx: EngineContext, s: Session): Promise<Finished> {
  const j = s.journal;
  const ctx = cx.errorContext({ uploadId: j.uploadId, journalPath: s.journalPath });
  // The bytes we hashed must still be the file's: a change mid-upload would make a mixed object.
  if (!s.noFile) await assertSourceUnchanged(j.source, cx.o.file, ctx);
  const ordered = orderedParts(s, ctx);
  const expected = expectedObject(s.plan, s.alg, j.etagIsMd5, s.digests);
  const values = await expectedValuesLoaded(expected);
  const type = s.alg ? (j.checksumType ?? checksumTypeFor(s.alg)) : undefined;
  const fullObjectChecksum = type === 'FULL_OBJECT' ? values.fullObject : undefined;
  const input = (withPartChecksums: boolean): Parameters<S3Port['completeMultipartUpload']>[0] => ({
    bucket: j.bucket,
    key: j.key,
    uploadId: j.uploadId,
    parts: ordered.map((p) => ({ partNumber: p.partNumber, etag: stripQuotes(p.etag), ...(withPartChecksums && p.checksum ? { checksum: p.checksum } : {}) })),
    objectSize: s.plan.fileSize,
    ...(s.alg && type ? { checksumAlgorithm: s.alg, checksumType: type } : {}),
    ...(fullObjectChecksum ? { fullObjectChecksum } : {}),
    ...(cx.o.noOverwrite ? { ifNoneMatch: true } : {}),
  });
  const compact = fullObjectChecksum !== undefined && completeBodyBytes(ordered, s.alg) > COMPLETE_BODY_LIMIT;

  let completed: CompleteOutput;
  try {
    try {
      completed = await cx.retry(() => cx.s3.completeMultipartUpload(input(!compact), cx.req, cx.signal));
    } catch (err) {
      // A server that wants every part's checksum after all: the whole list, once.
      if (!compact || cx.signal.aborted || !(err instanceof S3RequestError && ['InvalidRequest', 'InvalidPart', 'MalformedXML'].includes(err.s3Code))) throw err;
      completed = await cx.retry(() => cx.s3.completeMultipartUpload(input(true), cx.req, cx.signal));
    }
  } catch (err) {
    if (cx.signal.aborted) throw new PausedError(ctx, err);
    // An earlier attempt may have succeeded with its response lost: the object decides, but only
    // on evidence that identifies these bytes. An older object of the same size proves nothing,
    // and a look that failed proves nothing either way: the journal is kept.
    let proof: Proof;
    try {
      proof = await proveObject(cx, j, expected);
    } catch (lookErr) {
      if (cx.signal.aborted) throw new PausedError(ctx, lookErr);
      throw new CompleteFailedError(ctx, err, true, `it could not be checked: ${(lookErr as Error).message}`);
    }
    const notCarried = proof.proven ? await settingsNotCarried(cx, proof.head, s.noFile ? undefined : cx.o.file) : undefined;
    if (notCarried) throw new CompleteFailedError(ctx, err, completeRetryable(err), `the object at the key has these bytes, but ${notCarried}`);
    if (proof.proven) {
      // The object is the file; an upload still open (an identical object was there already) is closed.
      await abortMultipart(cx, j);
      cx.emit('warning', { code: 'COMPLETE_RECOVERED', message: `Complete failed (${(err as Error).message}), but the object on the server is proven to be the file: ${proof.judgement.checks.join(', ')}` });
      return { proof };
    }
    if (isNoSuchUpload(err)) throw new UploadGoneError(ctx, err, proof.why);
    // If-None-Match refused: another object is at the key, and it is not this file (proven above).
    if (cx.o.noOverwrite && err instanceof S3RequestError && (err.s3Code === 'PreconditionFailed' || err.httpStatus === 412)) throw new ObjectExistsError(ctx, 'at-complete', err);
    throw new CompleteFailedError(ctx, err, completeRetryable(err), proof.why);
  }
  cx.stats.completed = true;
  const look = await lookAfterComplete(cx, j);
  // Accepted by the server, yet not at the key: deleted since, or never shown. Not known to differ.
  if (look.kind === 'absent') throw new ObjectUnverifiedError(ctx, 'Complete succeeded, but no object shows at the key (deleted since, or the server does not show it yet); check it with partwise verify');
  const proof = await judgeLook(cx, j, look, expected, completed);
  if (proof.judgement.mismatches.length) throw new ObjectVerificationError(ctx, proof.judgement.mismatches);
  if (!proof.proven) throw new ObjectUnverifiedError(ctx, `Complete succeeded, but ${proof.why ?? 'nothing identifies the object'}`);
  return { proof, completed };
}

