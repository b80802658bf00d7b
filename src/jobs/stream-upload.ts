/**
 * Uploading a stream (standard input, a pipe from tar or a database dump): read once, in parts of a
 * planned size, each hashed and sent with its checksum and checked against the server's echo, then
 * Complete with the whole-object checksum and the object proven, as for a file.
 *
 * A stream cannot be read again, so it cannot be resumed: there is no journal, and on any failure
 * (or a stop) the multipart upload is aborted, so no orphan is left. Memory is bounded by design:
 * the reader takes a part buffer from a pool of `concurrency` before it reads, so it never runs
 * more than `concurrency` parts ahead of the server's acknowledgements.
 */
import { EventEmitter } from 'eventemitter3';
import { checksumTypeFor, stripQuotes } from '../core/checksums.ts';
import { EngineContext, stopFollowing } from '../upload/context.ts';
import { ObjectExistsError, PartFailedError, PartwiseError, PausedError, causedByStop, S3RequestError, SourceUnreadableError, StreamFailedError, StreamSizeMismatchError, StreamTooLargeError, isNoSuchUpload, type StreamUploadFate } from '../core/errors.ts';
import type { UploadEvents, UploadResult } from '../upload/events.ts';
import { finish } from '../upload/finish.ts';
import { digestBuffer, type LocalDigest } from '../core/hashing.ts';
import type { JournalData } from '../local/journal.ts';
import { lookAtKey } from '../upload/discover.ts';
import { objectSettings } from '../core/object-settings.ts';
import { loadSendHashers, partLimiter, planFor, sendAlgorithm, validateOptions, type EngineOptions } from '../upload/options.ts';
import { S3_MAX_PARTS, type PartPlan } from '../core/planner.ts';
import { ProgressTracker } from '../upload/progress.ts';
import { uploadResult } from '../upload/result.ts';
import { checkAnswer } from '../upload/send.ts';
import { createChoosingChecksum, newJournal } from '../upload/session.ts';
import type { Session } from '../upload/types.ts';

export interface StreamUploadOptions extends Omit<EngineOptions, 'file' | 'fresh' | 'discover' | 'uploadId' | 'stateDir' | 'hashWorkers' | 'streamPartsAbove'> {
  /** the bytes: any async iterable of chunks (process.stdin, a Readable, a generator) */
  source: AsyncIterable<Uint8Array>;
  /**
   * The stream's exact size: the part size is planned for it, and a stream of any other length
   * (a producer that died after 1 MB of a 20 GiB dump) fails, its upload aborted, instead of
   * replacing the object at the key.
   */
  expectedSize?: number;
  /**
   * An upper bound on the stream's size, for planning only: the part size is raised so it fits
   * 10,000 parts, and a shorter stream is fine. Without either, a stream longer than 10,000 × part
   * size fails when it gets there.
   */
  maxSize?: number;
}

export class StreamUpload extends EventEmitter<UploadEvents> {
  private readonly stop: AbortController;
  private readonly unlinkStop: () => void;
  private readonly cx: EngineContext;
  private running: Promise<UploadResult> | undefined;

  constructor(readonly options: StreamUploadOptions) {
    super();
    const eo: EngineOptions = { ...options, file: '-' };
    validateOptions(eo);
    for (const name of ['expectedSize', 'maxSize'] as const) {
      const v = options[name];
      if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) throw new PartwiseError('INVALID_OPTIONS', `${name} must be a whole number of bytes; got ${v}`);
    }
    if (options.expectedSize !== undefined && options.maxSize !== undefined) throw new PartwiseError('INVALID_OPTIONS', 'give expectedSize (the exact size) or maxSize (an upper bound), not both');
    ({ stop: this.stop, unlink: this.unlinkStop } = stopFollowing(options.signal));
    ProgressTracker.follow(this);
    // A stream's parts are held in memory (it cannot be read twice): its level is not searched.
    this.cx = new EngineContext(eo, partLimiter(options, true), this.stop.signal, this.emit.bind(this));
  }

  abort(reason?: unknown): void {
    this.stop.abort(reason ?? new Error('stopped'));
  }

  done(): Promise<UploadResult> {
    this.running ??= this.run().finally(this.unlinkStop);
    return this.running;
  }

  private async run(): Promise<UploadResult> {
    const t0 = Date.now();
    const o = this.options;
    const cx = this.cx;
    const maxParts = o.maxParts ?? S3_MAX_PARTS;
    const sized = planFor(o.expectedSize ?? o.maxSize ?? 0, { ...o, maxParts });
    const partSize = sized.partSize;
    const wanted = sendAlgorithm(cx.o);
    await loadSendHashers(wanted);
    if (o.noOverwrite && (await lookAtKey(cx, { existsOnly: true })).exists) throw new ObjectExistsError(cx.errorContext(), 'before');
    const settings = objectSettings(o, undefined);
    const { created, alg, type } = await createChoosingChecksum(cx, wanted, wanted ? (o.checksumType ?? checksumTypeFor(wanted)) : null, (a, t) =>
      cx.retry(() => cx.s3.createMultipartUpload({ bucket: o.bucket, key: o.key, ...(a && t ? { checksumAlgorithm: a, checksumType: t } : {}), settings }, cx.req, cx.signal)),
    );
    // The journal's shape, kept in memory only: a stream cannot be resumed.
    const j = newJournal(cx.o, created, { endpoint: '', partSize, partCount: 0, checksumAlgorithm: alg, checksumType: type, source: { path: '-', size: 0, mtimeMs: 0, ctimeMs: 0, ino: 0, dev: 0 }, settings });
    const ctx = cx.errorContext({ uploadId: j.uploadId });
    cx.emit('plan', { bucket: o.bucket, key: o.key, uploadId: j.uploadId, fileSize: o.expectedSize ?? 0, partSize, partCount: o.expectedSize !== undefined ? sized.partCount : 0, checksumAlgorithm: alg, resumed: false, journalPath: '' });
    const digests = new Map<number, LocalDigest>();
    try {
      const total = await this.sendAll(j, digests, maxParts);
      const plan: PartPlan = { fileSize: total, partSize, partCount: Math.max(1, j.parts.length) };
      j.partCount = plan.partCount;
      if (o.expectedSize !== undefined && total !== o.expectedSize) throw new StreamSizeMismatchError(ctx, total, o.expectedSize, total > o.expectedSize);
      if (o.maxSize !== undefined && total > o.maxSize) {
        cx.emit('warning', { code: 'SIZE_NOT_EXPECTED', message: `the stream had ${total} bytes, more than the ${o.maxSize} given as its upper bound (the part size was planned from it)` });
      }
      const session: Session = { journalPath: '', journal: j, plan, alg, digests, resumed: false, toUpload: [], noFile: true };
      const finished = await finish(cx, session);
      cx.emit('phase', { phase: 'done' });
      const result = uploadResult(j, plan, finished.proof, cx.stats, t0, { resumed: false, alreadyComplete: false, partsSkipped: 0 });
      this.emit('complete', result);
      return result;
    } catch (err) {
      // Nothing can resume a stream: the upload goes, whatever stopped it.
      const fate = await abortWithRetries(cx, j);
      if (err instanceof StreamTooLargeError) throw err;
      // The caller's stop (not the internal one after a failure): a part it cut off is no failure.
      const stopped = this.options.signal?.aborted === true && (!(err instanceof PartwiseError) || causedByStop(err));
      const e = stopped ? new PausedError(ctx, err) : err;
      const code = e instanceof PartwiseError ? e.code : 'UNEXPECTED';
      throw new StreamFailedError(ctx, code, e instanceof Error ? e : new Error(String(e)), fate);
    }
  }

  /** Reads the source into part buffers (at most `concurrency` alive) and sends each; returns the byte count. */
  private async sendAll(j: JournalData, digests: Map<number, LocalDigest>, maxParts: number): Promise<number> {
    const cx = this.cx;
    const free: Buffer[] = [];
    let alive = 0;
    // As many buffers as the limiter runs parts at once (a shared limiter's whole budget at most).
    const slots = Math.max(1, cx.limiter.concurrency);
    let waiter: (() => void) | undefined;
    const take = async (): Promise<Buffer> => {
      while (!free.length && alive >= slots) await new Promise<void>((r) => (waiter = r));
      if (free.length) return free.pop()!;
      alive++;
      return Buffer.allocUnsafe(j.partSize);
    };
    const give = (b: Buffer) => {
      free.push(b);
      waiter?.();
      waiter = undefined;
    };
    let failure: unknown;
    const sends: Promise<void>[] = [];
    let total = 0;
    let n = 0;
    const it = this.options.source[Symbol.asyncIterator]();
    // A stop must not wait for a producer that is idle (a pipe with nothing to say).
    const stopped = new Promise<never>((_, reject) => {
      const fail = () => reject(new PausedError(cx.errorContext({ uploadId: j.uploadId }), cx.signal.reason));
      if (cx.signal.aborted) fail();
      else cx.signal.addEventListener('abort', fail, { once: true });
    });
    stopped.catch(() => undefined);
    let carry: Uint8Array | undefined;
    let ended = false;
    try {
      while (!ended && !failure && !cx.signal.aborted) {
        const buf = await take();
        let filled = 0;
        while (filled < buf.length) {
          let chunk = carry;
          carry = undefined;
          if (!chunk) {
            let r: IteratorResult<Uint8Array>;
            try {
              r = await Promise.race([it.next(), stopped]);
            } catch (err) {
              if (err instanceof PausedError) throw err;
              throw new SourceUnreadableError('-', err);
            }
            if (r.done) {
              ended = true;
              break;
            }
            chunk = r.value;
          }
          const k = Math.min(chunk.length, buf.length - filled);
          buf.set(chunk.subarray(0, k), filled);
          filled += k;
          if (k < chunk.length) carry = chunk.subarray(k);
        }
        if (filled === 0 && (n > 0 || !ended)) {
          give(buf);
          continue;
        }
        n++;
        if (n > maxParts) {
          failure = new StreamTooLargeError(cx.errorContext({ uploadId: j.uploadId }), maxParts, j.partSize);
          give(buf);
          break;
        }
        total += filled;
        // More than the exact size announced: not that stream; nothing more is read or sent.
        if (this.options.expectedSize !== undefined && total > this.options.expectedSize) {
          failure = new StreamSizeMismatchError(cx.errorContext({ uploadId: j.uploadId }), total, this.options.expectedSize, true);
          give(buf);
          break;
        }
        const partNumber = n;
        const body = buf.subarray(0, filled);
        sends.push(
          cx
            // A part queued behind a failure is not sent.
            .limiter(() => (failure ? Promise.resolve() : this.sendPart(j, partNumber, body, digests)))
            .then(
              () => give(buf),
              (err: unknown) => {
                // As for files: an S3 failure of one part is that part's failure.
                failure ??= err instanceof PartwiseError && !(err instanceof S3RequestError) ? err : new PartFailedError(cx.errorContext({ uploadId: j.uploadId, partNumber }), err);
                give(buf);
              },
            ),
        );
      }
    } catch (err) {
      failure ??= err;
      void it.return?.();
    }
    // The upload is about to be aborted: parts in flight stop first, so none lands after the abort.
    if (failure && !cx.signal.aborted) this.stop.abort(new Error('the stream failed'));
    await Promise.allSettled(sends);
    if (failure) throw failure;
    if (cx.signal.aborted) throw new PausedError(cx.errorContext({ uploadId: j.uploadId }), cx.signal.reason);
    return total;
  }

  private async sendPart(j: JournalData, n: number, body: Buffer, digests: Map<number, LocalDigest>): Promise<void> {
    const cx = this.cx;
    if (cx.signal.aborted) return;
    const alg = j.checksumAlgorithm;
    // Cheapest sufficient evidence, as for files: MD5 only until the server has echoed a checksum.
    const digest = digestBuffer(body, alg ?? undefined, !alg || j.serverChecksums !== true);
    const checksum = alg && digest.checksum ? digest.checksum.toString('base64') : undefined;
    let attempts = 0;
    const out = await cx.retry(
      async () => {
        attempts++;
        cx.emit('part-start', { partNumber: n, size: body.length, attempt: attempts });
        const r = await cx.s3.uploadPart(
          {
            bucket: j.bucket,
            key: j.key,
            uploadId: j.uploadId,
            partNumber: n,
            body,
            ...(digest.md5Hex ? { contentMd5: Buffer.from(digest.md5Hex, 'hex').toString('base64') } : {}),
            ...(alg && checksum ? { checksum: { algorithm: alg, value: checksum } } : {}),
            onBytesSent: (bytes) => cx.emit('part-sent', { partNumber: n, bytes }),
            ...(cx.pace ? { pace: cx.pace } : {}),
          },
          cx.req,
          cx.signal,
        );
        checkAnswer(cx, j, alg, r, digest.md5Hex, checksum);
        return r;
      },
      {
        onRetry: (i) => {
          cx.stats.retries++;
          cx.emit('part-retry', { partNumber: n, attempt: i.attempt, delayMs: i.delayMs, error: (i.error as Error).message, throttled: i.throttled });
        },
      },
    );
    const etag = stripQuotes(out.etag);
    j.parts.push({ partNumber: n, size: body.length, etag, ...(digest.md5Hex ? { md5: digest.md5Hex } : {}), ...(checksum ? { checksum } : {}) });
    digests.set(n, digest);
    cx.stats.partsSent++;
    cx.stats.bytesSent += body.length;
    cx.emit('part-done', { partNumber: n, size: body.length, etag, attempts });
  }
}

/**
 * Aborts the stream's multipart upload, three tries (the stop signal may be set, so no retry
 * loop), and says what became of it: aborted; no longer there to abort after its Complete was
 * accepted (the object stays); or still open, with the command that removes it.
 */
async function abortWithRetries(cx: EngineContext, j: JournalData): Promise<StreamUploadFate> {
  for (let i = 0; i < 3; i++) {
    try {
      await cx.s3.abortMultipartUpload({ bucket: j.bucket, key: j.key, uploadId: j.uploadId }, cx.req);
      return 'aborted';
    } catch (err) {
      if (isNoSuchUpload(err) || (err instanceof S3RequestError && err.httpStatus === 404)) return cx.stats.completed ? 'completed' : 'aborted';
      await new Promise((r) => setTimeout(r, 200 * (i + 1)));
    }
  }
  cx.emit('warning', { code: 'ABORT_FAILED', message: `the stream's multipart upload ${j.uploadId} could not be aborted; remove it with: partwise abort s3://${j.bucket}/${j.key} --upload-id ${j.uploadId}` });
  return 'abort-failed';
}
