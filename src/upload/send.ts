/**
 * Sending: every part the session lacks goes through the limiter; each part's bytes are read (and
 * hashed) inside its slot, sent with Content-MD5 and the precomputed checksum, checked against
 * what the server answers, and journaled.
 */
import type { FileHandle } from 'node:fs/promises';
import { etagsAreMd5, stripQuotes, type ChecksumAlgorithm } from '../core/checksums.ts';
import type { EngineContext } from './context.ts';
import { PartFailedError, PartwiseError, PausedError, S3RequestError, SourceChangedError, UnverifiableError, UploadGoneError, isNoSuchUpload } from '../core/errors.ts';
import { assertSourceUnchanged, preparePart, sameDigest, type PreparedPart } from '../local/file-source.ts';
import { JournalWriter, type JournalData, type JournalPart } from '../local/journal.ts';
import { poolFor } from '../local/buffer-pool.ts';
import { DEFAULT_STREAM_PARTS_ABOVE } from './options.ts';
import { partAt } from '../core/planner.ts';
import { keepWaitingForProbe } from '../core/probe.ts';
import type { S3Port, UploadPartOutput } from '../s3/port.ts';
import type { Session } from './types.ts';

const md5b64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');

/** Uploads every part in `s.toUpload`; the journal follows each acknowledged part. */
export async function sendParts(cx: EngineContext, s: Session, fh: FileHandle, opts: { phases?: boolean } = {}): Promise<void> {
  const phases = opts.phases !== false;
  // No journal on disk (a shared upload's worker: its truth is the server's listing): nothing to record.
  const writer = s.journalPath ? new JournalWriter(s.journalPath, { bucket: s.journal.bucket, key: s.journal.key, uploadId: s.journal.uploadId }) : undefined;
  if (phases) cx.emit('phase', { phase: 'upload' });
  const unfollow = cx.throttle.follow((e) => cx.emit('concurrency', e));
  let failure: { partNumber: number; error: unknown } | undefined;
  // Until the server has shown it echoes checksums, the first part to go is a probe; whether the
  // others wait for its answer (and skip MD5) is core/probe.ts's decision, from the probe's rate.
  let probe: Promise<unknown> | undefined;
  const watch = { firstByteAt: undefined as number | undefined, bytes: 0, answered: false };
  const now = cx.o.now ?? Date.now;
  const keepWaiting = () =>
    keepWaitingForProbe({ sendingMs: watch.firstByteAt === undefined ? undefined : now() - watch.firstByteAt, bytesSent: watch.bytes, ...(cx.rate ? { capBytesPerMs: cx.rate.bytesPerSecond / 1000 } : {}) });
  await Promise.all(
    s.toUpload.map((n) =>
      cx.limiter(async () => {
        if (failure || cx.signal.aborted) return;
        try {
          if (s.alg && s.journal.serverChecksums !== true) {
            if (probe) await waitForProbe(probe, keepWaiting, () => watch.answered);
            else {
              probe = sendPart(cx, s, fh, n, writer, (bytes) => {
                watch.firstByteAt ??= now();
                watch.bytes += bytes;
              }).finally(() => (watch.answered = true));
              await probe;
              return;
            }
            if (failure || cx.signal.aborted) return;
          }
          await sendPart(cx, s, fh, n, writer);
        } catch (error) {
          cx.emit('part-failed', { partNumber: n, error: (error as Error)?.message ?? String(error) });
          if (!cx.signal.aborted) failure ??= { partNumber: n, error };
        }
      }),
    ),
  );
  unfollow();
  await writer?.flush();
  const ctx = cx.errorContext({ uploadId: s.journal.uploadId, journalPath: s.journalPath });
  if (cx.signal.aborted) throw new PausedError(ctx, cx.signal.reason);
  if (failure) {
    const { partNumber, error } = failure;
    // A part that failed because the file changed (it shrank, say) is the file's fault, not the part's.
    if (!(error instanceof SourceChangedError)) await assertSourceUnchanged(s.journal.source, cx.o.file, ctx);
    if (isNoSuchUpload(error)) throw new UploadGoneError(ctx, error);
    if (error instanceof PartwiseError && !(error instanceof S3RequestError)) throw error;
    throw new PartFailedError({ ...ctx, partNumber }, error);
  }
  if (phases) cx.emit('phase', { phase: 'complete' });
}

/** Waits for the probe's answer while the policy says so, looking again every 25 ms. */
async function waitForProbe(p: Promise<unknown>, keepWaiting: () => boolean, answered: () => boolean): Promise<void> {
  while (!answered() && keepWaiting()) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([p.catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, 25)))]);
    clearTimeout(timer);
  }
}

async function sendPart(cx: EngineContext, s: Session, fh: FileHandle, n: number, writer: JournalWriter | undefined, onSent?: (bytes: number) => void): Promise<void> {
  const part = partAt(s.plan, n);
  const streamAbove = cx.o.streamPartsAbove ?? DEFAULT_STREAM_PARTS_ABOVE;
  // Read inside the concurrency slot: memory stays near concurrency × min(part size, streamAbove, arena).
  const pool = poolFor(cx.limiter);
  // Cheapest sufficient evidence: once the server has shown it stores and checks part checksums,
  // the checksum proves the part and MD5 (the slowest hash here) is not computed at all.
  const md5 = !s.alg || s.journal.serverChecksums !== true;
  let prepared: PreparedPart = await preparePart(fh, part, s.alg, streamAbove, { alloc: (size) => pool.take(size, Math.min(s.plan.partSize, streamAbove)), md5, arena: (size) => pool.take(size) });
  const digest = prepared.digest;
  const checksum = s.alg && digest.checksum ? digest.checksum.toString('base64') : undefined;
  let attempts = 0;
  const out = await cx.retry(
    async () => {
      attempts++;
      if (attempts > 1) {
        // A retry sends the part from the file again, and the file must still hold the same bytes.
        // A failed request may still be reading into its arena: the retry takes a fresh one.
        prepared = await preparePart(fh, part, s.alg, streamAbove, { reuse: prepared, md5, arena: (size) => Buffer.allocUnsafeSlow(size) });
        if (!sameDigest(prepared.digest, digest)) {
          throw new SourceChangedError(cx.o.file, [`the bytes of part ${n} changed during the upload`], cx.errorContext({ uploadId: s.journal.uploadId, partNumber: n }));
        }
      }
      cx.emit('part-start', { partNumber: n, size: part.size, attempt: attempts });
      const input: Parameters<S3Port['uploadPart']>[0] = {
        bucket: s.journal.bucket,
        key: s.journal.key,
        uploadId: s.journal.uploadId,
        partNumber: n,
        body: prepared.body,
        ...(digest.md5Hex ? { contentMd5: md5b64(digest.md5Hex) } : {}),
        onBytesSent: (bytes) => {
          cx.throttle.sent(bytes);
          onSent?.(bytes);
          cx.emit('part-sent', { partNumber: n, bytes });
        },
        ...(cx.pace ? { pace: cx.pace } : {}),
        ...(s.alg && checksum ? { checksum: { algorithm: s.alg, value: checksum } } : {}),
      };
      const r = await cx.s3.uploadPart(input, cx.req, cx.signal);
      checkAnswer(cx, s.journal, s.alg, r, digest.md5Hex, checksum);
      return r;
    },
    {
      onRetry: (i) => {
        cx.stats.retries++;
        cx.emit('part-retry', { partNumber: n, attempt: i.attempt, delayMs: i.delayMs, error: (i.error as Error).message, throttled: i.throttled });
      },
      // The SDK retries only bodies it can replay; part bodies go out as streams (for progress).
      replayable: prepared.body.length === 0,
    },
  );
  // Acknowledged: no request holds the bytes any more, so the next part may read into them.
  if (Buffer.isBuffer(prepared.body) && prepared.body.length > 0) pool.give(prepared.body);
  if (prepared.arena) pool.give(prepared.arena);
  const etag = stripQuotes(out.etag);
  const jp: JournalPart = { partNumber: n, size: part.size, etag, ...(digest.md5Hex ? { md5: digest.md5Hex } : {}), ...(checksum ? { checksum } : {}) };
  s.journal.parts = s.journal.parts.filter((p) => p.partNumber !== n);
  s.journal.parts.push(jp);
  s.digests.set(n, digest);
  cx.stats.partsSent++;
  cx.stats.bytesSent += part.size;
  cx.emit('part-done', { partNumber: n, size: part.size, etag, attempts });
  await writer?.record(jp, s.journal.etagIsMd5, s.journal.serverChecksums === true);
}

/**
 * The server's answer must agree with what was sent: its checksum echo, and its ETag while ETags
 * are MD5s. A disagreement is an error the retry loop resends on, and that fails the part if it
 * persists; trust in ETags is withdrawn only on positive evidence that they are not MD5s.
 */
export function checkAnswer(cx: EngineContext, j: JournalData, alg: ChecksumAlgorithm | null, r: UploadPartOutput, md5Hex: string | undefined, checksum: string | undefined): void {
  if (checksum && r.checksum && r.checksum !== checksum) {
    throw new S3RequestError({ operation: 'UploadPart', s3Code: 'PartChecksumMismatch', message: `server stored ${r.checksum}, sent ${checksum}` });
  }
  // The server echoed the checksum it computed: it stores part checksums (and lists them on resume).
  if (checksum && r.checksum === checksum) j.serverChecksums = true;
  if (!j.etagIsMd5 || md5Hex === undefined) return;
  if (!etagsAreMd5({ serverSideEncryption: r.serverSideEncryption, sseCustomerAlgorithm: r.sseCustomerAlgorithm, etag: r.etag })) {
    if (!alg) throw new UnverifiableError(cx.errorContext({ uploadId: j.uploadId }), `the server's part ETags are not MD5s (${stripQuotes(r.etag)}) and the upload has no checksum`);
    j.etagIsMd5 = false;
    cx.emit('warning', { code: 'ETAG_NOT_MD5', message: `part ETags are not MD5s here (${stripQuotes(r.etag)}); verifying by ${alg ?? 'the journal'} instead` });
    return;
  }
  if (stripQuotes(r.etag).toLowerCase() !== md5Hex) {
    throw new S3RequestError({ operation: 'UploadPart', s3Code: 'PartETagMismatch', message: `server ETag ${stripQuotes(r.etag)} is the MD5 of other bytes than the ${md5Hex} sent` });
  }
}
