import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { EventEmitter } from 'eventemitter3';
import pLimit, { type LimitFunction } from 'p-limit';
import {
  DEFAULT_CHECKSUM_ALGORITHM,
  checksumTypeFor,
  isChecksumAlgorithm,
  loadHashers,
  looksLikeMd5,
  stripQuotes,
  type ChecksumAlgorithm,
  type ChecksumType,
  type PartDigest,
} from './checksums.ts';
import {
  CompleteFailedError,
  InvalidOptionsError,
  JournalMismatchError,
  PartFailedError,
  PartwiseError,
  PausedError,
  ObjectVerificationError,
  S3RequestError,
  SourceChangedError,
  UploadGoneError,
  isNoSuchUpload as isGone,
  type ErrorContext,
} from './errors.ts';
import { fingerprint, fingerprintDifferences, openSource, readRange, type SourceFingerprint } from './file-source.ts';
import { digestBuffer, type LocalDigest } from './hashing.ts';
import {
  JOURNAL_SCHEMA,
  JournalWriter,
  acquireLock,
  defaultStateDir,
  deleteJournal,
  journalPathFor,
  readJournal,
  removeStaleTemps,
  writeJournalAtomic,
  type JournalData,
  type JournalPart,
} from './journal.ts';
import { listAllParts, listPartsCaller } from './list-parts.ts';
import { partAt, planParts, type PartPlan, type PlannedPart } from './planner.ts';
import { ProgressTracker, type UploadEvents, type UploadResult } from './progress.ts';
import { reconcile, type ReconcileReport, type RemotePart } from './reconcile.ts';
import { DEFAULT_RETRY_POLICY, classifyError, engineAttempts, retrying, type RetryPolicy } from './retry.ts';
import type { RequestOptions, S3Port } from './s3-port.ts';
import { hashPartsInWorkers } from './verify-pool.ts';
import { expectedValues, judgeObject, judgeParts, type ExpectedObject } from './verify-object.ts';

export interface EngineOptions extends RequestOptions {
  file: string;
  bucket: string;
  key: string;
  s3: S3Port;
  /** wanted part size in bytes (default 16 MiB); raised to fit 10,000 parts. A resume keeps the journal's. */
  partSize?: number;
  /** the server's minimum part size (default 5 MiB); lower only for servers configured for it */
  minPartSize?: number;
  /** parallel UploadPart calls (default 4); ignored when `limiter` is given */
  concurrency?: number;
  /** one p-limit limiter shared by several uploads, so a backup tool bounds all of them at once */
  limiter?: LimitFunction;
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
  /** abort any journaled upload for this file and destination and start over */
  fresh?: boolean;
  contentType?: string;
  metadata?: Record<string, string>;
  /** test hook: randomness for retry jitter */
  random?: () => number;
}

export interface StatusReport {
  journalPath: string;
  /** false when no journal exists: an upload would start from scratch */
  exists: boolean;
  uploadId?: string;
  plan?: PartPlan;
  sourceChanged?: string[];
  uploadGone?: boolean;
  reconcile?: ReconcileReport;
  bytesLeft?: number;
}

interface Session {
  fp: SourceFingerprint;
  journalPath: string;
  journal: JournalData;
  plan: PartPlan;
  alg: ChecksumAlgorithm | null;
  digests: Map<number, LocalDigest>;
  resumed: boolean;
  tracker: ProgressTracker;
  report?: ReconcileReport;
}

const md5b64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');


/**
 * One resumable multipart upload of a local file. Create it, subscribe to events, then await
 * `done()`. Running the same upload again (same file, bucket, key, endpoint and state folder)
 * resumes it: every part the server lists is re-hashed from the file and compared before it is
 * trusted, and only the rest is uploaded.
 */
export class Upload extends EventEmitter<UploadEvents> {
  readonly options: EngineOptions;
  private readonly policy: RetryPolicy;
  private readonly stop = new AbortController();
  private running: Promise<UploadResult> | undefined;
  private limiter: LimitFunction | undefined;
  private lastThrottle = 0;
  private uploadId: string | undefined;
  // Counted over the whole run (a repair pass included), for the result.
  private partsSkipped = 0;
  private partsSent = 0;
  private bytesSent = 0;
  private retries = 0;

  constructor(options: EngineOptions) {
    super();
    if (!options.file || !options.bucket || !options.key) throw new InvalidOptionsError('file, bucket and key are required');
    if (options.checksumAlgorithm !== undefined && options.checksumAlgorithm !== 'none' && !isChecksumAlgorithm(options.checksumAlgorithm)) {
      throw new InvalidOptionsError(`checksumAlgorithm must be one of CRC64NVME, CRC32C, CRC32, SHA256, SHA1 or none; got ${String(options.checksumAlgorithm)}`);
    }
    if (options.concurrency !== undefined && (!Number.isInteger(options.concurrency) || options.concurrency < 1)) {
      throw new InvalidOptionsError(`concurrency must be a positive integer; got ${options.concurrency}`);
    }
    if (options.checksumType !== undefined) {
      const alg = options.checksumAlgorithm ?? DEFAULT_CHECKSUM_ALGORITHM;
      const ok = options.checksumType === 'COMPOSITE' ? alg !== 'CRC64NVME' && alg !== 'none' : alg === 'CRC32' || alg === 'CRC32C' || alg === 'CRC64NVME';
      if (!ok) throw new InvalidOptionsError(`checksumType ${options.checksumType} cannot be used with ${alg}: SHA-1/SHA-256 are COMPOSITE only, CRC64NVME FULL_OBJECT only`);
    }
    if (options.sseCustomerKey && options.sseCustomerKey.length !== 32) throw new InvalidOptionsError('sseCustomerKey must be 32 bytes (AES-256)');
    this.options = options;
    this.policy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    if (options.signal) {
      const s = options.signal;
      if (s.aborted) this.stop.abort(s.reason);
      else s.addEventListener('abort', () => this.stop.abort(s.reason), { once: true });
    }
  }

  /** Runs the upload (once; later calls return the same promise). */
  done(): Promise<UploadResult> {
    this.running ??= this.run().catch((err: unknown) => {
      const stopped = this.stop.signal.aborted && !(err instanceof PartwiseError && err.code !== 'S3_REQUEST_FAILED');
      const e = stopped
        ? new PausedError({ ...this.ctxBase, ...(this.uploadId ? { uploadId: this.uploadId } : {}) }, err)
        : err instanceof PartwiseError
          ? err
          : new PartwiseError('PART_FAILED', `Unexpected failure: ${(err as Error)?.message ?? String(err)}`, { cause: err });
      this.emit('error', e);
      throw e;
    });
    return this.running;
  }

  private get ctxBase(): ErrorContext {
    return { bucket: this.options.bucket, key: this.options.key };
  }

  private req(): RequestOptions {
    const o = this.options;
    const r: RequestOptions = {};
    if (o.requestPayer) r.requestPayer = o.requestPayer;
    if (o.expectedBucketOwner) r.expectedBucketOwner = o.expectedBucketOwner;
    if (o.sseCustomerKey) r.sseCustomerKey = o.sseCustomerKey;
    if (o.serverSideEncryption) r.serverSideEncryption = o.serverSideEncryption;
    if (o.sseKmsKeyId) r.sseKmsKeyId = o.sseKmsKeyId;
    return r;
  }

  private sseKeyMd5(): string | null {
    return this.options.sseCustomerKey ? createHash('md5').update(this.options.sseCustomerKey).digest('base64') : null;
  }

  /**
   * The SDK retries a call itself only when its body can be replayed; part bodies are streams
   * (for byte-level progress), which it never retries. So only replayable calls divide the
   * engine's attempts by the client's, and the total stays near the policy either way.
   */
  private async attempts(sdkCanRetry: boolean): Promise<number> {
    return sdkCanRetry ? engineAttempts(this.policy.maxAttempts, await this.options.s3.clientMaxAttempts()) : this.policy.maxAttempts;
  }

  private async retry<T>(
    fn: () => Promise<T>,
    onRetry?: (i: { attempt: number; delayMs: number; error: unknown; throttled: boolean }) => void,
    sdkCanRetry = true,
  ): Promise<T> {
    const opts: Parameters<typeof retrying>[1] = { policy: this.policy, maxAttempts: await this.attempts(sdkCanRetry), signal: this.stop.signal };
    if (this.options.random) opts.random = this.options.random;
    opts.onRetry = (i) => {
      if (i.throttled) this.throttled();
      onRetry?.(i);
    };
    return retrying(fn, opts);
  }

  /** SlowDown: halve the parallelism (at most once a second) as S3 asks. */
  private throttled(): void {
    const now = Date.now();
    if (!this.limiter || now - this.lastThrottle < 1000) return;
    this.lastThrottle = now;
    const next = Math.max(1, Math.floor(this.limiter.concurrency / 2));
    if (next < this.limiter.concurrency) {
      this.limiter.concurrency = next;
      this.emit('warning', { code: 'SLOW_DOWN', message: `the server asked to slow down; concurrency lowered to ${next}` });
    }
  }

  private async locate(): Promise<{ fp: SourceFingerprint; journalPath: string; endpoint: string }> {
    const fp = await fingerprint(this.options.file);
    const endpoint = await this.options.s3.describeEndpoint();
    const journalPath = journalPathFor(this.options.stateDir ?? defaultStateDir(), { endpoint, bucket: this.options.bucket, key: this.options.key, sourcePath: fp.path });
    return { fp, journalPath, endpoint };
  }

  private checkJournalBelongs(j: JournalData, journalPath: string): void {
    const ctx = { ...this.ctxBase, uploadId: j.uploadId };
    if (j.bucket !== this.options.bucket || j.key !== this.options.key) throw new JournalMismatchError(journalPath, `it is for s3://${j.bucket}/${j.key}`, ctx);
    if (j.sseCustomerKeyMd5 !== this.sseKeyMd5()) throw new JournalMismatchError(journalPath, 'the SSE-C key differs from the one the upload was started with', ctx);
  }

  /** A resume keeps the upload's own part size (the fingerprint check guarantees the same file size). */
  private planFromJournal(j: JournalData, fp: SourceFingerprint): PartPlan {
    return { fileSize: fp.size, partSize: j.partSize, partCount: fp.size === 0 ? 1 : Math.ceil(fp.size / j.partSize) };
  }

  /**
   * Resume verification: list every part the server holds, re-hash the matching chunks of the
   * local file on worker threads, and reconcile.
   */
  private async verifyRemote(
    j: JournalData,
    plan: PartPlan,
    fp: SourceFingerprint,
    tracker?: ProgressTracker,
  ): Promise<{ report: ReconcileReport; local: Map<number, LocalDigest>; remote: Map<number, RemotePart>; stoppedEarly: boolean }> {
    const ref = { bucket: j.bucket, key: j.key, uploadId: j.uploadId };
    const call = listPartsCaller(this.options.s3, ref, this.req(), this.stop.signal);
    let listed;
    try {
      listed = await listAllParts((marker) => this.retry(() => call(marker)));
    } catch (err) {
      if (isGone(err)) throw new UploadGoneError({ ...this.ctxBase, uploadId: j.uploadId }, err);
      throw err;
    }
    const alg = j.checksumAlgorithm;
    const toHash: PlannedPart[] = [];
    for (const r of listed.parts) {
      if (r.partNumber < 1 || r.partNumber > plan.partCount) continue;
      const p = partAt(plan, r.partNumber);
      if (p.size === r.size) toHash.push(p);
    }
    const bytesToHash = toHash.reduce((a, p) => a + p.size, 0);
    if (tracker) {
      tracker.bytesToHash = bytesToHash;
      tracker.setPhase('verify');
    }
    let bytesHashed = 0;
    let partsHashed = 0;
    const hashOpts: Parameters<typeof hashPartsInWorkers>[3] = {
      signal: this.stop.signal,
      onBytes: (n) => {
        bytesHashed += n;
        tracker?.hashed(n);
      },
      onPart: () => {
        partsHashed++;
        this.emit('verify-progress', { bytesHashed, bytesToHash, partsHashed, partsToHash: toHash.length });
      },
    };
    if (this.options.hashWorkers !== undefined) hashOpts.workers = this.options.hashWorkers;
    const local = await hashPartsInWorkers(fp.path, toHash, alg ?? undefined, hashOpts);
    const journalMap = new Map(j.parts.map((p) => [p.partNumber, { etag: p.etag, md5: p.md5 }]));
    const report = reconcile({ plan, remote: listed.parts, local, algorithm: alg, etagIsMd5: j.etagIsMd5, journal: journalMap });
    return { report, local, remote: new Map(listed.parts.map((r) => [r.partNumber, r])), stoppedEarly: listed.stoppedEarly };
  }

  /** What a resume would do, changing nothing: no lock, no part sent, the journal untouched. */
  async status(): Promise<StatusReport> {
    await loadHashers();
    const { fp, journalPath } = await this.locate();
    const j = await readJournal(journalPath);
    if (!j) return { journalPath, exists: false };
    this.checkJournalBelongs(j, journalPath);
    const plan = this.planFromJournal(j, fp);
    const out: StatusReport = { journalPath, exists: true, uploadId: j.uploadId, plan };
    const diffs = fingerprintDifferences(j.source, fp);
    if (diffs.length) return { ...out, sourceChanged: diffs };
    try {
      const { report } = await this.verifyRemote(j, plan, fp);
      return { ...out, reconcile: report, bytesLeft: report.bytesToUpload };
    } catch (err) {
      if (err instanceof UploadGoneError) return { ...out, uploadGone: true };
      throw err;
    }
  }

  private async run(): Promise<UploadResult> {
    const t0 = Date.now();
    await loadHashers();
    const { fp, journalPath, endpoint } = await this.locate();
    const release = await acquireLock(journalPath, { ...this.ctxBase, journalPath });
    let fh: FileHandle | undefined;
    try {
      await removeStaleTemps(journalPath);
      let existing = await readJournal(journalPath);
      if (existing && this.options.fresh) {
        await this.abortQuietly(existing);
        await deleteJournal(journalPath);
        existing = undefined;
      }
      let session = existing ? await this.resume(existing, fp, journalPath) : await this.begin(fp, journalPath, endpoint);
      this.uploadId = session.journal.uploadId;
      this.partsSkipped = session.report?.verified.length ?? 0;
      fh = await openSource(this.options.file);
      this.limiter = this.options.limiter ?? pLimit(this.options.concurrency ?? 4);
      await this.uploadMissing(session, fh);
      let result: UploadResult;
      try {
        result = await this.complete(session, t0);
      } catch (err) {
        const code = err instanceof CompleteFailedError && err.cause instanceof S3RequestError ? err.cause.s3Code : undefined;
        if (code !== 'BadDigest' && code !== 'InvalidPart') throw err;
        // The server holds other bytes than it acknowledged (corruption at rest, or a part
        // replaced behind our back): verify every part against it once more, resend only the bad
        // ones, and complete again. Once: a second failure is reported, not looped on.
        this.emit('warning', { code: 'REPAIR', message: `Complete said ${code}: re-verifying every part on the server and resending the ones that differ` });
        session = await this.resume(session.journal, fp, journalPath, true);
        await this.uploadMissing(session, fh);
        result = await this.complete(session, t0);
      }
      await deleteJournal(journalPath);
      session.tracker.setPhase('done');
      this.emit('complete', result);
      return result;
    } finally {
      await fh?.close();
      await release();
    }
  }

  /** Uploads every part the session does not hold yet, through the limiter; the journal follows each one. */
  private async uploadMissing(session: Session, fh: FileHandle): Promise<void> {
    const journalPath = session.journalPath;
    const writer = new JournalWriter(journalPath, () => ({ ...session.journal, updatedAt: new Date().toISOString() }));
    const tracker = session.tracker;
    tracker.setPhase('upload');
    const toUpload = session.report ? session.report.toUpload : Array.from({ length: session.plan.partCount }, (_, i) => i + 1);
    const limiter = this.limiter!;
    let failure: { partNumber: number; error: unknown } | undefined;
    await Promise.all(
      toUpload.map((n) =>
        limiter(async () => {
          if (failure || this.stop.signal.aborted) return;
          try {
            await this.uploadPart(session, fh, n, writer, tracker);
          } catch (error) {
            tracker.dropped(n);
            if (!this.stop.signal.aborted) failure ??= { partNumber: n, error };
          }
        }),
      ),
    );
    await writer.flush();
    const uploadCtx = { ...this.ctxBase, uploadId: session.journal.uploadId, journalPath };
    if (this.stop.signal.aborted) throw new PausedError(uploadCtx, this.stop.signal.reason);
    if (failure) {
      const diffs = fingerprintDifferences(session.journal.source, await fingerprint(this.options.file));
      if (diffs.length) throw new SourceChangedError(this.options.file, diffs, uploadCtx);
      if (isGone(failure.error)) {
        await deleteJournal(journalPath);
        throw new UploadGoneError(uploadCtx, failure.error);
      }
      if (failure.error instanceof PartwiseError && !(failure.error instanceof S3RequestError)) throw failure.error;
      throw new PartFailedError({ ...uploadCtx, partNumber: failure.partNumber }, failure.error);
    }
    tracker.setPhase('complete');
  }

  private newTracker(plan: PartPlan): ProgressTracker {
    return new ProgressTracker(plan.fileSize, plan.partCount, (s) => this.emit('progress', s));
  }

  private async begin(fp: SourceFingerprint, journalPath: string, endpoint: string): Promise<Session> {
    const o = this.options;
    const plan = planParts(fp.size, { ...(o.partSize !== undefined ? { partSize: o.partSize } : {}), ...(o.minPartSize !== undefined ? { minPartSize: o.minPartSize } : {}) });
    const alg = o.checksumAlgorithm === 'none' ? null : (o.checksumAlgorithm ?? DEFAULT_CHECKSUM_ALGORITHM);
    const createInput: Parameters<S3Port['createMultipartUpload']>[0] = { bucket: o.bucket, key: o.key };
    const type = alg ? (o.checksumType ?? checksumTypeFor(alg)) : null;
    if (alg && type) {
      createInput.checksumAlgorithm = alg;
      createInput.checksumType = type;
    }
    if (o.contentType) createInput.contentType = o.contentType;
    if (o.metadata) createInput.metadata = o.metadata;
    const created = await this.retry(() => o.s3.createMultipartUpload(createInput, this.req(), this.stop.signal));
    const kms = (created.serverSideEncryption ?? o.serverSideEncryption ?? '').startsWith('aws:kms');
    const now = new Date().toISOString();
    const journal: JournalData = {
      schema: JOURNAL_SCHEMA,
      bucket: o.bucket,
      key: o.key,
      uploadId: created.uploadId,
      endpoint,
      partSize: plan.partSize,
      partCount: plan.partCount,
      checksumAlgorithm: alg,
      checksumType: type,
      // Under SSE-KMS and SSE-C part ETags are not MD5s; verify by checksum (or journal) instead.
      etagIsMd5: !kms && !o.sseCustomerKey && !created.sseCustomerAlgorithm,
      source: fp,
      sseCustomerKeyMd5: this.sseKeyMd5(),
      createdAt: now,
      updatedAt: now,
      parts: [],
    };
    // On disk before the first part: a crash from here on leaves a resumable upload, never an orphan.
    await writeJournalAtomic(journalPath, journal);
    const planEvent: Parameters<UploadEvents['plan']>[0] = {
      bucket: o.bucket,
      key: o.key,
      uploadId: created.uploadId,
      fileSize: fp.size,
      partSize: plan.partSize,
      partCount: plan.partCount,
      checksumAlgorithm: alg,
      resumed: false,
      journalPath,
    };
    if (plan.adjustedFrom !== undefined) planEvent.partSizeAdjustedFrom = plan.adjustedFrom;
    this.emit('plan', planEvent);
    return { fp, journalPath, journal, plan, alg, digests: new Map(), resumed: false, tracker: this.newTracker(plan) };
  }

  private async resume(j: JournalData, fp: SourceFingerprint, journalPath: string, repair = false): Promise<Session> {
    this.checkJournalBelongs(j, journalPath);
    const ctx = { ...this.ctxBase, uploadId: j.uploadId, journalPath };
    const diffs = fingerprintDifferences(j.source, fp);
    if (diffs.length) throw new SourceChangedError(this.options.file, diffs, ctx);
    const o = this.options;
    const plan = this.planFromJournal(j, fp);
    if (o.partSize !== undefined && o.partSize !== j.partSize) {
      this.emit('warning', { code: 'PART_SIZE_KEPT', message: `resuming with the upload's part size ${j.partSize}, not the requested ${o.partSize}` });
    }
    const wanted = o.checksumAlgorithm === undefined ? undefined : o.checksumAlgorithm === 'none' ? null : o.checksumAlgorithm;
    if (wanted !== undefined && wanted !== j.checksumAlgorithm) {
      this.emit('warning', { code: 'CHECKSUM_KEPT', message: `resuming with the upload's checksum ${j.checksumAlgorithm ?? 'none'}, not the requested ${wanted ?? 'none'}` });
    }
    if (!repair) this.emit('plan', {
      bucket: j.bucket,
      key: j.key,
      uploadId: j.uploadId,
      fileSize: fp.size,
      partSize: plan.partSize,
      partCount: plan.partCount,
      checksumAlgorithm: j.checksumAlgorithm,
      resumed: true,
      journalPath,
    });
    const tracker = this.newTracker(plan);
    let verified;
    try {
      verified = await this.verifyRemote(j, plan, fp, tracker);
    } catch (err) {
      if (err instanceof UploadGoneError) await deleteJournal(journalPath);
      if (this.stop.signal.aborted) throw new PausedError(ctx, err);
      throw err;
    }
    const { report, local, remote, stoppedEarly } = verified;
    if (stoppedEarly) this.emit('warning', { code: 'LIST_PARTS_STALLED', message: 'ListParts stopped advancing its marker; unlisted parts will be uploaded again' });
    if (report.extraParts.length) {
      this.emit('warning', { code: 'EXTRA_PARTS', message: `the server holds parts the plan does not have: ${report.extraParts.join(', ')}` });
    }
    this.emit('reconcile', report);
    // The journal now holds exactly the verified parts, with the ETags the server listed (Complete needs them).
    const digests = new Map<number, LocalDigest>();
    const parts: JournalPart[] = [];
    for (const v of report.parts) {
      if (v.status !== 'verified') continue;
      const d = local.get(v.partNumber)!;
      digests.set(v.partNumber, d);
      const jp: JournalPart = { partNumber: v.partNumber, size: v.size, etag: stripQuotes(remote.get(v.partNumber)!.etag), md5: d.md5Hex };
      if (d.checksum) jp.checksum = d.checksum.toString('base64');
      parts.push(jp);
      tracker.skip(v.size);
      if (!repair) this.emit('part-skip', { partNumber: v.partNumber, size: v.size, basis: v.basis });
    }
    j.parts = parts;
    await writeJournalAtomic(journalPath, { ...j, updatedAt: new Date().toISOString() });
    return { fp, journalPath, journal: j, plan, alg: j.checksumAlgorithm, digests, resumed: true, tracker, report };
  }

  private async uploadPart(s: Session, fh: FileHandle, n: number, writer: JournalWriter, tracker: ProgressTracker): Promise<void> {
    const part = partAt(s.plan, n);
    // Read inside the concurrency slot: memory stays near concurrency × part size.
    const body = await readRange(fh, part.offset, part.size);
    const d = digestBuffer(body, s.alg ?? undefined);
    const checksum = s.alg && d.checksum ? d.checksum.toString('base64') : undefined;
    tracker.startPart(n, part.size);
    let attempts = 0;
    const maxAttempts = this.policy.maxAttempts;
    const out = await this.retry(
      async () => {
        attempts++;
        if (attempts > 1) {
          // A retry sends the part from the file again, and the file must still hold the same bytes.
          await readRange(fh, part.offset, part.size, body);
          const again = digestBuffer(body, s.alg ?? undefined);
          if (again.md5Hex !== d.md5Hex || (d.checksum && !again.checksum?.equals(d.checksum))) {
            throw new SourceChangedError(this.options.file, [`the bytes of part ${n} changed during the upload`], { ...this.ctxBase, uploadId: s.journal.uploadId, partNumber: n });
          }
        }
        this.emit('part-start', { partNumber: n, size: part.size, attempt: attempts });
        const input: Parameters<S3Port['uploadPart']>[0] = {
          bucket: s.journal.bucket,
          key: s.journal.key,
          uploadId: s.journal.uploadId,
          partNumber: n,
          body,
          contentMd5: md5b64(d.md5Hex),
          onBytesSent: (b) => tracker.sent(n, b),
        };
        if (s.alg && checksum) input.checksum = { algorithm: s.alg, value: checksum };
        const r = await this.options.s3.uploadPart(input, this.req(), this.stop.signal);
        if (checksum && r.checksum && r.checksum !== checksum) {
          throw new S3RequestError({ operation: 'UploadPart', s3Code: 'PartChecksumMismatch', message: `server stored ${r.checksum}, sent ${checksum}` });
        }
        if (s.journal.etagIsMd5 && (r.serverSideEncryption?.startsWith('aws:kms') || r.sseCustomerAlgorithm || !looksLikeMd5(r.etag))) {
          s.journal.etagIsMd5 = false; // encrypted, or plainly not an MD5: expected, not an error
        } else if (s.journal.etagIsMd5 && stripQuotes(r.etag).toLowerCase() !== d.md5Hex && attempts < maxAttempts) {
          // An MD5-shaped ETag of other bytes: the part was stored wrong. Send it again; if it
          // keeps happening the server's ETags are simply not MD5s (handled after the loop).
          throw new S3RequestError({ operation: 'UploadPart', s3Code: 'PartETagMismatch', message: `server ETag ${stripQuotes(r.etag)}, MD5 sent ${d.md5Hex}` });
        }
        return r;
      },
      (i) => {
        this.retries++;
        tracker.retry(n);
        this.emit('part-retry', { partNumber: n, attempt: i.attempt, delayMs: i.delayMs, error: (i.error as Error).message, throttled: i.throttled });
      },
      body.length === 0,
    );
    const etag = stripQuotes(out.etag);
    if (s.journal.etagIsMd5 && etag.toLowerCase() !== d.md5Hex) {
      // The server checked Content-MD5 against these bytes, so a different ETag means either its
      // ETags are not MD5s (SSE-KMS / SSE-C, some servers), or it stored other bytes than it got.
      s.journal.etagIsMd5 = false;
      this.emit('warning', { code: 'ETAG_NOT_MD5', message: `part ETags are not MD5s here; verifying by ${s.alg ?? 'the journal'} instead` });
    }
    const jp: JournalPart = { partNumber: n, size: part.size, etag, md5: d.md5Hex };
    if (checksum) jp.checksum = checksum;
    s.journal.parts = s.journal.parts.filter((p) => p.partNumber !== n);
    s.journal.parts.push(jp);
    s.digests.set(n, d);
    tracker.acked(n);
    this.partsSent++;
    this.bytesSent += part.size;
    this.emit('part-done', { partNumber: n, size: part.size, etag, attempts });
    await writer.save();
  }

  private async complete(s: Session, t0: number): Promise<UploadResult> {
    const j = s.journal;
    const ctx = { ...this.ctxBase, uploadId: j.uploadId, journalPath: s.journalPath };
    // The bytes we hashed must still be the file's: a change mid-upload would make a mixed object.
    const diffs = fingerprintDifferences(j.source, await fingerprint(this.options.file));
    if (diffs.length) throw new SourceChangedError(this.options.file, diffs, ctx);

    const byNumber = new Map(j.parts.map((p) => [p.partNumber, p]));
    const ordered: JournalPart[] = [];
    for (let n = 1; n <= s.plan.partCount; n++) {
      const p = byNumber.get(n);
      if (!p) throw new CompleteFailedError(ctx, new Error(`part ${n} is missing from the part list (gap)`), true);
      ordered.push(p);
    }
    const total = ordered.reduce((a, p) => a + p.size, 0);
    if (total !== s.plan.fileSize) throw new CompleteFailedError(ctx, new Error(`part sizes add up to ${total}, the file has ${s.plan.fileSize} bytes`), true);

    const partDigests: PartDigest[] = ordered.map((p) => ({ size: p.size, checksum: s.digests.get(p.partNumber)?.checksum ?? Buffer.alloc(0) }));
    const expected: ExpectedObject = { size: s.plan.fileSize, algorithm: s.alg, partDigests };
    if (j.etagIsMd5) expected.partMd5Hex = ordered.map((p) => p.md5);
    const values = expectedValues(expected);

    const input: Parameters<S3Port['completeMultipartUpload']>[0] = {
      bucket: j.bucket,
      key: j.key,
      uploadId: j.uploadId,
      parts: ordered.map((p) => (p.checksum ? { partNumber: p.partNumber, etag: p.etag, checksum: p.checksum } : { partNumber: p.partNumber, etag: p.etag })),
      objectSize: s.plan.fileSize,
    };
    if (s.alg) {
      input.checksumAlgorithm = s.alg;
      input.checksumType = j.checksumType ?? checksumTypeFor(s.alg);
      if (values.fullObject && input.checksumType === 'FULL_OBJECT') input.fullObjectChecksum = values.fullObject;
    }

    try {
      await this.retry(() => this.options.s3.completeMultipartUpload(input, this.req(), this.stop.signal));
    } catch (err) {
      if (this.stop.signal.aborted) throw new PausedError(ctx, err);
      // An earlier attempt may have succeeded with its response lost: the object is the verdict.
      const head = await this.options.s3.headObject({ bucket: j.bucket, key: j.key }, this.req()).catch(() => undefined);
      const recovered = head && judgeObject(head, expected, values).mismatches.length === 0;
      if (!recovered) {
        if (isGone(err)) {
          await deleteJournal(s.journalPath);
          throw new UploadGoneError(ctx, err);
        }
        throw new CompleteFailedError(ctx, err, classifyError(err) !== 'fatal');
      }
      this.emit('warning', { code: 'COMPLETE_RECOVERED', message: 'Complete failed, but the object on the server matches the file; treating the upload as done' });
    }

    const head = await this.retry(() => this.options.s3.headObject({ bucket: j.bucket, key: j.key }, this.req()));
    if (!head) throw new ObjectVerificationError(ctx, ['the object is not there after Complete']);
    const verdict = judgeObject(head, expected, values);
    if (s.alg && !head.checksums[s.alg] && verdict.mismatches.length === 0) await this.verifyByParts(j, expected, verdict);
    if (verdict.mismatches.length) {
      await deleteJournal(s.journalPath);
      throw new ObjectVerificationError(ctx, verdict.mismatches);
    }
    const result: UploadResult = {
      bucket: j.bucket,
      key: j.key,
      uploadId: j.uploadId,
      etag: stripQuotes(head.etag),
      size: head.size,
      partCount: s.plan.partCount,
      partsUploaded: this.partsSent,
      partsSkipped: this.partsSkipped,
      bytesSent: this.bytesSent,
      retries: this.retries,
      resumed: s.resumed,
      checksumAlgorithm: s.alg,
      verification: { level: verdict.level, checks: verdict.checks },
      durationMs: Date.now() - t0,
    };
    const serverChecksum = s.alg ? head.checksums[s.alg] : undefined;
    if (serverChecksum) result.checksum = serverChecksum;
    if (head.checksumType) result.checksumType = head.checksumType;
    if (s.report) result.reconcile = s.report;
    return result;
  }

  /**
   * HeadObject reported no checksum (some servers don't): ask for the per-part checksums with
   * GetObjectAttributes instead. Not supported or not listed leaves the verdict as it was.
   */
  private async verifyByParts(j: JournalData, expected: ExpectedObject, verdict: ReturnType<typeof judgeObject>): Promise<void> {
    let listed: { partNumber: number; size: number; checksum?: string }[];
    try {
      // The same paging (and stuck-marker guard) as ListParts; these parts carry no ETag.
      const all = await listAllParts(async (marker) => {
        const out = await this.retry(() =>
          this.options.s3.getObjectAttributes({ bucket: j.bucket, key: j.key, maxParts: 1000, ...(marker !== undefined ? { partNumberMarker: marker } : {}) }, this.req()),
        );
        const page: Awaited<ReturnType<S3Port['listParts']>> = { parts: out.parts.map((p) => ({ ...p, etag: '' })), isTruncated: out.isTruncated };
        if (out.nextPartNumberMarker !== undefined) page.nextPartNumberMarker = out.nextPartNumberMarker;
        return page;
      });
      listed = all.parts;
    } catch (err) {
      if (err instanceof S3RequestError && classifyError(err) === 'fatal') return; // not supported here
      throw err;
    }
    const parts = judgeParts(listed, expected);
    verdict.mismatches.push(...parts.mismatches);
    if (parts.ok && parts.check) {
      verdict.checks.push(parts.check);
      if (verdict.level === 'size' || verdict.level === 'multipart-etag') verdict.level = 'composite-checksum';
    }
  }

  private async abortQuietly(j: JournalData): Promise<void> {
    try {
      await this.retry(() => this.options.s3.abortMultipartUpload({ bucket: j.bucket, key: j.key, uploadId: j.uploadId }, this.req()));
    } catch (err) {
      if (!isGone(err)) throw err;
    }
  }

  /**
   * Gives the upload up for good: AbortMultipartUpload on the server (the parts stop costing
   * storage) and the journal removed. Returns the uploadId that was aborted, if any.
   */
  async abort(): Promise<string | undefined> {
    const { journalPath } = await this.locate();
    const release = await acquireLock(journalPath, { ...this.ctxBase, journalPath });
    try {
      const j = await readJournal(journalPath);
      if (!j) return undefined;
      await this.abortQuietly(j);
      await deleteJournal(journalPath);
      return j.uploadId;
    } finally {
      await release();
    }
  }
}
