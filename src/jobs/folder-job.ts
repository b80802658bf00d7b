/**
 * Layer jobs/: what drives many uploads: a folder job (this file, and folder-outcomes.ts: what it
 * takes and reports), a stream, one object from many workers (shared-upload.ts). It may import
 * upload/ and the layers below it.
 *
 * A folder (or a list of files) as one resumable job. Straight down: list the files, read the job
 * journal, then for each file (under one concurrency budget for parts and files alike): confirm a
 * finished one by the checksum the server stored, or send it: a small file as one PutObject with
 * its checksum, a larger one through the single-file engine (resumable part by part). A failed
 * file does not stop the others unless failFast.
 *
 * The walk and its rules (keys, names as bytes, what is not read, exclusions): local/folder-walk.ts.
 * Every entry it meets ends in exactly one outcome, counted in the summary (JobSummary).
 */
import { availableParallelism } from 'node:os';
import { lstat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { EventEmitter } from 'eventemitter3';
import pLimit, { type LimitFunction } from 'p-limit';
import { etagsAreMd5, stripQuotes } from '../core/checksums.ts';
import { EngineContext, stopFollowing } from '../upload/context.ts';
import { Throttle } from '../core/throttle.ts';
import { Upload } from '../upload/engine.ts';
import { InvalidKeyError, InvalidOptionsError, ObjectExistsError, PartwiseError, S3RequestError, causedByStop, SourceChangedError, SourceUnreadableError, UnverifiableError } from '../core/errors.ts';
import type { UploadEvents, UploadResult } from '../upload/events.ts';
import { fingerprint, openSource, preparePart, type PreparedPart, type SourceFingerprint } from '../local/file-source.ts';
import { listFolder, type FolderListing, type JobEntry } from '../local/folder-walk.ts';
import { shardOf } from '../core/shared-plan.ts';
import type { VerificationLevel } from '../core/verify-object.ts';
import { poolFor } from '../local/buffer-pool.ts';
import { globMatcher } from '../core/glob.ts';
import { JobJournal, jobJournalPath, readJobState, type DoneRecord, type JobState, type StartedRecord } from '../local/job-journal.ts';
import { defaultStateDir, journalPathFor, readJournal } from '../local/journal.ts';
import { acquireLock } from '../local/lock.ts';
import { abortUploads } from '../upload/inspect.ts';
import { objectSettings } from '../core/object-settings.ts';
import { settingsNotCarried } from '../upload/read-back.ts';
import { DEFAULT_STREAM_PARTS_ABOVE, loadSendHashers, partLimiter, requestOptions, sendAlgorithm, validateOptions } from '../upload/options.ts';
import { mayDropChecksum, refusedChecksum } from '../upload/session.ts';
import { DEFAULT_PART_SIZE } from '../core/planner.ts';
import { RateLimiter } from '../core/rate-limit.ts';

export { listFolder, type JobEntry } from '../local/folder-walk.ts';
export { failsEveryFile, type FileOutcome, type FileStatus, type FolderJobOptions, type JobEvents, type JobProgress, type JobSummary } from './folder-outcomes.ts';
import { failedOutcome, failsEveryFile, refuseBadEntries, settingsKey, type FileOutcome, type FileStatus, type FolderJobOptions, type JobEvents, type JobProgress, type JobSummary } from './folder-outcomes.ts';

/** What sending one file came to: `sent` false when nothing had to go (it was there already). */
interface Sent {
  etag: string;
  checksum?: string;
  algorithm?: string;
  sent: boolean;
  bytesSent: number;
  how: string;
  level: VerificationLevel;
}

/** The level a recorded value proves: a checksum or ETag with "-N" is of parts, a plain one of the whole object. */
const levelOf = (value: string, by: 'checksum' | 'etag'): VerificationLevel => (/-\d+$/.test(value) ? (by === 'checksum' ? 'composite-checksum' : 'multipart-etag') : by === 'checksum' ? 'full-object-checksum' : 'object-md5');

interface Planned extends JobEntry {
  fp: SourceFingerprint;
}

export class FolderJob extends EventEmitter<JobEvents> {
  private readonly stop: AbortController;
  private readonly unlinkStop: () => void;
  private readonly limiter: LimitFunction;
  private readonly rate: RateLimiter | undefined;
  private running: Promise<JobSummary> | undefined;
  /** learned from the first answer: the server checks and echoes checksums, so MD5 is not needed */
  private serverChecksums = false;
  /** the server refused an additional checksum the user never chose (B2): the job's small files go without */
  private checksumsRefused = false;

  private refuseChecksums(err: S3RequestError): void {
    if (this.checksumsRefused) return;
    this.checksumsRefused = true;
    this.emit('warning', { code: 'CHECKSUM_REFUSED', message: `the server refuses additional checksums (${err.serverMessage ?? err.s3Code}); files go without one: the MD5 the server checks and its MD5 ETag are the evidence (--checksum none says this up front)` });
  }
  private hashWorkers = 1;
  private endpoint = '';
  private progress: JobProgress = { files: 0, filesDone: 0, bytesTotal: 0, bytesDone: 0, bytesSent: 0 };

  constructor(readonly options: FolderJobOptions) {
    super();
    if (!options.entries && !options.dir) throw new PartwiseError('INVALID_OPTIONS', 'a folder job needs dir or entries');
    validateOptions({ ...options, file: '-', key: '-' });
    globMatcher(options.exclude ?? []); // a bad pattern is refused here, before anything is listed or sent
    if (options.entries) refuseBadEntries(options.entries);
    const shard = options.shard;
    if (shard && !(Number.isSafeInteger(shard.count) && shard.count >= 1 && Number.isSafeInteger(shard.index) && shard.index >= 0 && shard.index < shard.count)) {
      throw new InvalidOptionsError(`shard must be { index, count } with 0 ≤ index < count; got ${JSON.stringify(shard)}`);
    }
    this.limiter = partLimiter(options);
    this.rate = options.rateLimiter ?? (options.maxBytesPerSecond !== undefined ? new RateLimiter(options.maxBytesPerSecond) : undefined);
    ({ stop: this.stop, unlink: this.unlinkStop } = stopFollowing(options.signal));
  }

  done(): Promise<JobSummary> {
    this.running ??= this.run().finally(this.unlinkStop);
    return this.running;
  }

  private async run(): Promise<JobSummary> {
    const t0 = Date.now();
    const o = this.options;
    // What small files are hashed with (multipart files' uploads load their own): nothing else.
    await loadSendHashers(sendAlgorithm(o));
    const endpoint = await o.s3.describeEndpoint();
    const stateDir = o.stateDir ?? defaultStateDir();
    const whole = o.jobId !== undefined ? `job:${o.jobId}` : o.entries ? JSON.stringify(o.entries.map((e) => [resolve(e.file), e.key])) : resolve(o.dir!);
    const shard = o.shard;
    const source = shard ? `${whole}#shard ${shard.index}/${shard.count}` : whole;
    const journalPath = jobJournalPath(stateDir, { endpoint, bucket: o.bucket, prefix: o.prefix ?? '', source });
    // One run of a job at a time (cron firing again while a long backup still runs): the second
    // stops here, before it lists the folder, reads the journal or sends anything. A dead
    // holder's lock is taken over.
    // A shard is scheduler work, which may run twice at once (a requeued task racing the original):
    // the second copy waits for the first, then finds its work done, instead of failing the task.
    const wait = shard
      ? { signal: this.stop.signal, onWait: (h: { pid: number; host: string }) => this.emit('warning', { code: 'SHARD_WAITING', message: `shard ${shard.index}/${shard.count} is being run by another partwise (pid ${h.pid} on ${h.host}; a requeued task racing the original?): waiting for it to finish, then checking its work` }) }
      : undefined;
    const release = await acquireLock(journalPath, { bucket: o.bucket, journalPath }, 'folder job', wait);
    let unfollowLevel: (() => void) | undefined;
    try {
      const given = o.entries && shard ? o.entries.filter((e) => shardOf(e.key, shard.count) === shard.index) : o.entries;
      const listed: FolderListing = given ? { entries: given, notRead: [], invalid: [], unreadable: [], excluded: 0, met: given.length } : await listFolder(o.dir!, o.prefix ?? '', o.exclude ?? [], shard ? { shard } : {});
      const where = (path: string) => (o.dir !== undefined ? `${resolve(o.dir)}/${path}` : path);
      // Each its own outcome, said as it is met: a name S3 cannot take, what the walk could not read,
      // and a listed file that vanished or cannot be looked at since.
      const early: FileOutcome[] = [
        ...listed.invalid.map((x) => failedOutcome({ file: where(x.path), key: x.key, size: 0 }, new InvalidKeyError(where(x.path), x.why), 'refused: its name cannot be a key', 0)),
        ...listed.unreadable.map((x) => this.notReadOutcome({ file: where(x.path), key: x.key, size: 0 }, new SourceUnreadableError(where(x.path), x.cause))),
      ];
      const planned: Planned[] = [];
      for (const e of listed.entries) {
        try {
          planned.push({ ...e, fp: await fingerprint(e.file) });
        } catch (err) {
          early.push(this.notReadOutcome({ file: e.file, key: e.key, size: 0 }, err instanceof PartwiseError ? err : new SourceUnreadableError(e.file, err)));
        }
      }
      const state = await readJobState(journalPath);
      const journal = new JobJournal(journalPath);
      // Writable before anything is sent: a job that cannot record its files would send them every run.
      await journal.open();
      this.endpoint = endpoint;
      const settled = await this.settleOrphans(state, new Set(planned.map((p) => p.key)), journal, stateDir);
      this.progress = { files: planned.length, filesDone: 0, bytesTotal: planned.reduce((a, p) => a + p.fp.size, 0), bytesDone: 0, bytesSent: 0 };
      this.emit('job-plan', { files: planned.length, bytesTotal: this.progress.bytesTotal, notRead: listed.notRead, journalPath });
      const outcomes: FileOutcome[] = [...early];
      for (const u of [...settled, ...early]) this.emit('file-done', u);
      // Files start as budget allows: a file waits for a slot to start; its parts share the same limiter.
      const fileSlots = pLimit(Math.max(1, this.limiter.concurrency));
      // Files in flight follow the parts' level (searched, or lowered by a SlowDown); each change is told.
      unfollowLevel = Throttle.for(this.limiter).follow((e) => {
        fileSlots.concurrency = Math.max(1, e.concurrency);
        this.emit('concurrency', e);
      });
      // Verification workers: the machine's cores shared by the files verifying at once.
      this.hashWorkers = o.hashWorkers ?? Math.max(1, Math.floor(availableParallelism() / fileSlots.concurrency));
      let stopStarting = [...settled, ...early].some((x) => x.status === 'failed') && o.failFast === true;
      // Files a failure kept from starting are failed, even if a stop comes after: a rerun meets the same failure.
      let failureStopped = stopStarting;
      let listenerFailed: { error: unknown } | undefined;
      await Promise.all(
        planned.map((p) =>
          fileSlots(async () => {
            if (this.stop.signal.aborted || stopStarting) return;
            const outcome = await this.oneFile(p, state, journal, stateDir);
            outcomes.push(outcome);
            this.progress.filesDone++;
            const everyFile = !stopStarting && outcome.status === 'failed' && failsEveryFile(outcome.error);
            if (everyFile) stopStarting = failureStopped = true;
            try {
              this.emit('file-done', outcome);
              this.emit('job-progress', { ...this.progress });
              if (everyFile) this.emit('warning', { code: 'JOB_STOPPED', file: p.file, message: `${outcome.error!.s3Code} would fail every file the same way: no more files are started (those in flight finish); fix it and run the same command again` });
            } catch (error) {
              // A caller's listener threw: no new file starts, and the job fails only once the files
              // in flight have finished, so the lock is never let go under a running upload.
              listenerFailed ??= { error };
              stopStarting = true;
            }
            if (outcome.status === 'failed' && o.failFast) stopStarting = failureStopped = true;
            // The state folder cannot be written: every file sent from here on would go unrecorded.
            if (outcome.error?.code === 'STATE_UNWRITABLE') stopStarting = failureStopped = true;
          }),
        ),
      );
      if (listenerFailed) throw listenerFailed.error;
      // Files never started have an outcome too: left for the next run after a stop, failed after a
      // failure that stopped the job (a rerun meets it again).
      const leftForNextRun = this.stop.signal.aborted && !failureStopped;
      const seen = new Set(outcomes.map((x) => x.key));
      for (const p of planned) {
        if (seen.has(p.key)) continue;
        const base = { file: p.file, key: p.key, size: p.fp.size, bytesSent: 0, notStarted: true as const };
        outcomes.push(leftForNextRun ? { ...base, status: 'interrupted', how: 'not started: the job was stopped; the same command sends it' } : { ...base, status: 'failed', how: 'not started: an earlier failure stopped the job starting files' });
      }
      // A list keeps its order; a folder's outcomes read in key order.
      const order = new Map((o.entries ?? []).map((e, i) => [e.key, i]));
      outcomes.sort(o.entries ? (a, b) => order.get(a.key)! - order.get(b.key)! : (a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      // Uploads of files gone since an interrupted run come first: units of the job, not of the walk.
      const all = [...settled, ...outcomes];
      const count = (s: FileStatus) => all.filter((x) => x.status === s).length;
      return {
        entries: listed.met + settled.length,
        files: listed.entries.length,
        bytesTotal: this.progress.bytesTotal,
        uploaded: count('uploaded'),
        skipped: count('skipped'),
        failed: count('failed'),
        interrupted: count('interrupted'),
        unreadable: count('unreadable'),
        excluded: listed.excluded,
        notRegular: listed.notRead.length,
        abandoned: count('abandoned'),
        bytesSent: outcomes.reduce((a, x) => a + x.bytesSent, 0),
        outcomes: all,
        notRead: listed.notRead,
        journalPath,
        durationMs: Date.now() - t0,
      };
    } finally {
      unfollowLevel?.();
      await release();
    }
  }

  /** One file: confirmed as done, or sent; never throws (a failure is its outcome). */
  private async oneFile(p: Planned, state: JobState, journal: JobJournal, stateDir: string): Promise<FileOutcome> {
    const rec = state.done.get(p.key);
    const base = { file: p.file, key: p.key, size: p.fp.size };
    // Parts the server acknowledged for this file: what it sent even when it then stops or fails.
    const acked = { bytes: 0 };
    try {
      const confirmed = rec && (await this.confirmed(p, rec, journal));
      if (confirmed) {
        this.progress.bytesDone += p.fp.size;
        return { ...base, status: 'skipped', how: confirmed.how, verificationLevel: confirmed.level, bytesSent: 0 };
      }
      const partSize = this.options.partSize ?? DEFAULT_PART_SIZE;
      const multipart = p.fp.size >= partSize;
      this.emit('file-start', { ...base, multipart });
      if (multipart && !state.started.has(p.key)) {
        // Before the upload exists: a run that no longer finds the file knows where its upload is recorded.
        await journal.append({ kind: 'started', key: p.key, file: p.file, journalPath: journalPathFor(stateDir, { endpoint: this.endpoint, bucket: this.options.bucket, key: p.key, sourcePath: p.fp.path }) });
      }
      // Sent before with other settings: the object gets the ones asked now, large or small (a
      // multipart file starts a new upload rather than take the old object or upload as done).
      const settingsChanged = rec !== undefined && rec.settings !== settingsKey(this.options, p.file);
      const started = state.started.get(p.key);
      if (!multipart && started) {
        // Now below the part size (truncated, or a larger part size asked): the multipart upload an
        // interrupted run began for it would be left open and forgotten once this PUT is recorded.
        const id = await this.dropStarted(started, journal, stateDir);
        if (id) this.emit('warning', { file: p.file, code: 'FILE_CHANGED', message: `${p.file} now goes up in one request: its multipart upload ${id} from an interrupted run was aborted` });
      }
      const r = multipart ? await this.multipart(p, stateDir, acked, settingsChanged) : await this.single(p, acked);
      try {
        await journal.append(this.doneRecord(p, r));
      } catch (err) {
        // On the server and proven, but a rerun cannot know it: failed, with what was really sent.
        return failedOutcome(base, err, 'sent and verified, but not recorded in the job journal', r.bytesSent);
      }
      if (!r.sent) return { ...base, status: 'skipped', how: r.how, verificationLevel: r.level, bytesSent: 0 };
      return { ...base, status: 'uploaded', how: r.how, verificationLevel: r.level, bytesSent: r.bytesSent };
    } catch (err) {
      // A stop is no failure of the file's: the next run picks it up where its journal says.
      if (this.stop.signal.aborted && causedByStop(err)) return { ...failedOutcome(base, err, 'stopped: the same command resumes it', acked.bytes), status: 'interrupted' };
      return this.notReadOutcome(base, err, acked.bytes);
    }
  }

  /**
   * Multipart uploads a run began for files this run does not send. A file deleted since (log
   * rotation) leaves an upload nobody would finish: it is aborted with its journal, and counted.
   * One that still exists (excluded now, or left out of a list) is left alone, with the command.
   */
  private async settleOrphans(state: JobState, planned: Set<string>, journal: JobJournal, stateDir: string): Promise<FileOutcome[]> {
    const out: FileOutcome[] = [];
    for (const s of state.started.values()) {
      if (planned.has(s.key)) continue;
      const base = { file: s.file, key: s.key, size: 0, bytesSent: 0 };
      // Gone for certain only on ENOENT/ENOTDIR; a file that cannot be looked at (EACCES) may be there.
      const gone = await lstat(s.file).then(
        () => false,
        (err: NodeJS.ErrnoException) => err.code === 'ENOENT' || err.code === 'ENOTDIR',
      );
      if (!gone) {
        const j = await readJournal(s.journalPath).catch(() => undefined);
        if (j) this.emit('warning', { file: s.file, code: 'UPLOAD_LEFT', message: `${s.file} is not part of this run, and its upload ${j.uploadId} from an interrupted run is still open; remove it with: partwise abort s3://${j.bucket}/${j.key} --upload-id ${j.uploadId}` });
        continue;
      }
      try {
        const id = await this.dropStarted(s, journal, stateDir);
        if (id) out.push({ ...base, status: 'abandoned', how: `deleted since an interrupted run: its upload ${id} was aborted and its journal removed` });
      } catch (err) {
        out.push(failedOutcome(base, err, 'deleted since an interrupted run, and its upload could not be aborted (it stays open; the next run tries again)', 0));
      }
    }
    return out;
  }

  /**
   * Aborts the multipart upload a 'started' record announced (if its journal still names one),
   * removes its journal, and records that it is settled. Returns the upload id aborted.
   */
  private async dropStarted(s: StartedRecord, journal: JobJournal, stateDir: string): Promise<string | undefined> {
    const j = await readJournal(s.journalPath).catch(() => undefined);
    if (j) await abortUploads(this.options.s3, j.bucket, [{ key: j.key, uploadId: j.uploadId }], stateDir, requestOptions(this.options));
    await journal.append({ kind: 'dropped', key: s.key });
    return j?.uploadId;
  }

  /** A failure, unless the entry could not be read and skipUnreadable asked to list such entries instead. */
  private notReadOutcome(base: Pick<FileOutcome, 'file' | 'key' | 'size'>, err: unknown, bytesSent = 0): FileOutcome {
    const failed = failedOutcome(base, err, 'failed', bytesSent);
    if (!this.options.skipUnreadable || failed.error?.code !== 'SOURCE_UNREADABLE') return failed;
    return { ...failed, status: 'unreadable', how: 'not read, and skipped as asked (skipUnreadable)' };
  }

  /** Done before, unchanged here, and the server still holds the object it stored then. */
  /** What the job journal records of a file the server holds and proved. */
  private doneRecord(p: Planned, r: Sent): DoneRecord {
    const until = this.options.objectLockRetainUntil?.toISOString();
    return { key: p.key, file: p.file, size: p.fp.size, mtimeMs: p.fp.mtimeMs, ctimeMs: p.fp.ctimeMs, etag: r.etag, ...(r.checksum ? { checksum: r.checksum, algorithm: r.algorithm } : {}), settings: settingsKey(this.options, p.file), ...(until ? { retainUntil: until } : {}) };
  }

  /**
   * Done before, unchanged here, and the server still holds the object it stored then: how it was
   * confirmed, in words; undefined when it must be sent again. A later Object Lock date than the
   * one recorded (a rolling "today + 30 days") extends the object's retention in place: the same
   * object, locked longer, not a new copy of it.
   */
  private async confirmed(p: Planned, rec: DoneRecord, journal: JobJournal): Promise<{ how: string; level: VerificationLevel } | undefined> {
    if (rec.file !== p.file || rec.size !== p.fp.size || rec.mtimeMs !== p.fp.mtimeMs || rec.ctimeMs !== p.fp.ctimeMs) return undefined;
    // Sent with other object settings than this run asks for: sent again, with these.
    if (rec.settings !== settingsKey(this.options, p.file)) return undefined;
    const cx = this.context(p);
    const head = await cx.retry(() => cx.s3.headObject({ bucket: this.options.bucket, key: p.key }, cx.req, cx.signal)).catch(() => undefined);
    if (!head || head.size !== p.fp.size) return undefined;
    // The stored checksum is the evidence; an ETag only where no checksum was recorded.
    const byChecksum = rec.checksum !== undefined && rec.algorithm !== undefined;
    const proven = byChecksum ? head.checksums[rec.algorithm as keyof typeof head.checksums] === rec.checksum : stripQuotes(head.etag) === stripQuotes(rec.etag) && rec.etag !== '';
    if (!proven) return undefined;
    const level = byChecksum ? levelOf(rec.checksum!, 'checksum') : levelOf(stripQuotes(rec.etag), 'etag');
    const how = `already uploaded: ${byChecksum ? `the object's ${rec.algorithm} ${rec.checksum}` : `its ETag ${stripQuotes(rec.etag)}`} is the one recorded when it was sent, and the file is unchanged`;
    const o = this.options;
    const until = o.objectLockRetainUntil;
    if (!until || !o.objectLockMode || (rec.retainUntil !== undefined && Date.parse(rec.retainUntil) >= until.getTime())) return { how, level };
    const s3 = cx.s3;
    if (!s3.putObjectRetention) return undefined; // cannot extend it here: sent again with the new date
    await cx.retry(() => s3.putObjectRetention!({ bucket: o.bucket, key: p.key, mode: o.objectLockMode!, retainUntil: until }, cx.req, cx.signal));
    await journal.append({ ...rec, retainUntil: until.toISOString() });
    return { how: `${how}; its Object Lock retention extended to ${until.toISOString()}`, level };
  }

  private context(p: JobEntry): EngineContext {
    const emit = ((event: keyof UploadEvents, data: unknown) => {
      if (event === 'warning') this.emit('warning', { file: p.file, ...(data as { code: string; message: string }) });
      return true;
    }) as unknown as EngineContext['emit'];
    return new EngineContext({ ...this.options, file: p.file, key: p.key, ...(this.rate ? { rateLimiter: this.rate } : {}) }, this.limiter, this.stop.signal, emit);
  }

  /**
   * A small file: one PutObject with Content-MD5 and the checksum, proven by the server's answer.
   * Read as a part is: held in a pooled buffer up to streamPartsAbove, above it hashed in one pass
   * and streamed from the file in a second (the server checks the bytes against the digests sent),
   * so memory does not grow with the part size and a file over 2 GiB is never read whole.
   */
  private async single(p: Planned, acked: { bytes: number }): Promise<Sent> {
    const o = this.options;
    const cx = this.context(p);
    let alg = this.checksumsRefused ? null : sendAlgorithm(cx.o);
    const ctx = cx.errorContext();
    return this.limiter(async () => {
      const fh = await openSource(p.file);
      const streamAbove = o.streamPartsAbove ?? DEFAULT_STREAM_PARTS_ABOVE;
      const pool = poolFor(this.limiter);
      let prepared: PreparedPart | undefined;
      // A file over streamPartsAbove is read through an arena, given back only after a request that succeeded.
      let arenaFree = false;
      try {
        // Cheapest sufficient evidence, as for parts: MD5 only until the server has echoed a checksum.
        const md5 = !alg || !this.serverChecksums;
        try {
          prepared = await preparePart(fh, { partNumber: 1, offset: 0, size: p.fp.size }, alg, streamAbove, { alloc: (n) => pool.take(n, Math.min(o.partSize ?? DEFAULT_PART_SIZE, streamAbove)), md5, arena: (n) => pool.take(n) });
        } catch (err) {
          await this.assertUnchanged(p, ctx);
          throw err instanceof PartwiseError ? err : new SourceUnreadableError(p.file, err);
        }
        await this.assertUnchanged(p, ctx);
        const body = prepared.body;
        const d = prepared.digest;
        let checksum = alg && d.checksum ? d.checksum.toString('base64') : undefined;
        // Requests that read the body: only the first reads into the arena (file-source.ts), so only
        // after a success with exactly one may it go back to the pool.
        let requests = 0;
        const put = () =>
          cx.retry(() => {
            requests++;
            return cx.s3.putObject(
              {
                bucket: o.bucket,
                key: p.key,
                body,
                ...(d.md5Hex ? { contentMd5: Buffer.from(d.md5Hex, 'hex').toString('base64') } : {}),
                ...(alg && checksum ? { checksum: { algorithm: alg, value: checksum } } : {}),
                settings: objectSettings(o, p.file),
                ...(o.noOverwrite ? { ifNoneMatch: true } : {}),
                ...(cx.pace ? { pace: cx.pace } : {}),
                onBytesSent: (n: number) => cx.throttle.sent(n),
              },
              cx.req,
              cx.signal,
            );
          });
        let r;
        try {
          try {
            r = await put();
          } catch (err) {
            // Backblaze B2 refuses every x-amz-checksum-* header: the checksum the user never chose is
            // dropped for this job, and the Content-MD5 the server checks and its MD5 ETag are the evidence.
            if (!(alg && d.md5Hex && mayDropChecksum(o) && refusedChecksum(err))) throw err;
            this.refuseChecksums(err);
            alg = null;
            checksum = undefined;
            r = await put();
          }
        } catch (err) {
          if (!(o.noOverwrite && err instanceof S3RequestError && err.httpStatus === 412)) throw err;
          // Refused by If-None-Match: fine only if what is there is this file with these settings (a run
          // stopped before its journal line): the checksum or the MD5 ETag, and the settings read back.
          const head = await cx.retry(() => cx.s3.headObject({ bucket: o.bucket, key: p.key }, cx.req, cx.signal)).catch(() => undefined);
          const byChecksum = alg !== null && checksum !== undefined && head?.checksums[alg] === checksum;
          const byMd5 = head !== undefined && d.md5Hex !== undefined && etagsAreMd5(head) && stripQuotes(head.etag).toLowerCase() === d.md5Hex;
          if (head?.size === p.fp.size && (byChecksum || byMd5) && (await settingsNotCarried(cx, head, p.file)) === undefined) {
            return { etag: stripQuotes(head.etag), ...(byChecksum ? { checksum: checksum!, algorithm: alg! } : {}), sent: false, bytesSent: 0, how: `already there: ${byChecksum ? `${alg} ${checksum}` : `MD5 ETag ${d.md5Hex}`} matches, with the settings asked for`, level: byChecksum ? 'full-object-checksum' : 'object-md5' };
          }
          throw new ObjectExistsError(ctx, 'before', err);
        }
        arenaFree = requests === 1;
        // A streamed file was read twice (hashed, then sent): it must still be what was hashed,
        // whatever the server checked, or the object may hold bytes the digests do not describe.
        if (prepared.arena) await this.assertUnchanged(p, ctx);
        // A small body is counted when the server has it.
        this.progress.bytesSent += body.length;
        this.progress.bytesDone += body.length;
        acked.bytes += body.length;
        // The evidence: the server's checksum of what it stored, or (no checksum) an MD5 ETag.
        if (checksum && r.checksum !== undefined) {
          if (r.checksum !== checksum) throw new UnverifiableError(ctx, `the server stored checksum ${r.checksum}, not the ${checksum} sent`);
          this.serverChecksums = true;
          return { etag: stripQuotes(r.etag), checksum, algorithm: alg!, sent: true, bytesSent: body.length, how: `PutObject, ${alg} ${checksum} confirmed by the server`, level: 'full-object-checksum' };
        }
        if (d.md5Hex && etagsAreMd5({ serverSideEncryption: r.serverSideEncryption, sseCustomerAlgorithm: r.sseCustomerAlgorithm, etag: r.etag }) && stripQuotes(r.etag).toLowerCase() === d.md5Hex) {
          return { etag: stripQuotes(r.etag), sent: true, bytesSent: body.length, how: 'PutObject, MD5 ETag confirmed', level: 'object-md5' };
        }
        throw new UnverifiableError(ctx, `the server answered neither a checksum nor an MD5 ETag for ${p.key} (ETag ${r.etag})`);
      } finally {
        await fh.close();
        // No request holds the buffer any more: the next file or part may read into it.
        if (prepared && Buffer.isBuffer(prepared.body)) pool.give(prepared.body);
        if (prepared?.arena && arenaFree) pool.give(prepared.arena);
      }
    });
  }

  /** The file still is what the job listed: a change while the job ran is that file's failure (sent again next run). */
  private async assertUnchanged(p: Planned, ctx: ReturnType<EngineContext['errorContext']>): Promise<void> {
    const now = await fingerprint(p.file);
    if (now.size !== p.fp.size || now.mtimeMs !== p.fp.mtimeMs || now.ctimeMs !== p.fp.ctimeMs) throw new SourceChangedError(p.file, ['it changed while the job ran'], ctx);
  }

  /** A file of a part size or more: the single-file engine, sharing the budget, its own journal. */
  private async multipart(p: Planned, stateDir: string, acked: { bytes: number }, settingsChanged: boolean): Promise<Sent> {
    try {
      return await this.multipartOnce(p, stateDir, settingsChanged, acked);
    } catch (err) {
      // Changed since an interrupted run, or asked now with other settings: that upload holds other
      // bytes or will make another object; it is aborted and the file starts over.
      const why = err instanceof PartwiseError ? { SOURCE_CHANGED: 'changed', SETTINGS_DIFFER: 'is asked for with other object settings' }[err.code as string] : undefined;
      if (!why || this.stop.signal.aborted) throw err;
      this.emit('warning', { file: p.file, code: 'FILE_CHANGED', message: `${p.file} ${why} since an interrupted run: its old upload is aborted and the file sent again` });
      // What the first attempt got acknowledged was sent too, whatever became of it.
      const before = acked.bytes;
      const r = await this.multipartOnce(p, stateDir, true, acked);
      return { ...r, bytesSent: r.bytesSent + before };
    }
  }

  private async multipartOnce(p: Planned, stateDir: string, fresh: boolean, acked: { bytes: number }): Promise<Sent> {
    const o = this.options;
    const up = new Upload({ ...o, file: p.file, key: p.key, limiter: this.limiter, stateDir, discover: o.discover ?? true, signal: this.stop.signal, hashWorkers: this.hashWorkers, ...(fresh ? { fresh: true } : {}), ...(this.rate ? { rateLimiter: this.rate } : {}) });
    let counted = 0;
    // Not 'concurrency': the level is the job's (one limiter), told once by the job itself.
    for (const event of ['plan', 'reconcile', 'part-done', 'part-retry', 'part-skip', 'complete'] as const) {
      up.on(event, (data: unknown) => this.emit('file-event', { file: p.file, key: p.key, event, data }));
    }
    // Once, as the job's warning naming the file (not also as a file event).
    up.on('warning', (w) => this.emit('warning', { file: p.file, ...w }));
    const count = (n: number) => {
      counted += n;
      this.progress.bytesDone += n;
    };
    up.on('part-done', (e) => {
      count(e.size);
      acked.bytes += e.size;
      this.emit('job-progress', { ...this.progress });
    });
    up.on('part-skip', (e) => count(e.size));
    up.on('part-sent', (e) => (this.progress.bytesSent += e.bytes));
    const r: UploadResult = await up.done();
    // Bytes not counted part by part (an object already there, a finished run) count now.
    count(Math.max(0, p.fp.size - counted));
    return {
      etag: r.etag,
      ...(r.checksum && r.checksumAlgorithm ? { checksum: r.checksum, algorithm: r.checksumAlgorithm } : {}),
      // Sent unless it was all there already (a finished run, or the object at the key): this run completed it.
      sent: !r.alreadyComplete,
      bytesSent: r.bytesSent,
      how: r.alreadyComplete ? 'already complete on the server (proven)' : r.resumed ? `resumed: ${r.partsSkipped} parts verified on the server, ${r.partsUploaded} sent` : `multipart, ${r.partCount} parts, ${r.verification.level}`,
      level: r.verification.level,
    };
  }
}
