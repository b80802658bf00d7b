/**
 * Layer upload/: the phases of one upload (options and context; begin, resume and discovery; send;
 * finish and proof; inspect; events, progress, result) and this engine, which sequences them. It
 * may import local/, s3/ and core/.
 *
 * One resumable multipart upload of a local file. The flow reads straight down: begin or resume
 * (with the verification phase), send, finish; one repair pass when Complete says the server holds
 * other bytes than it acknowledged. Each phase lives in its own module; this one only sequences
 * them and decides the two things that are about the whole run: when the upload is over (the
 * journal forgotten) and what an unknown failure becomes.
 */
import type { FileHandle } from 'node:fs/promises';
import { EventEmitter } from 'eventemitter3';
import { EngineContext, stopFollowing } from './context.ts';
import { CompleteFailedError, JournalCorruptError, JournalMismatchError, UploadNotAdoptableError, ObjectExistsError, ObjectUnverifiedError, ObjectVerificationError, PartwiseError, PausedError, S3RequestError, UnexpectedError, UploadGoneError, isNoSuchUpload, isPermanentRefusal } from '../core/errors.ts';
import type { DiscoveryReport, UploadEvents, UploadResult } from './events.ts';
import { fingerprint, fingerprintDifferences, openSource, type SourceFingerprint } from '../local/file-source.ts';
import { abortMultipart, finish } from './finish.ts';
import { presentResult, uploadResult } from './result.ts';
import { acquireLock } from '../local/lock.ts';
import { defaultStateDir, deleteJournal, journalPathFor, readIntent, readJournal, removeStaleTemps, setJournalAside, type JournalData } from '../local/journal.ts';
import { partLimiter, validateOptions, type EngineOptions } from './options.ts';
import { ProgressTracker } from './progress.ts';
import type { ReconcileReport } from '../core/reconcile.ts';
import { sendParts } from './send.ts';
import { adopt, begin, checkJournalBelongs, planFromJournal, provenAfterGone, resume, verifyAgainstServer } from './session.ts';
import type { Session } from './types.ts';
import { hasExplicitSettings } from '../core/object-settings.ts';
import { settingsNotCarried } from './read-back.ts';
import { discover, lookAtKey } from './discover.ts';
import type { PartPlan } from '../core/planner.ts';

export type { EngineOptions } from './options.ts';

export interface StatusReport {
  journalPath: string;
  /** false when no journal exists: an upload would start from scratch */
  exists: boolean;
  uploadId?: string;
  plan?: PartPlan;
  sourceChanged?: string[];
  uploadGone?: boolean;
  /** the upload is gone from the server and the object at the key is proven to be the file */
  alreadyComplete?: boolean;
  reconcile?: ReconcileReport;
  bytesLeft?: number;
  /** no journal: what discovery found and would adopt */
  discovery?: DiscoveryReport;
}

export type Outcome = { ok: true; result: UploadResult } | { ok: false; error: PartwiseError };

/**
 * The one decision of when an upload is over, so its journal is forgotten: it succeeded, the
 * server no longer has it, or it was completed into an object that is not (or cannot be proven to
 * be) the file. Every other failure keeps the journal, so running the same upload again resumes.
 */
export function uploadIsOver(outcome: Outcome): boolean {
  if (outcome.ok) return true;
  const e = outcome.error;
  return e instanceof UploadGoneError || e instanceof ObjectVerificationError || e instanceof ObjectUnverifiedError;
}

const noError = () => undefined;
/** UPLOAD_GONE as a value (the caller decides on it); any other failure goes on. */
const goneOnly = (err: unknown): UploadGoneError => {
  if (err instanceof UploadGoneError) return err;
  throw err;
};

/** Complete said the server holds other bytes than it acknowledged: worth one repair pass. */
function needsRepair(err: unknown): string | undefined {
  const code = err instanceof CompleteFailedError && err.cause instanceof S3RequestError ? err.cause.s3Code : undefined;
  return code === 'BadDigest' || code === 'InvalidPart' ? code : undefined;
}

export class Upload extends EventEmitter<UploadEvents> {
  readonly options: EngineOptions;
  private readonly stop: AbortController;
  private readonly unlinkStop: () => void;
  private readonly cx: EngineContext;
  private running: Promise<UploadResult> | undefined;
  private uploadId: string | undefined;

  constructor(options: EngineOptions) {
    super();
    validateOptions(options);
    this.options = options;
    ({ stop: this.stop, unlink: this.unlinkStop } = stopFollowing(options.signal));
    this.on('plan', (e) => (this.uploadId = e.uploadId));
    ProgressTracker.follow(this);
    this.cx = new EngineContext(options, partLimiter(options), this.stop.signal, this.emit.bind(this));
  }

  /** Runs the upload (once; later calls return the same promise). */
  done(): Promise<UploadResult> {
    this.running ??= this.run().finally(this.unlinkStop).catch((err: unknown) => {
      const e = this.typed(err);
      this.emit('error', e);
      throw e;
    });
    return this.running;
  }

  /**
   * Whatever was thrown, as a PartwiseError: a stop (whatever the signal's reason, even a string or
   * null) is PAUSED unless a typed error says more; anything untyped is UNEXPECTED.
   */
  private typed(err: unknown): PartwiseError {
    const ctx = this.cx.errorContext(this.uploadId ? { uploadId: this.uploadId } : {});
    const stopped = this.stop.signal.aborted && !(err instanceof PartwiseError && err.code !== 'S3_REQUEST_FAILED');
    return stopped ? new PausedError(ctx, err) : err instanceof PartwiseError ? err : new UnexpectedError(err, ctx);
  }

  private async locate(): Promise<{ fp: SourceFingerprint; journalPath: string; endpoint: string }> {
    const fp = await fingerprint(this.options.file);
    const endpoint = await this.options.s3.describeEndpoint();
    const journalPath = journalPathFor(this.options.stateDir ?? defaultStateDir(), { endpoint, bucket: this.options.bucket, key: this.options.key, sourcePath: fp.path });
    return { fp, journalPath, endpoint };
  }

  private async run(): Promise<UploadResult> {
    const t0 = Date.now();
    // No hashers loaded here: they are loaded where they are used (parts sent: preparePart; parts
    // verified: the hash threads; the object proven: finish), each the algorithm it needs. Loading
    // them all cost every start ~30 ms of WASM compiling for CRC64NVME, which CRC32C never uses.
    const { fp, journalPath, endpoint } = await this.locate();
    const release = await acquireLock(journalPath, this.cx.errorContext({ journalPath }));
    let fh: FileHandle | undefined;
    let outcome: Outcome;
    try {
      // Local things first: a file that cannot be read is refused before anything exists on the server.
      fh = await openSource(this.options.file);
      const existing = await this.existingJournal(journalPath);
      // From here a failure leaves this upload resumable, whatever it is (UNEXPECTED says so by its id).
      if (existing) this.uploadId = existing.uploadId;
      await removeStaleTemps(journalPath);
      if (existing && this.options.noOverwrite) await this.refuseOverwrite();
      const source = fh;
      const opened = existing ? await resume(this.cx, existing, fp, journalPath, { sendEarly: (s) => sendParts(this.cx, s, source, { phases: false }) }) : await this.adoptOrBegin(fp, journalPath, endpoint);
      if (opened.kind === 'present') {
        this.cx.emit('warning', { code: 'ALREADY_COMPLETE', message: `the object at the key is already this file (${opened.present.checks.join(', ')}); nothing sent` });
        outcome = { ok: true, result: presentResult(this.options, fp.size, opened.present, this.cx.stats, t0) };
      } else if (opened.kind === 'finished') {
        this.cx.emit('warning', { code: 'ALREADY_COMPLETE', message: `a previous run completed upload ${opened.journal.uploadId}; the object is proven to be the file: ${opened.proof.judgement.checks.join(', ')}` });
        outcome = { ok: true, result: uploadResult(opened.journal, opened.plan, opened.proof, this.cx.stats, t0, { resumed: true, alreadyComplete: true, partsSkipped: opened.plan.partCount }) };
      } else {
        outcome = { ok: true, result: await this.sendAndFinish(opened.session, fh, fp, journalPath, t0) };
      }
    } catch (err) {
      outcome = { ok: false, error: this.typed(err) };
    } finally {
      await fh?.close();
    }
    try {
      if (uploadIsOver(outcome)) await deleteJournal(journalPath);
    } finally {
      await release();
    }
    if (!outcome.ok) throw outcome.error;
    const result = outcome.result;
    this.cx.emit('phase', { phase: 'done' });
    this.cx.emit('complete', result);
    return result;
  }

  /**
   * Send what the session lacks, complete, prove. The upload may vanish while parts go up
   * (completed by another process, such as a run with another state folder that adopted it;
   * aborted; expired): then the object at the key decides. Complete saying the server holds other
   * bytes than it acknowledged earns one repair pass.
   */
  private async sendAndFinish(opened: Session, fh: FileHandle, fp: SourceFingerprint, journalPath: string, t0: number): Promise<UploadResult> {
    const gone = await sendParts(this.cx, opened, fh).then(noError, goneOnly);
    if (gone) {
      const done = await provenAfterGone(this.cx, opened.journal, opened.plan, fp, gone.cause, this.cx.errorContext({ uploadId: opened.journal.uploadId, journalPath }));
      this.cx.emit('warning', { code: 'COMPLETED_ELSEWHERE', message: `upload ${opened.journal.uploadId} was completed by another process while this run sent parts; the object is proven to be the file: ${done.proof.judgement.checks.join(', ')}` });
      return uploadResult(opened.journal, opened.plan, done.proof, this.cx.stats, t0, { resumed: opened.resumed, alreadyComplete: true, partsSkipped: opened.report?.verified.length ?? 0 });
    }
    let session = opened;
    let finished;
    try {
      finished = await finish(this.cx, session);
    } catch (err) {
      const code = needsRepair(err);
      if (!code) throw err;
      // The server holds other bytes than it acknowledged (corruption at rest, or a part replaced
      // behind our back): verify every part against it once more, resend only the bad ones, and
      // complete again. Once: a second failure is reported, not looped on.
      this.cx.emit('warning', { code: 'REPAIR', message: `Complete said ${code}: re-verifying every part on the server and resending the ones that differ` });
      const again = await resume(this.cx, session.journal, fp, journalPath, { repair: true });
      if (again.kind === 'finished') throw err; // cannot be: the upload was there a moment ago
      session = again.session;
      await sendParts(this.cx, session, fh);
      finished = await finish(this.cx, session);
    }
    return uploadResult(session.journal, session.plan, finished.proof, this.cx.stats, t0, {
      resumed: session.resumed,
      alreadyComplete: false,
      partsSkipped: opened.report?.verified.length ?? 0,
      ...(opened.report ? { reconcile: opened.report } : {}),
      ...(finished.completed?.etag ? { completedEtag: finished.completed.etag } : {}),
    });
  }

  /**
   * No journal: adopt an upload of this key proven to hold the file (when discovery is on, an upload
   * id was named, or this machine was stopped while creating one), else begin a new one.
   */
  private async adoptOrBegin(fp: SourceFingerprint, journalPath: string, endpoint: string) {
    const o = this.options;
    const intent = await readIntent(journalPath);
    const explicit = hasExplicitSettings(o);
    // --fresh means a new upload: nothing is adopted (an upload this machine was creating included).
    if (!o.fresh && (o.discover || o.uploadId || intent)) {
      const found = await discover(this.cx, fp, endpoint, { ...(o.uploadId ? { uploadId: o.uploadId } : {}), ...(intent ? { intentAt: Date.parse(intent.createdAt) } : {}) });
      if (found.adoption && !explicit) return adopt(this.cx, found.adoption, fp, journalPath);
      if (found.adoption) {
        this.cx.emit('warning', {
          code: 'NOT_ADOPTED',
          message: `upload ${found.adoption.journal.uploadId} of this key holds this file's parts, but this run asks for object settings it cannot be checked for; a new upload begins (remove the old one with: partwise abort s3://${o.bucket}/${o.key} --upload-id ${found.adoption.journal.uploadId})`,
        });
      }
      if (o.uploadId) throw new UploadNotAdoptableError(this.cx.errorContext({ uploadId: o.uploadId }), found.report.candidates[0]?.why ?? 'the server does not know it');
    }
    if ((o.discover && !o.fresh) || o.noOverwrite) {
      const look = await lookAtKey(this.cx);
      // The bytes are proven; with settings asked for, they are read back and compared too.
      if (look.present && !o.fresh && (await settingsNotCarried(this.cx, look.head, o.file)) === undefined) return { kind: 'present' as const, present: look.present };
      // Refused before anything is sent; Complete's If-None-Match covers a writer that comes later.
      if (look.exists && o.noOverwrite) throw new ObjectExistsError(this.cx.errorContext(), 'before');
    }
    return begin(this.cx, fp, journalPath, endpoint);
  }

  /**
   * noOverwrite on a resume: refused before a part is sent when the key holds an object that is not
   * proven to be this file with the settings asked for (read back where HEAD does not show them).
   * A run stopped just after its object landed is not blocked by its own object.
   */
  private async refuseOverwrite(): Promise<void> {
    const look = await lookAtKey(this.cx);
    if (look.exists && (!look.present || (await settingsNotCarried(this.cx, look.head, this.options.file)) !== undefined)) throw new ObjectExistsError(this.cx.errorContext(), 'before');
  }

  /** The journal for this file and destination, if any; `fresh` abandons it (set aside if unreadable). */
  private async existingJournal(journalPath: string): Promise<JournalData | undefined> {
    let j: JournalData | undefined;
    try {
      j = await readJournal(journalPath);
    } catch (err) {
      if (!(err instanceof JournalCorruptError) || !this.options.fresh) throw err;
      const aside = await setJournalAside(journalPath);
      this.cx.emit('warning', { code: 'JOURNAL_SET_ASIDE', message: `the unreadable journal was moved to ${aside} (kept for inspection; \`partwise ls\` shows any upload it named); starting over` });
      return undefined;
    }
    if (j && this.options.fresh) {
      await this.abandon(j, journalPath);
      return undefined;
    }
    if (j && this.options.uploadId && this.options.uploadId !== j.uploadId) {
      throw new JournalMismatchError(journalPath, `it drives upload ${j.uploadId}, not the ${this.options.uploadId} asked for`, this.cx.errorContext({ uploadId: j.uploadId }));
    }
    return j;
  }

  /** What a resume would do, changing nothing: no lock, no part sent, the journal untouched. */
  async status(): Promise<StatusReport> {
    const { fp, journalPath } = await this.locate();
    const j = await readJournal(journalPath);
    if (!j) {
      const intent = await readIntent(journalPath);
      if (!this.options.discover && !this.options.uploadId && !intent) return { journalPath, exists: false };
      const { endpoint } = await this.locate();
      const found = await discover(this.cx, fp, endpoint, { dryRun: true, ...(this.options.uploadId ? { uploadId: this.options.uploadId } : {}), ...(intent ? { intentAt: Date.parse(intent.createdAt) } : {}) });
      // As upload decides: with object settings asked for, no upload is adopted (its settings cannot be
      // read), and an object at the key counts only once its settings are read back and match.
      const explicit = hasExplicitSettings(this.options);
      const discovery: DiscoveryReport = explicit && found.adoption ? { key: found.report.key, candidates: found.report.candidates, why: 'object settings are asked for, which an upload already on the server cannot be checked for: it would not be adopted' } : found.report;
      const look = (!found.adoption || explicit) && this.options.discover ? await lookAtKey(this.cx) : undefined;
      const present = look?.present !== undefined && (await settingsNotCarried(this.cx, look.head, this.options.file)) === undefined;
      return { journalPath, exists: false, discovery, ...(present ? { alreadyComplete: true } : {}) };
    }
    checkJournalBelongs(this.options, j, journalPath);
    const plan = planFromJournal(j, fp);
    const out: StatusReport = { journalPath, exists: true, uploadId: j.uploadId, plan };
    const diffs = fingerprintDifferences(j.source, fp);
    if (diffs.length) return { ...out, sourceChanged: diffs };
    try {
      const { report } = await verifyAgainstServer(this.cx, j, plan, fp);
      return { ...out, reconcile: report, bytesLeft: report.bytesToUpload };
    } catch (err) {
      if (!isNoSuchUpload(err)) throw err;
      const finished = await provenAfterGone(this.cx, j, plan, fp, err, this.cx.errorContext({ uploadId: j.uploadId, journalPath })).catch(goneOnly);
      return { ...out, uploadGone: true, alreadyComplete: !(finished instanceof UploadGoneError) };
    }
  }

  /** AbortMultipartUpload (tolerating one already gone) and the journal removed. */
  private async abandon(j: JournalData, journalPath: string): Promise<void> {
    try {
      await abortMultipart(this.cx, j);
    } catch (err) {
      // A server without Abort (s3rver) would make --fresh a dead end; the upload is said to stay.
      if (!this.options.fresh || !isPermanentRefusal(err)) throw err;
      this.cx.emit('warning', { code: 'ABORT_FAILED', message: `upload ${j.uploadId} could not be aborted (${(err as Error).message}); it stays on the server until the server's own expiry or an operator removes it; starting a new upload` });
    }
    await deleteJournal(journalPath);
  }

  /**
   * Gives the upload up for good: AbortMultipartUpload on the server (the parts stop costing
   * storage) and the journal removed. Returns the uploadId that was aborted, if any.
   */
  async abort(): Promise<string | undefined> {
    const { journalPath } = await this.locate();
    const release = await acquireLock(journalPath, this.cx.errorContext({ journalPath }));
    try {
      const j = await readJournal(journalPath);
      if (!j) return undefined;
      await this.abandon(j, journalPath);
      return j.uploadId;
    } finally {
      await release();
    }
  }
}

