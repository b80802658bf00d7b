/**
 * One object from many workers, under a scheduler: plan, workers, finish. All state is in the
 * bucket beside the key (a plan object, a receipt per worker); workers keep nothing locally, so
 * several on one host, or on hosts sharing one home folder, never block or corrupt each other, and
 * a copy of a worker run twice at once (a requeued or replaced task) only repeats the same work.
 *
 * - plan: begins the multipart upload (checksum FULL_OBJECT, CRC32C by default) and writes the plan
 *   with If-None-Match; run again for the same file, it finds and re-uses its plan.
 * - worker i of N: checks its file is the planned one (size, modification time, spread samples),
 *   lists only its range of parts, verifies what the server holds against the file (the resume's
 *   evidence rule), sends what is missing or wrong, and writes its receipt (each part's checksum,
 *   the range's combined CRC).
 * - finish, on any host and without the file: every planned part listed with its planned size and
 *   the checksum its worker's receipt names, the receipts' CRCs combined into the object's, Complete
 *   with that FULL_OBJECT checksum, the object proven by HEAD; idempotent after a kill past
 *   Complete. After success the plan is rewritten as a finished record (the object's checksum),
 *   then the receipts and the plan are removed, unless kept as a proof record: a finish killed
 *   during that clean-up, or any step run again on kept records, proves the object and does nothing.
 */
import { hostname } from 'node:os';
import { basename } from 'node:path';
import { EventEmitter } from 'eventemitter3';
import pLimit from 'p-limit';
import { createHasher, loadHashers, stripQuotes } from '../core/checksums.ts';
import { InvalidOptionsError, PartsMissingError, PlanMismatchError, ReceiptMismatchError, RemotePartsInconsistentError, S3RequestError, UnverifiableError, UploadGoneError, answeredNoSuchKey, isNoSuchUpload, type ErrorContext } from '../core/errors.ts';
import { objectSettings, settingsDiff } from '../core/object-settings.ts';
import { partAt, type PartPlan } from '../core/planner.ts';
import { combineCrcs, isCombinable, planKey, planProblems, rangeOf, receiptCrc, receiptKey, receiptProblems, workerOf, type CombinableAlgorithm, type Receipt, type ReceiptPart, type SharedPlan, type SourceSample } from '../core/shared-plan.ts';
import { judgeObject } from '../core/verify-object.ts';
import { assertSourceUnchanged, fingerprint, openSource, readRange, type SourceFingerprint } from '../local/file-source.ts';
import { listAllParts, listPartsCaller, type ListAllResult } from '../s3/list-parts.ts';
import type { S3Port } from '../s3/port.ts';
import { EngineContext, stopFollowing } from '../upload/context.ts';
import type { UploadEvents, UploadResult } from '../upload/events.ts';
import { abortMultipart, finish } from '../upload/finish.ts';
import { loadSendHashers, partLimiter, planFor, validateOptions, type EngineOptions } from '../upload/options.ts';
import { ProgressTracker } from '../upload/progress.ts';
import { sendParts } from '../upload/send.ts';
import { lookAtKey } from '../upload/discover.ts';
import { settingsNotCarried } from '../upload/read-back.ts';
import { newJournal, verifyListed } from '../upload/session.ts';
import type { Session } from '../upload/types.ts';
import type { LocalDigest } from '../core/hashing.ts';

/** What every step takes: an upload's options, less what a shared upload decides itself. */
export type SharedOptions = Omit<EngineOptions, 'fresh' | 'discover' | 'uploadId' | 'stateDir' | 'noOverwrite'>;

export interface PlanResult {
  plan: SharedPlan;
  /** the plan was already there for this file (run again): nothing was begun */
  reused: boolean;
  /** that plan was finished, and the object at the key is proven this file's: nothing to do */
  finished: boolean;
  planKey: string;
}

export interface WorkerResult {
  worker: number;
  workers: number;
  first: number;
  last: number;
  /** parts the server held and the file proved, not sent again */
  partsVerified: number;
  partsSent: number;
  bytesSent: number;
  /** '' when the plan was already finished */
  receiptKey: string;
  /** the plan was finished and the object proven: nothing was listed or sent */
  alreadyFinished: boolean;
}

/** As an upload's result says it, plus what the finish step combined. */
export type FinishResult = Pick<UploadResult, 'bucket' | 'key' | 'uploadId' | 'etag' | 'size' | 'partCount' | 'verification'> & {
  checksumAlgorithm: CombinableAlgorithm;
  /** the full-object checksum, combined from the receipts and shown by the server */
  checksum: string;
  /** a previous finish had completed it (killed before it could say so): proven now, nothing sent */
  alreadyComplete: boolean;
  /** the plan and receipts were kept (keepRecords) */
  recordsKept: boolean;
};

const SAMPLES = 16;
const SAMPLE_BYTES = 64 * 1024;

/** Spread samples of the file (the first and last bytes among them): CRC32C of each. */
async function sampleSource(path: string, size: number): Promise<SourceSample[]> {
  await loadHashers(['CRC32C']);
  const fh = await openSource(path);
  try {
    const length = Math.min(SAMPLE_BYTES, size);
    const count = size <= length ? 1 : SAMPLES;
    const out: SourceSample[] = [];
    for (let k = 0; k < count; k++) {
      const offset = count === 1 ? 0 : Math.floor((k * (size - length)) / (count - 1));
      const h = createHasher('CRC32C');
      h.update(await readRange(fh, offset, length));
      out.push({ offset, length, crc32c: h.digest().toString('base64') });
    }
    return out;
  } finally {
    await fh.close();
  }
}

/** How this host's file differs from the planned one, in words ([] when it is the planned file). */
async function sourceDifferences(plan: SharedPlan, fp: SourceFingerprint): Promise<string[]> {
  if (fp.size !== plan.source.size) return [`the file has ${fp.size} bytes, the planned one ${plan.source.size}`];
  const out: string[] = [];
  if (fp.mtimeMs !== plan.source.mtimeMs) out.push(`it was modified at ${new Date(fp.mtimeMs).toISOString()}, the planned one at ${new Date(plan.source.mtimeMs).toISOString()}`);
  const here = await sampleSource(fp.path, fp.size);
  const bad = plan.source.samples.filter((s, i) => here[i]?.offset !== s.offset || here[i]?.crc32c !== s.crc32c);
  if (bad.length) out.push(`${bad.length} of its ${plan.source.samples.length} samples hold other bytes (first at offset ${bad[0]!.offset})`);
  return out;
}

function partPlanOf(plan: SharedPlan): PartPlan {
  return { fileSize: plan.size, partSize: plan.partSize, partCount: plan.partCount };
}

function needObjects(s3: S3Port): Required<Pick<S3Port, 'getObject' | 'deleteObject'>> {
  if (!s3.getObject || !s3.deleteObject) throw new InvalidOptionsError('this S3 port cannot read or delete objects (getObject, deleteObject): a shared upload keeps its plan and receipts in the bucket');
  return { getObject: s3.getObject.bind(s3), deleteObject: s3.deleteObject.bind(s3) };
}

async function readJson(cx: EngineContext, key: string): Promise<unknown> {
  const { getObject } = needObjects(cx.s3);
  const got = await cx.retry(() => getObject({ bucket: cx.o.bucket, key }, cx.req, cx.signal));
  if (!got) return undefined;
  try {
    return JSON.parse(got.body.toString('utf8'));
  } catch {
    return { format: 'unreadable' };
  }
}

async function writeJson(cx: EngineContext, key: string, value: unknown, ifNoneMatch: boolean): Promise<void> {
  const body = Buffer.from(JSON.stringify(value, null, 1) + '\n');
  await loadHashers(['CRC32C', 'MD5']);
  const h = createHasher('CRC32C');
  h.update(body);
  const md5 = createHasher('MD5');
  md5.update(body);
  await cx.retry(() =>
    cx.s3.putObject({ bucket: cx.o.bucket, key, body, contentMd5: md5.digest().toString('base64'), checksum: { algorithm: 'CRC32C', value: h.digest().toString('base64') }, settings: { contentType: 'application/json' }, ...(ifNoneMatch ? { ifNoneMatch: true } : {}) }, cx.req, cx.signal),
  );
}

/** The plan at the key, checked whole; undefined when there is none. */
async function readPlan(cx: EngineContext): Promise<SharedPlan | undefined> {
  const raw = await readJson(cx, planKey(cx.o.key));
  if (raw === undefined) return undefined;
  const problems = planProblems(raw, cx.o.bucket, cx.o.key);
  if (problems.length) throw new PlanMismatchError(cx.errorContext(), [`the object at ${planKey(cx.o.key)} is not a plan partwise can use: ${problems.join('; ')}`], `Remove it with partwise abort s3://${cx.o.bucket}/${cx.o.key}, then plan again.`);
  return raw as SharedPlan;
}

function context(o: SharedOptions, emit: EngineContext['emit'], signal: AbortSignal): EngineContext {
  const eo: EngineOptions = { ...o };
  return new EngineContext(eo, partLimiter(o), signal, emit);
}

const quiet = (() => true) as unknown as EngineContext['emit'];

/**
 * The plan step: begins the upload once for a file and writes its plan beside the key
 * (If-None-Match). Run again for the same file, it finds the plan and re-uses it; a plan for other
 * bytes, another part size, checksum, worker count or settings is refused, saying how to start over.
 */
export async function planSharedUpload(o: SharedOptions & { workers: number }): Promise<PlanResult> {
  validateOptions({ ...o });
  if (!Number.isSafeInteger(o.workers) || o.workers < 1 || o.workers > 10_000) throw new InvalidOptionsError(`workers must be a whole number from 1 to 10,000; got ${o.workers}`);
  const alg = o.checksumAlgorithm === undefined ? 'CRC32C' : o.checksumAlgorithm;
  if (alg === 'none' || !isCombinable(alg)) throw new InvalidOptionsError(`a shared upload needs a checksum whose part values combine into the object's (CRC32C, CRC64NVME or CRC32; got ${alg}): the finish step proves the object from the workers' part checksums without reading it`);
  if (o.checksumType === 'COMPOSITE') throw new InvalidOptionsError('a shared upload is FULL_OBJECT: its part checksums combine into the object\'s');
  if (o.sseCustomerKey) throw new InvalidOptionsError('SSE-C cannot be used for a shared upload here: every worker and the finish step would need the key, and the plan cannot carry it');
  const cx = context(o, quiet, new AbortController().signal);
  const ctx = cx.errorContext();
  const fp = await fingerprint(o.file);
  const samples = await sampleSource(fp.path, fp.size);
  const settings = objectSettings(o, o.file);
  const layout = planFor(fp.size, o);
  // The checksum is compared with a plan found only when one was asked for (the default need not match an older plan's).
  const wanted = { size: fp.size, mtimeMs: fp.mtimeMs, samples, partSize: layout.partSize, alg: o.checksumAlgorithm === undefined ? undefined : alg, workers: o.workers, settings };

  const newPlan = (uploadId: string, checksumAlgorithm: CombinableAlgorithm): SharedPlan => ({
    format: 'partwise-plan',
    version: 1,
    bucket: o.bucket,
    key: o.key,
    uploadId,
    createdAt: new Date().toISOString(),
    workers: o.workers,
    size: fp.size,
    partSize: layout.partSize,
    partCount: layout.partCount,
    checksumAlgorithm,
    checksumType: 'FULL_OBJECT',
    source: { name: basename(fp.path), size: fp.size, mtimeMs: fp.mtimeMs, samples },
    settings,
  });

  const existing = await readPlan(cx);
  if (existing?.finished) {
    // This file finished already: the whole pipeline run again does nothing. Another file (a new
    // version, other settings): the finished record gives way to a new plan.
    if (sourceDiffs(existing, wanted).length === 0 && settingsDiff(existing.settings, settings).length === 0 && (!wanted.alg || wanted.alg === existing.checksumAlgorithm) && (await finishedProof(cx, existing)).ok) return { plan: existing, reused: true, finished: true, planKey: planKey(o.key) };
    const { deleteObject } = needObjects(cx.s3);
    await cx.retry(() => deleteObject({ bucket: o.bucket, key: planKey(o.key) }, cx.req, cx.signal));
  } else if (existing) return { plan: await reuse(cx, existing, wanted, o.partSize !== undefined), reused: true, finished: false, planKey: planKey(o.key) };
  else {
    // No plan: a first run, or the pipeline run again after a finish removed its records. The file
    // proven at the key is not uploaded again: a finished record takes the plan's place, so the
    // workers and finish, run again, prove it and do nothing (finish then removes it).
    const found = await finishedAtKey(cx, o.checksumAlgorithm === undefined ? undefined : alg);
    if (found) {
      const record: SharedPlan = { ...newPlan('none (the object was found finished at the key)', found.checksumAlgorithm), finished: { checksum: found.checksum, etag: found.etag, finishedAt: new Date().toISOString() } };
      try {
        await writeJson(cx, planKey(o.key), record, true);
        return { plan: record, reused: false, finished: true, planKey: planKey(o.key) };
      } catch (err) {
        if (!(err instanceof S3RequestError && err.httpStatus === 412)) throw err;
        // Another plan step wrote first: theirs is judged as any plan found.
        return planSharedUpload(o);
      }
    }
  }

  await loadSendHashers(alg);
  const created = await cx.retry(() => cx.s3.createMultipartUpload({ bucket: o.bucket, key: o.key, checksumAlgorithm: alg, checksumType: 'FULL_OBJECT', settings }, cx.req, cx.signal));
  const plan = newPlan(created.uploadId, alg);
  try {
    await writeJson(cx, planKey(o.key), plan, true);
  } catch (err) {
    if (!(err instanceof S3RequestError && err.httpStatus === 412)) {
      await abortMultipart(cx, { bucket: o.bucket, key: o.key, uploadId: created.uploadId }).catch(() => undefined);
      throw err;
    }
    // Another planner got there first (two plan steps at once): theirs stands, ours goes.
    await abortMultipart(cx, { bucket: o.bucket, key: o.key, uploadId: created.uploadId });
    const theirs = await readPlan(cx);
    if (!theirs) throw new PlanMismatchError(ctx, ['another plan step wrote a plan and it is gone again'], 'Run the plan step again.');
    return { plan: await reuse(cx, theirs, wanted, o.partSize !== undefined), reused: true, finished: false, planKey: planKey(o.key) };
  }
  return { plan, reused: false, finished: false, planKey: planKey(o.key) };
}

/**
 * The object at the key proven to be this file (one pass over it, as a single upload's rerun) with
 * the settings asked for, and showing a full-object checksum: `asked`, or with none asked any
 * combinable one (a CRC64NVME object is as proven as a CRC32C one). Undefined otherwise.
 */
async function finishedAtKey(cx: EngineContext, asked: CombinableAlgorithm | undefined): Promise<{ checksumAlgorithm: CombinableAlgorithm; checksum: string; etag: string } | undefined> {
  const look = await lookAtKey(cx);
  const head = look.head;
  if (!look.present || !head) return undefined;
  const checksumAlgorithm = asked ?? (['CRC32C', 'CRC64NVME', 'CRC32'] as const).find((a) => head.checksums[a] !== undefined);
  const checksum = checksumAlgorithm && head.checksums[checksumAlgorithm];
  if (!checksumAlgorithm || !checksum) return undefined;
  const fullObject = head.checksumType === 'FULL_OBJECT' || (head.checksumType === undefined && !/-\d+$/.test(checksum));
  if (!fullObject || (await settingsNotCarried(cx, head, cx.o.file)) !== undefined) return undefined;
  return { checksumAlgorithm, checksum, etag: stripQuotes(head.etag) };
}

type Wanted = { size: number; mtimeMs: number; samples: SourceSample[]; partSize: number; alg: CombinableAlgorithm | undefined; workers: number; settings: ReturnType<typeof objectSettings> };

function sourceDiffs(plan: SharedPlan, w: Wanted): string[] {
  if (plan.source.size === w.size && plan.source.mtimeMs === w.mtimeMs && plan.source.samples.every((s, i) => w.samples[i]?.crc32c === s.crc32c)) return [];
  return [`it is for other bytes (${plan.source.size} bytes modified ${new Date(plan.source.mtimeMs).toISOString()}; this file: ${w.size} bytes modified ${new Date(w.mtimeMs).toISOString()}${plan.source.size === w.size && plan.source.mtimeMs === w.mtimeMs ? ', other sampled bytes' : ''})`];
}

/** A finished plan's object, judged by its full-object checksum: still the one finished, or why not. */
async function finishedProof(cx: EngineContext, plan: SharedPlan): Promise<{ ok: true; head: NonNullable<Awaited<ReturnType<S3Port['headObject']>>>; judged: ReturnType<typeof judgeObject> } | { ok: false; why: string }> {
  const f = plan.finished!;
  const head = await cx.retry(() => cx.s3.headObject({ bucket: plan.bucket, key: plan.key }, cx.req, cx.signal));
  if (!head) return { ok: false, why: `there is no object at the key now (deleted since it was finished at ${f.finishedAt})` };
  const judged = judgeObject(head, { size: plan.size, algorithm: plan.checksumAlgorithm, partDigests: [] }, { fullObject: f.checksum });
  if (judged.mismatches.length || judged.level !== 'full-object-checksum') return { ok: false, why: `the object at the key is not the one finished at ${f.finishedAt} (${judged.mismatches.join('; ') || 'it shows no full-object checksum to compare'})` };
  return { ok: true, head, judged };
}

/** A finished plan's object, or PLAN_MISMATCH saying it was replaced or deleted since. */
async function assertFinished(cx: EngineContext, plan: SharedPlan): Promise<{ head: NonNullable<Awaited<ReturnType<S3Port['headObject']>>>; judged: ReturnType<typeof judgeObject> }> {
  const proof = await finishedProof(cx, plan);
  if (!proof.ok) throw new PlanMismatchError(cx.errorContext({ uploadId: plan.uploadId }), [`it was finished, but ${proof.why}`], `To upload the file again: partwise abort s3://${plan.bucket}/${plan.key} (removes the finished record), then plan.`);
  return proof;
}

/** A plan found at the key is this run's only when it describes the same bytes, layout and settings, and its upload is still open. */
async function reuse(cx: EngineContext, plan: SharedPlan, w: Wanted, partSizeAsked: boolean): Promise<SharedPlan> {
  const diffs = sourceDiffs(plan, w);
  if (partSizeAsked && plan.partSize !== w.partSize) diffs.push(`its part size is ${plan.partSize}, this run asks ${w.partSize}`);
  if (w.alg && plan.checksumAlgorithm !== w.alg) diffs.push(`its checksum is ${plan.checksumAlgorithm}, this run asks ${w.alg}`);
  if (plan.workers !== w.workers) diffs.push(`it has ${plan.workers} workers, this run asks ${w.workers}`);
  diffs.push(...settingsDiff(plan.settings, w.settings));
  const ctx = cx.errorContext({ uploadId: plan.uploadId });
  const fresh = `Remove it (partwise abort s3://${plan.bucket}/${plan.key}: the upload and its records go) and plan again.`;
  if (diffs.length) throw new PlanMismatchError(ctx, diffs, fresh);
  try {
    await cx.retry(() => cx.s3.listParts({ bucket: plan.bucket, key: plan.key, uploadId: plan.uploadId, maxParts: 1 }, cx.req, cx.signal));
  } catch (err) {
    if (!isNoSuchUpload(err)) throw err;
    throw new PlanMismatchError(ctx, [`its upload ${plan.uploadId} is gone from the server (finished, aborted or expired)`], `If it was finished, partwise finish s3://${plan.bucket}/${plan.key} says so and removes the plan; otherwise: ${fresh}`);
  }
  return plan;
}

export interface WorkerOptions extends SharedOptions {
  worker: number;
  /** N as the command was given it (or the scheduler's count): must be the plan's */
  workers?: number;
}

/**
 * Worker i of N: its range of the plan's parts, verified against this host's file and completed on
 * the server, then its receipt. Emits the engine's events (plan, verify-progress, part-*, progress).
 */
export class SharedWorker extends EventEmitter<UploadEvents> {
  private readonly stop: AbortController;
  private readonly unlinkStop: () => void;
  private readonly cx: EngineContext;
  private running: Promise<WorkerResult> | undefined;

  constructor(readonly options: WorkerOptions) {
    super();
    validateOptions({ ...options });
    if (!Number.isSafeInteger(options.worker) || options.worker < 0) throw new InvalidOptionsError(`worker must be a whole number from 0; got ${options.worker}`);
    ({ stop: this.stop, unlink: this.unlinkStop } = stopFollowing(options.signal));
    ProgressTracker.follow(this);
    this.cx = context(options, this.emit.bind(this), this.stop.signal);
  }

  done(): Promise<WorkerResult> {
    this.running ??= this.run().finally(this.unlinkStop);
    return this.running;
  }

  private async run(): Promise<WorkerResult> {
    const o = this.options;
    const cx = this.cx;
    const plan = await readPlan(cx);
    if (!plan) throw new PlanMismatchError(cx.errorContext(), [], `Run partwise plan ${o.file} s3://${o.bucket}/${o.key} --workers N first. If the upload finished, its records were removed after success: that plan step proves the object from the file and then this worker confirms it (finish --keep-receipts keeps the records, for workers run late).`);
    const ctx: ErrorContext = cx.errorContext({ uploadId: plan.uploadId });
    if (o.workers !== undefined && o.workers !== plan.workers) throw new PlanMismatchError(ctx, [`it has ${plan.workers} workers, this worker was started as one of ${o.workers}`], `Start the workers as the plan says: --worker I/${plan.workers}, or --worker auto (N from the plan).`);
    if (o.worker >= plan.workers) throw new PlanMismatchError(ctx, [`it has workers 0 to ${plan.workers - 1}, not ${o.worker}`], `Start the workers as the plan says: --worker I/${plan.workers} with I from 0 to ${plan.workers - 1} (an array's task ids 0 to ${plan.workers - 1}: sbatch --array=0-${plan.workers - 1}).`);
    const fp = await fingerprint(o.file);
    const diffs = await sourceDifferences(plan, fp);
    // Another version of the file on this host: its parts are never sent into this object.
    if (diffs.length) throw new PlanMismatchError(ctx, [`this host's ${o.file} is not the planned file: ${diffs.join('; ')}`], 'Run this worker where the planned file is (the same bytes, as on a shared file system); nothing was sent.');
    const { first, last } = rangeOf(o.worker, plan.workers, plan.partCount);
    if (plan.finished) {
      // Run again after the finish (a requeued task, the pipeline rerun): the object proves it.
      await assertFinished(cx, plan);
      cx.emit('phase', { phase: 'done' });
      return { worker: o.worker, workers: plan.workers, first, last, partsVerified: 0, partsSent: 0, bytesSent: 0, receiptKey: '', alreadyFinished: true };
    }
    const layout = partPlanOf(plan);
    const j = newJournal({ ...cx.o, bucket: plan.bucket, key: plan.key }, { uploadId: plan.uploadId }, { endpoint: '', partSize: plan.partSize, partCount: plan.partCount, checksumAlgorithm: plan.checksumAlgorithm, checksumType: 'FULL_OBJECT', source: fp, settings: plan.settings });
    const rangeBytes = first > last ? 0 : partAt(layout, last).offset + partAt(layout, last).size - partAt(layout, first).offset;
    cx.emit('plan', { bucket: plan.bucket, key: plan.key, uploadId: plan.uploadId, fileSize: rangeBytes, partSize: plan.partSize, partCount: Math.max(0, last - first + 1), checksumAlgorithm: plan.checksumAlgorithm, resumed: true, journalPath: '' });
    const digests = new Map<number, LocalDigest>();
    let verified = 0;
    const toUpload: number[] = [];
    if (first <= last) {
      let listed: ListAllResult;
      try {
        const call = listPartsCaller(cx.s3, { bucket: plan.bucket, key: plan.key, uploadId: plan.uploadId }, cx.req, cx.signal);
        listed = await listAllParts((marker) => cx.retry(() => call(marker)), { first, last });
      } catch (err) {
        // NoSuchKey may also be a server without ListParts (fauxqs) answering as GetObject: said, never probed (an abort would end every worker's upload).
        if (isNoSuchUpload(err)) throw new UploadGoneError(ctx, err, answeredNoSuchKey(err) ? 'ListParts answered NoSuchKey: the shared upload was finished or aborted, or this server does not implement ListParts, and then no shared upload can work on it' : 'the shared upload was finished or aborted; this worker has nothing to do');
        throw err;
      }
      await loadSendHashers(plan.checksumAlgorithm, plan.uploadId);
      // A server that lists every part's checksum stores and checks them: the checksum is the
      // evidence, and MD5 (the slowest hash here) is neither computed nor sent.
      if (listed.parts.length && listed.parts.every((p) => p.checksum !== undefined)) j.serverChecksums = true;
      const v = await verifyListed(cx, j, layout, fp, listed);
      for (let n = first; n <= last; n++) {
        const verdict = v.report.parts[n - 1]!;
        if (verdict.status === 'verified') {
          digests.set(n, v.local.get(n)!);
          verified++;
        } else toUpload.push(n);
      }
      cx.emit('reconcile', { ...v.report, parts: v.report.parts.slice(first - 1, last), verified: v.report.verified.filter((n) => n >= first && n <= last), toUpload, extraParts: [] });
      const fh = await openSource(o.file);
      try {
        const session: Session = { journalPath: '', journal: j, plan: layout, alg: plan.checksumAlgorithm, digests, resumed: true, toUpload };
        await sendParts(cx, session, fh);
      } finally {
        await fh.close();
      }
      // Changed while the range was read: parts already sent hold the old bytes, so no receipt vouches for them.
      await assertSourceUnchanged(fp, o.file, ctx, `No receipt was written. Once the file is settled, remove the shared upload (partwise abort s3://${plan.bucket}/${plan.key}) and plan again: every worker must read the same bytes.`);
    }
    const parts: ReceiptPart[] = [];
    for (let n = first; n <= last; n++) {
      const d = digests.get(n);
      if (!d?.checksum) throw new UnverifiableError(ctx, `part ${n} has no checksum of its own here`);
      parts.push({ partNumber: n, size: partAt(layout, n).size, checksum: d.checksum.toString('base64') });
    }
    const receipt: Receipt = { format: 'partwise-receipt', version: 1, uploadId: plan.uploadId, worker: o.worker, workers: plan.workers, first, last, parts, bytes: rangeBytes, crc: receiptCrc(plan.checksumAlgorithm, parts), writtenAt: new Date().toISOString(), host: hostname() };
    const key = receiptKey(plan.key, o.worker, plan.workers);
    // A copy of this worker run at the same time writes the same parts and the same receipt.
    await writeJson(cx, key, receipt, false);
    cx.emit('phase', { phase: 'done' });
    return { worker: o.worker, workers: plan.workers, first, last, partsVerified: verified, partsSent: cx.stats.partsSent, bytesSent: cx.stats.bytesSent, receiptKey: key, alreadyFinished: false };
  }
}

export interface FinishOptions extends Omit<SharedOptions, 'file'> {
  /** keep the plan and receipts after success, as a proof record (default: removed) */
  keepRecords?: boolean;
}

/**
 * The finish step, on any host, without the file: every part listed, each as the plan and its
 * worker's receipt say, the object's CRC combined from the receipts, Complete with it, and the
 * object proven. What is missing is named (parts, and the workers to run again); nothing is
 * completed then.
 */
export async function finishSharedUpload(o: FinishOptions): Promise<FinishResult> {
  validateOptions({ ...o, file: '-' });
  const cx = context({ ...o, file: '-' }, quiet, o.signal ?? new AbortController().signal);
  const plan = await readPlan(cx);
  if (!plan) throw new PlanMismatchError(cx.errorContext(), [], 'Nothing to finish: plan and run the workers first. If it finished, its records were removed after success: the plan step run again proves the object from the file (and finish then confirms it); partwise verify checks it too.');
  if (plan.finished) {
    const { head, judged } = await assertFinished(cx, plan);
    await removeRecords(cx, plan, o.keepRecords === true);
    return { bucket: plan.bucket, key: plan.key, uploadId: plan.uploadId, etag: stripQuotes(head.etag), size: plan.size, partCount: plan.partCount, checksumAlgorithm: plan.checksumAlgorithm, checksum: plan.finished.checksum, verification: { level: judged.level, checks: judged.checks }, alreadyComplete: true, recordsKept: o.keepRecords === true };
  }
  const ctx = cx.errorContext({ uploadId: plan.uploadId });
  const alg = plan.checksumAlgorithm;
  await loadHashers([alg]);

  // Every receipt, each checked against the plan and itself.
  const receipts: Receipt[] = [];
  const missingWorkers = new Set<number>();
  const why: string[] = [];
  await Promise.all(
    Array.from({ length: plan.workers }, (_, i) =>
      readJson(cx, receiptKey(plan.key, i, plan.workers)).then((raw) => {
        if (raw === undefined) {
          missingWorkers.add(i);
          return;
        }
        const problems = receiptProblems(raw, plan, i);
        if (problems.length) throw new ReceiptMismatchError(ctx, i, problems);
        receipts[i] = raw as Receipt;
      }),
    ),
  );
  if (missingWorkers.size) why.push(`no receipt from worker${missingWorkers.size > 1 ? 's' : ''} ${[...missingWorkers].sort((a, b) => a - b).join(', ')}`);
  const expectedCrc = missingWorkers.size ? '' : combineCrcs(alg, receipts.map((r) => ({ crc: r.crc, bytes: r.bytes })));

  let listed: ListAllResult;
  try {
    const call = listPartsCaller(cx.s3, { bucket: plan.bucket, key: plan.key, uploadId: plan.uploadId }, cx.req, cx.signal);
    listed = await listAllParts((marker) => cx.retry(() => call(marker)));
  } catch (err) {
    if (!isNoSuchUpload(err)) throw err;
    return alreadyFinished(cx, o, plan, expectedCrc, err);
  }

  const byNumber = new Map(listed.parts.map((p) => [p.partNumber, p]));
  const extra = listed.parts.filter((p) => p.partNumber < 1 || p.partNumber > plan.partCount).map((p) => p.partNumber);
  if (extra.length) throw new RemotePartsInconsistentError(`The server holds parts ${extra.join(', ')} of upload ${plan.uploadId}, beyond the plan's ${plan.partCount}: another writer. Nothing was completed.`, ctx, `Remove the shared upload (partwise abort s3://${plan.bucket}/${plan.key}) and plan again.`);
  const missingParts: number[] = [];
  const layout = partPlanOf(plan);
  for (let n = 1; n <= plan.partCount; n++) {
    const p = byNumber.get(n);
    const w = workerOf(n, plan.workers, plan.partCount);
    if (!p) {
      missingParts.push(n);
      missingWorkers.add(w);
      continue;
    }
    const size = partAt(layout, n).size;
    if (p.size !== size) throw new ReceiptMismatchError(ctx, w, [`part ${n} on the server has ${p.size} bytes, the plan ${size}`]);
    const r = receipts[w];
    if (!r) continue; // that worker's receipt is missing: named below
    if (p.checksum === undefined) throw new UnverifiableError(ctx, `the server lists no ${alg} checksum for part ${n}, so no part can be checked against its receipt`);
    const want = r.parts[n - r.first]!.checksum;
    if (p.checksum !== want) throw new ReceiptMismatchError(ctx, w, [`part ${n} on the server has ${alg} ${p.checksum}, its receipt ${want}`]);
  }
  if (missingWorkers.size) throw new PartsMissingError(ctx, { parts: missingParts, workers: [...missingWorkers].sort((a, b) => a - b), why, of: plan.workers });

  // The object's CRC two ways: from the parts the server lists, and from the receipts' ranges.
  const fromParts = combineCrcs(alg, listed.parts.map((p) => ({ crc: p.checksum!, bytes: p.size })));
  if (fromParts !== expectedCrc) throw new ReceiptMismatchError(ctx, undefined, [`the parts on the server combine to ${fromParts}, the receipts to ${expectedCrc}`]);

  const digests = new Map<number, LocalDigest>(listed.parts.map((p) => [p.partNumber, { checksum: Buffer.from(p.checksum!, 'base64') }]));
  const j = newJournal({ ...cx.o, bucket: plan.bucket, key: plan.key }, { uploadId: plan.uploadId }, { endpoint: '', partSize: plan.partSize, partCount: plan.partCount, checksumAlgorithm: alg, checksumType: 'FULL_OBJECT', source: { path: '-', size: plan.size, mtimeMs: 0, ctimeMs: 0, ino: 0, dev: 0 }, settings: plan.settings });
  j.etagIsMd5 = false; // no part MD5 is known here: the checksum is the evidence
  j.parts = listed.parts.map((p) => ({ partNumber: p.partNumber, size: p.size, etag: stripQuotes(p.etag), checksum: p.checksum! }));
  const session: Session = { journalPath: '', journal: j, plan: layout, alg, digests, resumed: true, toUpload: [], noFile: true };
  const done = await finish(cx, session);
  const head = done.proof.head;
  const etag = stripQuotes(head?.etag ?? done.completed?.etag ?? '');
  await recordFinished(cx, plan, expectedCrc, etag, o.keepRecords === true);
  return {
    bucket: plan.bucket,
    key: plan.key,
    uploadId: plan.uploadId,
    etag,
    size: plan.size,
    partCount: plan.partCount,
    checksumAlgorithm: alg,
    checksum: expectedCrc,
    verification: { level: done.proof.judgement.level, checks: done.proof.judgement.checks },
    alreadyComplete: false,
    recordsKept: o.keepRecords === true,
  };
}

/** The upload is gone: a finish killed past Complete, or aborted. The object is this one only if its CRC is the receipts'. */
async function alreadyFinished(cx: EngineContext, o: FinishOptions, plan: SharedPlan, expectedCrc: string, gone: unknown): Promise<FinishResult> {
  const ctx = cx.errorContext({ uploadId: plan.uploadId });
  if (!expectedCrc) throw new UploadGoneError(ctx, gone, 'receipts are missing, so nothing can say what the object should be');
  const head = await cx.retry(() => cx.s3.headObject({ bucket: plan.bucket, key: plan.key }, cx.req, cx.signal));
  if (!head) throw new UploadGoneError(ctx, gone, 'there is no object at the key');
  const judged = judgeObject(head, { size: plan.size, algorithm: plan.checksumAlgorithm, partDigests: [] }, { fullObject: expectedCrc });
  if (judged.mismatches.length || judged.level !== 'full-object-checksum') throw new UploadGoneError(ctx, gone, judged.mismatches.join('; ') || 'the object shows no full-object checksum to compare');
  await recordFinished(cx, plan, expectedCrc, stripQuotes(head.etag), o.keepRecords === true);
  return { bucket: plan.bucket, key: plan.key, uploadId: plan.uploadId, etag: stripQuotes(head.etag), size: plan.size, partCount: plan.partCount, checksumAlgorithm: plan.checksumAlgorithm, checksum: expectedCrc, verification: { level: judged.level, checks: judged.checks }, alreadyComplete: true, recordsKept: o.keepRecords === true };
}

/**
 * The plan becomes the finished record before any record goes, and goes last: a finish killed
 * while removing them, run again, still knows what the object must be. Kept (keepRecords), it
 * lets every step run again later prove the object and do nothing.
 */
async function recordFinished(cx: EngineContext, plan: SharedPlan, checksum: string, etag: string, keep: boolean): Promise<void> {
  const finished: SharedPlan = { ...plan, finished: { checksum, etag, finishedAt: new Date().toISOString() } };
  await writeJson(cx, planKey(plan.key), finished, false);
  await removeRecords(cx, plan, keep);
}

async function removeKeys(cx: EngineContext, bucket: string, keys: string[]): Promise<void> {
  const { deleteObject } = needObjects(cx.s3);
  const limit = pLimit(8);
  await Promise.all(keys.map((key) => limit(() => cx.retry(() => deleteObject({ bucket, key }, cx.req, cx.signal)))));
}

/** The receipts, then the plan: while any receipt is left, the plan still says whose it is and what the object must be. */
async function removeRecords(cx: EngineContext, plan: SharedPlan, keep: boolean): Promise<void> {
  if (keep) return;
  await removeKeys(cx, plan.bucket, Array.from({ length: plan.workers }, (_, i) => receiptKey(plan.key, i, plan.workers)));
  await removeKeys(cx, plan.bucket, [planKey(plan.key)]);
}

/**
 * An abandoned shared upload: its multipart upload aborted, its plan and receipts removed; for a
 * finished one, only its records (the object stays). Undefined when no plan is at the key.
 */
export async function abandonSharedUpload(o: Omit<FinishOptions, 'keepRecords'>): Promise<{ uploadId: string; finished: boolean } | undefined> {
  const cx = context({ ...o, file: '-' }, quiet, o.signal ?? new AbortController().signal);
  const raw = await readJson(cx, planKey(o.key));
  if (raw === undefined) return undefined;
  const plan = raw as Partial<SharedPlan>;
  const whole = planProblems(raw, o.bucket, o.key).length === 0;
  if (plan.uploadId && whole && !plan.finished) await abortMultipart(cx, { bucket: o.bucket, key: o.key, uploadId: plan.uploadId });
  const workers = Number.isSafeInteger(plan.workers) ? plan.workers! : 0;
  // The plan last: while a receipt is left, the plan still says whose it is.
  await removeKeys(cx, o.bucket, Array.from({ length: workers }, (_, i) => receiptKey(o.key, i, workers)));
  await removeKeys(cx, o.bucket, [planKey(o.key)]);
  return { uploadId: plan.uploadId ?? '(unreadable plan)', finished: whole && plan.finished !== undefined };
}

