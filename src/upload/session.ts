/**
 * Begin or resume: the phase that ends with a session (an upload on the server, a journal on
 * disk, the parts still to send) or with proof that a previous run already finished the upload.
 * A resume trusts nothing it has not verified: every part the server lists is re-hashed from the
 * file and reconciled.
 */
import { checksumTypeFor, etagsAreMd5, stripQuotes, type ChecksumAlgorithm, type ChecksumType } from '../core/checksums.ts';
import type { EngineContext } from './context.ts';
import { JournalMismatchError, RemotePartsInconsistentError, S3RequestError, SettingsDifferError, UploadGoneError, answeredNoSuchKey, isNoSuchUpload, type ErrorContext } from '../core/errors.ts';
import { checksumRefusal } from '../core/s3-advice.ts';
import { assertSourceUnchanged, identityMoved, type SourceFingerprint } from '../local/file-source.ts';
import type { LocalDigest } from '../core/hashing.ts';
import { classifyError, sleep } from '../core/retry.ts';
import { JOURNAL_SCHEMA, removeIntent, writeIntent, writeJournalAtomic, type JournalData, type JournalPart } from '../local/journal.ts';
import { listAllParts, listPartsCaller, type ListAllResult } from '../s3/list-parts.ts';
import { hasExplicitSettings, objectSettings, settingsDiff } from '../core/object-settings.ts';
import { loadSendHashers, planFor, sendAlgorithm, sseKeyMd5, wantedAlgorithm, type EngineOptions } from './options.ts';
import { partsOfPlan, planWithPartSize, type PartPlan } from '../core/planner.ts';
import { needsMd5, reconcile } from '../core/reconcile.ts';
import type { CreateOutput } from '../s3/port.ts';
import { proveFinished } from './finish.ts';
import type { Opened, RemoteVerification, Session } from './types.ts';
import { settingsNotCarried } from './read-back.ts';
import { partHashing, type PartHashing } from '../local/verify-pool.ts';

export function checkJournalBelongs(o: EngineOptions, j: JournalData, journalPath: string): void {
  const ctx = { bucket: o.bucket, key: o.key, uploadId: j.uploadId };
  if (j.bucket !== o.bucket || j.key !== o.key) throw new JournalMismatchError(journalPath, `it is for s3://${j.bucket}/${j.key}`, ctx);
  if (j.sseCustomerKeyMd5 !== sseKeyMd5(o)) throw new JournalMismatchError(journalPath, 'the SSE-C key differs from the one the upload was started with', ctx);
  // Fixed at Create: resuming under other settings would give an object other than the one asked for.
  if (j.settings) {
    const diff = settingsDiff(j.settings, objectSettings(o, o.file));
    if (diff.length) throw new SettingsDifferError({ ...ctx, journalPath }, diff);
  } else if (hasExplicitSettings(o)) {
    // Adopted, or journaled by an older partwise: what the upload was created with is unknown.
    throw new SettingsDifferError({ ...ctx, journalPath }, ['the upload\'s object settings are not recorded (it was adopted, or started by an older partwise), so they cannot be checked']);
  }
}

/** A resume keeps the upload's own part size (the fingerprint check guarantees the same file size). */
export function planFromJournal(j: JournalData, fp: SourceFingerprint): PartPlan {
  return planWithPartSize(fp.size, j.partSize);
}

/** Create, forgetting the intent when the server refused for certain (a lost answer keeps it). */
async function createUpload<T>(cx: EngineContext, journalPath: string, create: () => Promise<T>): Promise<T> {
  try {
    return await cx.retry(create);
  } catch (err) {
    if (classifyError(err) === 'fatal' && !cx.signal.aborted) await removeIntent(journalPath);
    throw err;
  }
}

/** The journal of an upload just created: what the server said of its encryption decides whether ETags are MD5s. */
export function newJournal(
  o: EngineOptions,
  created: CreateOutput,
  f: Pick<JournalData, 'endpoint' | 'partSize' | 'partCount' | 'checksumAlgorithm' | 'checksumType' | 'source' | 'settings'>,
): JournalData {
  const now = new Date().toISOString();
  return {
    schema: JOURNAL_SCHEMA,
    bucket: o.bucket,
    key: o.key,
    uploadId: created.uploadId,
    ...f,
    etagIsMd5: etagsAreMd5({
      serverSideEncryption: created.serverSideEncryption ?? o.serverSideEncryption,
      sseCustomerAlgorithm: created.sseCustomerAlgorithm ?? (o.sseCustomerKey ? 'AES256' : undefined),
    }),
    sseCustomerKeyMd5: sseKeyMd5(o),
    createdAt: now,
    updatedAt: now,
    parts: [],
  };
}

export async function begin(cx: EngineContext, fp: SourceFingerprint, journalPath: string, endpoint: string): Promise<Opened> {
  const o = cx.o;
  const plan = planFor(fp.size, o);
  let alg = sendAlgorithm(o);
  let type = alg ? (o.checksumType ?? checksumTypeFor(alg)) : null;
  const settings = objectSettings(o, o.file);
  await loadSendHashers(alg);
  const chosen = await createChoosingChecksum(cx, alg, type, async (a, t) => {
    // Recorded before Create: a stop between Create and the journal leaves a trail to the upload.
    await writeIntent(journalPath, { bucket: o.bucket, key: o.key, createdAt: new Date().toISOString() });
    return createUpload(cx, journalPath, () => cx.s3.createMultipartUpload({ bucket: o.bucket, key: o.key, ...(a && t ? { checksumAlgorithm: a, checksumType: t } : {}), settings }, cx.req, cx.signal));
  });
  const created = chosen.created;
  alg = chosen.alg;
  type = chosen.type;
  const journal = newJournal(o, created, { endpoint, partSize: plan.partSize, partCount: plan.partCount, checksumAlgorithm: alg, checksumType: type, source: fp, settings });
  // On disk before the first part: a crash from here on leaves a resumable upload.
  await writeJournalAtomic(journalPath, journal);
  cx.emit('plan', {
    bucket: o.bucket,
    key: o.key,
    uploadId: created.uploadId,
    fileSize: fp.size,
    partSize: plan.partSize,
    partCount: plan.partCount,
    checksumAlgorithm: alg,
    resumed: false,
    journalPath,
    ...(plan.adjustedFrom !== undefined ? { partSizeAdjustedFrom: plan.adjustedFrom } : {}),
  });
  // After the plan names the upload, so that a failure here is reported as the upload's (resumable).
  await removeIntent(journalPath);
  const toUpload = Array.from({ length: plan.partCount }, (_, i) => i + 1);
  return { kind: 'session', session: { journalPath, journal, plan, alg, digests: new Map(), resumed: false, toUpload } };
}

/** The server refused a request for its additional checksum (not for the bytes: BadDigest is not this). */
export function refusedChecksum(err: unknown): err is S3RequestError {
  return err instanceof S3RequestError && checksumRefusal(err.s3Code, err.httpStatus, err.operation, err.serverMessage ?? '') !== undefined;
}

/**
 * partwise may drop a checksum a server refuses (B2): the run chose neither checksum nor type, and
 * its ETags are MD5s to prove the bytes by (not under SSE-KMS or SSE-C, where a checksum is the
 * only evidence: there the refusal stands, before a byte is sent).
 */
export function mayDropChecksum(o: Pick<EngineContext['o'], 'checksumAlgorithm' | 'checksumType' | 'serverSideEncryption' | 'sseCustomerKey'>): boolean {
  return o.checksumAlgorithm === undefined && o.checksumType === undefined && etagsAreMd5({ serverSideEncryption: o.serverSideEncryption, sseCustomerAlgorithm: o.sseCustomerKey ? 'AES256' : undefined });
}

/**
 * Create, with the strongest checksum the server takes, where the run left the choice to partwise:
 * Cloudflare R2 takes CRC32 and CRC32C only as COMPOSITE (each part's checksum is still the
 * server's to check and partwise's to prove); Backblaze B2 refuses every x-amz-checksum-* header
 * (each part's Content-MD5 is checked by the server and its MD5 ETag is the evidence). Each change
 * is a warning; a checksum or type the user chose is never changed (its refusal says what helps).
 */
export async function createChoosingChecksum<T>(
  cx: EngineContext,
  alg: ChecksumAlgorithm | null,
  type: ChecksumType | null,
  create: (alg: ChecksumAlgorithm | null, type: ChecksumType | null) => Promise<T>,
): Promise<{ created: T; alg: ChecksumAlgorithm | null; type: ChecksumType | null }> {
  const o = cx.o;
  try {
    return { created: await create(alg, type), alg, type };
  } catch (err) {
    if (!refusedChecksum(err) || o.checksumType !== undefined) throw err;
    const words = err.serverMessage ?? err.s3Code;
    if (type === 'FULL_OBJECT' && (alg === 'CRC32' || alg === 'CRC32C')) {
      const composite = await create(alg, 'COMPOSITE').catch((again: unknown) => {
        if (!refusedChecksum(again)) throw again;
        return undefined;
      });
      if (composite !== undefined) {
        cx.emit('warning', { code: 'CHECKSUM_TYPE_CHANGED', message: `the server refused a FULL_OBJECT ${alg} upload (${words}); using COMPOSITE ${alg}: each part's checksum is checked by the server and proven, and the object's is the checksum of those` });
        return { created: composite, alg, type: 'COMPOSITE' };
      }
    }
    if (!mayDropChecksum(o)) throw err;
    const created = await create(null, null);
    cx.emit('warning', { code: 'CHECKSUM_REFUSED', message: `the server refuses additional checksums (${words}); uploading without one: each part's MD5 is checked by the server, and the MD5 ETags are the evidence (--checksum none says this up front)` });
    return { created, alg: null, type: null };
  }
}

/** Every part the server lists for the journal's upload, every page (with the stuck-marker guard). */
export function listRemote(cx: EngineContext, j: Pick<JournalData, 'bucket' | 'key' | 'uploadId'>): Promise<ListAllResult> {
  const call = listPartsCaller(cx.s3, { bucket: j.bucket, key: j.key, uploadId: j.uploadId }, cx.req, cx.signal);
  return listAllParts((marker) => cx.retry(() => call(marker)));
}

function startHashing(cx: EngineContext, j: JournalData, fp: SourceFingerprint, md5: boolean): PartHashing {
  return partHashing(fp.path, j.checksumAlgorithm ?? undefined, md5, { signal: cx.signal, ...(cx.o.hashWorkers !== undefined ? { workers: cx.o.hashWorkers } : {}) });
}

/** The listed parts re-hashed from the local file on worker threads, then reconciled against the plan. */
export async function verifyListed(cx: EngineContext, j: JournalData, plan: PartPlan, fp: SourceFingerprint, listed: ListAllResult, early?: PartHashing): Promise<RemoteVerification> {
  const toHash = partsOfPlan(plan, listed.parts);
  const bytesToHash = toHash.reduce((a, p) => a + p.size, 0);
  const md5 = needsMd5(j, listed.parts);
  // Hashing begun before the listing is kept when it computes what the listing calls for.
  const reuse = early?.md5 === md5;
  if (early && !reuse) early.pool.close();
  const hashing = reuse ? early! : startHashing(cx, j, fp, md5);
  const wanted = new Set(toHash.map((p) => p.partNumber));
  hashing.pool.retain(wanted);
  cx.emit('phase', { phase: 'verify' });
  let bytesHashed = 0;
  let partsHashed = 0;
  for (const n of wanted) {
    bytesHashed += hashing.hashedBytes.get(n) ?? 0;
    if (hashing.hashedParts.has(n)) partsHashed++;
  }
  const progress = () => cx.emit('verify-progress', { bytesHashed, bytesToHash, partsHashed, partsToHash: toHash.length });
  const headStartBytes = bytesHashed;
  if (bytesHashed) progress();
  hashing.sink = {
    bytes: (n, part) => {
      if (!wanted.has(part)) return;
      bytesHashed += n;
      progress();
    },
    part: (part) => {
      if (!wanted.has(part)) return;
      partsHashed++;
      progress();
    },
  };
  let local: Map<number, LocalDigest>;
  try {
    local = toHash.length ? await hashing.pool.hash(toHash) : new Map();
  } finally {
    hashing.pool.close();
  }
  const journalMap = new Map(j.parts.map((p) => [p.partNumber, { etag: p.etag, md5: p.md5 }]));
  const report = reconcile({ plan, remote: listed.parts, local, algorithm: j.checksumAlgorithm, etagIsMd5: j.etagIsMd5, journal: journalMap });
  const ms = Date.now() - hashing.startedAt;
  report.hashing = { bytes: bytesToHash, ms, gbPerSecond: bytesToHash / 1e6 / Math.max(ms, 1), md5, headStartBytes };
  return { report, local, remote: new Map(listed.parts.map((r) => [r.partNumber, r])), stoppedEarly: listed.stoppedEarly };
}

/**
 * Every part the server lists, every page, re-hashed from the local file on worker threads, then
 * reconciled. The parts the journal holds are hashed while the listing is on its way (they are
 * nearly always the ones listed); `alongside` runs with the hashing once the listing is in.
 */
export async function verifyAgainstServer(
  cx: EngineContext,
  j: JournalData,
  plan: PartPlan,
  fp: SourceFingerprint,
  alongside?: (listed: ListAllResult) => Promise<void> | undefined,
): Promise<RemoteVerification> {
  const early = startHashing(cx, j, fp, needsMd5(j));
  try {
    early.pool.prefetch(partsOfPlan(plan, j.parts));
    const listed = await listRemote(cx, j);
    const [v, side] = await Promise.allSettled([verifyListed(cx, j, plan, fp, listed, early), alongside?.(listed)]);
    if (v.status === 'rejected') throw v.reason;
    if (side.status === 'rejected') throw side.reason;
    return v.value;
  } finally {
    early.pool.close();
  }
}

/**
 * Resume from a journal. `repair`: the second look after Complete said BadDigest/InvalidPart
 * (no plan event, no part-skip events: those parts were already counted).
 */
export async function resume(
  cx: EngineContext,
  j: JournalData,
  fp: SourceFingerprint,
  journalPath: string,
  opts: { repair?: boolean; verified?: RemoteVerification; adopted?: boolean; sendEarly?: (s: Session) => Promise<void> } = {},
): Promise<Opened> {
  const repair = opts.repair === true;
  const o = cx.o;
  checkJournalBelongs(o, j, journalPath);
  const ctx: ErrorContext = cx.errorContext({ uploadId: j.uploadId, journalPath });
  await assertSourceUnchanged(j.source, o.file, ctx);
  // A remount renumbers the device (and maybe the inode) of the same bytes: the resume goes on,
  // trusting nothing recorded of the file (every listed part is hashed from it anyway).
  const moved = identityMoved(j.source, fp);
  if (moved) {
    cx.emit('warning', { code: 'SOURCE_MOVED', message: `${o.file} has the same size and times but another device or inode number than when the upload started (a remount?); every part is verified against the file` });
    j.source = fp;
  }
  await loadSendHashers(j.checksumAlgorithm, j.uploadId);
  const plan = planFromJournal(j, fp);
  if (!repair) {
    if (o.partSize !== undefined && o.partSize !== j.partSize) {
      cx.emit('warning', { code: 'PART_SIZE_KEPT', message: `resuming with the upload's part size ${j.partSize}, not the requested ${o.partSize}` });
    }
    const wanted = wantedAlgorithm(o);
    if (wanted !== undefined && wanted !== j.checksumAlgorithm) {
      cx.emit('warning', { code: 'CHECKSUM_KEPT', message: `resuming with the upload's checksum ${j.checksumAlgorithm ?? 'none'}, not the requested ${wanted ?? 'none'}` });
    }
    cx.emit('plan', {
      bucket: j.bucket,
      key: j.key,
      uploadId: j.uploadId,
      fileSize: fp.size,
      partSize: plan.partSize,
      partCount: plan.partCount,
      checksumAlgorithm: j.checksumAlgorithm,
      resumed: true,
      journalPath,
      ...(opts.adopted ? { adopted: true } : {}),
    });
  }
  let verified: RemoteVerification;
  let early: Session | undefined;
  try {
    if (opts.verified) verified = opts.verified;
    else {
      // Parts the server does not list need no verifying: they go up while the listed ones are hashed.
      verified = await verifyAgainstServer(cx, j, plan, fp, (listed) => {
        early = opts.sendEarly ? unlistedSession(j, plan, journalPath, listed) : undefined;
        return early ? opts.sendEarly!(early) : undefined;
      });
    }
  } catch (err) {
    if (!isNoSuchUpload(err)) throw err;
    if (answeredNoSuchKey(err)) await goneOrNoListParts(cx, j, err);
    // The upload is gone: completed by a run that died before it could say so, aborted, or expired.
    return provenAfterGone(cx, j, plan, fp, err, ctx, { trustJournal: !moved });
  }
  const { report, local, remote, stoppedEarly } = verified;
  if (report.extraParts.length) {
    throw new RemotePartsInconsistentError(
      `The server holds parts ${report.extraParts.join(', ')} of upload ${j.uploadId}, beyond the ${plan.partCount} this file needs: another process (or another part size) wrote to this upload, and Complete would fail or mix them in.`,
      ctx,
    );
  }
  if (stoppedEarly) cx.emit('warning', { code: 'LIST_PARTS_STALLED', message: 'ListParts stopped advancing its marker; unlisted parts will be uploaded again' });
  cx.emit('reconcile', report);
  // The journal now holds exactly the verified parts, with the ETags the server listed (Complete needs them).
  const digests = new Map<number, LocalDigest>();
  const parts: JournalPart[] = [];
  for (const v of report.parts) {
    if (v.status !== 'verified') continue;
    const d = local.get(v.partNumber)!;
    digests.set(v.partNumber, d);
    parts.push({ partNumber: v.partNumber, size: v.size, etag: stripQuotes(remote.get(v.partNumber)!.etag), ...(d.md5Hex ? { md5: d.md5Hex } : {}), ...(d.checksum ? { checksum: d.checksum.toString('base64') } : {}) });
    if (!repair) cx.emit('part-skip', { partNumber: v.partNumber, size: v.size, basis: v.basis });
  }
  // Parts sent while verifying are on the server and journaled (sendPart added them to j.parts).
  const sent: Session | undefined = early;
  const sentEarly = sent ? j.parts.filter((p) => sent.digests.has(p.partNumber)) : [];
  for (const p of sentEarly) digests.set(p.partNumber, sent!.digests.get(p.partNumber)!);
  j.parts = [...parts, ...sentEarly];
  await writeJournalAtomic(journalPath, { ...j, updatedAt: new Date().toISOString() });
  const toUpload = report.toUpload.filter((n) => !sent?.digests.has(n));
  return { kind: 'session', session: { journalPath, journal: j, plan, alg: j.checksumAlgorithm, digests, resumed: true, toUpload, report } };
}

/**
 * ListParts answered NoSuchKey: RGW's "no such upload", or a server without ListParts reading the
 * request as GetObject (fauxqs), for an upload that is alive. Abort tells them apart: NoSuchUpload,
 * it was gone; accepted, it was alive, and this server can resume nothing (it cannot say which
 * parts it holds): said so, and the upload, which no run could resume here, is not left open.
 */
async function goneOrNoListParts(cx: EngineContext, j: JournalData, listErr: unknown): Promise<void> {
  // Asked again a moment later first: a server catching up just after a write may say NoSuchKey
  // once, and the abort below would end a live upload for it.
  await sleep(1000, cx.signal);
  // Only the same answer again counts as "not listed"; a failure of that request (a 503, a reset)
  // goes up as itself, resumable, and nothing is aborted on it.
  const listed = await cx.retry(() => cx.s3.listParts({ bucket: j.bucket, key: j.key, uploadId: j.uploadId, maxParts: 1 }, cx.req, cx.signal)).then(
    () => true,
    (err: unknown) => {
      if (isNoSuchUpload(err) || answeredNoSuchKey(err) || (err instanceof S3RequestError && err.s3Code === 'NotImplemented')) return false;
      throw err;
    },
  );
  if (listed) throw new S3RequestError({ operation: 'ListParts', s3Code: 'NoSuchKey', httpStatus: 404, message: `NoSuchKey for upload ${j.uploadId}, which it then listed`, cause: listErr, context: cx.errorContext({ uploadId: j.uploadId }), resumable: true });
  try {
    await cx.retry(() => cx.s3.abortMultipartUpload({ bucket: j.bucket, key: j.key, uploadId: j.uploadId }, cx.req));
  } catch (err) {
    if (isNoSuchUpload(err) || answeredNoSuchKey(err)) return;
    throw err;
  }
  throw new S3RequestError({ operation: 'ListParts', s3Code: 'NotImplemented', httpStatus: 404, message: `it answered NoSuchKey for upload ${j.uploadId}, which it then aborted when asked: it reads ListParts as a GetObject`, cause: listErr, context: cx.errorContext({ uploadId: j.uploadId }) });
}

/**
 * The upload is gone from the server (completed by a run that died before it could say so, or by
 * another process while this one sent; aborted; expired): only proof that the object at the key is
 * this file, with the settings asked for (read back), counts as finished. Otherwise UPLOAD_GONE,
 * saying why the object is not this upload's.
 */
export async function provenAfterGone(cx: EngineContext, j: JournalData, plan: PartPlan, fp: SourceFingerprint, err: unknown, ctx: ErrorContext, opts: { trustJournal?: boolean } = {}): Promise<Extract<Opened, { kind: 'finished' }>> {
  const proof = await proveFinished(cx, j, plan, fp, opts);
  const notCarried = proof.proven ? await settingsNotCarried(cx, proof.head, cx.o.file) : undefined;
  if (proof.proven && !notCarried) return { kind: 'finished', journal: j, plan, proof };
  throw new UploadGoneError(ctx, err, notCarried ? `the object at the key has these bytes, but ${notCarried}` : proof.why);
}

/**
 * The parts of the plan the server does not list, as a session of their own; none when the listing
 * shows parts beyond the plan (another writer: nothing is sent before that is reported).
 */
function unlistedSession(j: JournalData, plan: PartPlan, journalPath: string, listed: ListAllResult): Session | undefined {
  const onServer = new Set(listed.parts.map((p) => p.partNumber));
  if (listed.parts.some((p) => p.partNumber < 1 || p.partNumber > plan.partCount)) return undefined;
  const toUpload: number[] = [];
  for (let n = 1; n <= plan.partCount; n++) if (!onServer.has(n)) toUpload.push(n);
  if (!toUpload.length) return undefined;
  return { journalPath, journal: j, plan, alg: j.checksumAlgorithm, digests: new Map(), resumed: true, toUpload };
}

/** Takes over an upload discovery proved to be this file's: its journal is written, then it resumes. */
export async function adopt(cx: EngineContext, a: { journal: JournalData; verified: RemoteVerification }, fp: SourceFingerprint, journalPath: string): Promise<Opened> {
  await writeJournalAtomic(journalPath, a.journal);
  await removeIntent(journalPath);
  return resume(cx, a.journal, fp, journalPath, { verified: a.verified, adopted: true });
}
