/**
 * One error hierarchy. Every error has a stable `code` (for programs), the context it knows
 * (bucket, key, uploadId, part number), and a message that ends with what to do next.
 */
import { permanentRefusal, s3Advice } from './s3-advice.ts';

export type ErrorCode =
  | 'INVALID_OPTIONS'
  | 'FILE_TOO_LARGE'
  | 'SOURCE_UNREADABLE'
  | 'INVALID_KEY'
  | 'SOURCE_CHANGED'
  | 'UPLOAD_GONE'
  | 'UPLOAD_LOCKED'
  | 'JOURNAL_CORRUPT'
  | 'JOURNAL_MISMATCH'
  | 'PAUSED'
  | 'PART_FAILED'
  | 'S3_REQUEST_FAILED'
  | 'REMOTE_PARTS_INCONSISTENT'
  | 'COMPLETE_FAILED'
  | 'OBJECT_VERIFICATION_FAILED'
  | 'OBJECT_UNVERIFIED'
  | 'UNVERIFIABLE'
  | 'UPLOAD_NOT_ADOPTABLE'
  | 'STATE_UNWRITABLE'
  | 'OBJECT_EXISTS'
  | 'SETTINGS_DIFFER'
  | 'STREAM_TOO_LARGE'
  | 'STREAM_SIZE_MISMATCH'
  | 'PLAN_MISMATCH'
  | 'PARTS_MISSING'
  | 'RECEIPT_MISMATCH'
  | 'STREAM_FAILED'
  | 'UNEXPECTED';

export interface ErrorContext {
  bucket?: string;
  key?: string;
  uploadId?: string;
  partNumber?: number;
  journalPath?: string;
}

/** How to start over, for library and CLI users alike: every message that offers it says it so. */
export const FRESH = 'the fresh option (fresh: true; CLI: --fresh)';

export class PartwiseError extends Error {
  readonly code: ErrorCode;
  readonly context: ErrorContext;
  /** true when running the same upload again is expected to continue where this one stopped */
  readonly resumable: boolean;

  constructor(code: ErrorCode, message: string, opts: { context?: ErrorContext; cause?: unknown; resumable?: boolean } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.context = opts.context ?? {};
    this.resumable = opts.resumable ?? false;
  }
}

export class InvalidOptionsError extends PartwiseError {
  constructor(message: string, cause?: unknown) {
    super('INVALID_OPTIONS', message, cause === undefined ? {} : { cause });
  }
}

export class FileTooLargeError extends PartwiseError {
  constructor(size: number, max: number) {
    super('FILE_TOO_LARGE', `The file is ${size} bytes; S3 multipart uploads hold at most ${max} bytes (10,000 parts of 5 GiB). Split the file before uploading.`);
  }
}

export class SourceUnreadableError extends PartwiseError {
  constructor(path: string, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException)?.code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'ENOTDIR' ? 'a part of the path is not a folder' : ((cause as Error)?.message ?? String(cause));
    super('SOURCE_UNREADABLE', `Cannot read ${path}: ${why}. Check the path and its permissions; nothing was sent.`, { cause });
  }
}

/** A folder entry whose name cannot become an S3 key: refused by name, never skipped without a word. */
export class InvalidKeyError extends PartwiseError {
  constructor(path: string, why: string) {
    super('INVALID_KEY', `${path} cannot be uploaded: ${why}. Rename it (or exclude it with exclude / --exclude); the rest of the job goes on.`);
  }
}

export class SourceChangedError extends PartwiseError {
  readonly differences: string[];
  /** `step`: what helps, where --fresh is not how this upload starts over (a shared upload) */
  constructor(path: string, differences: string[], context: ErrorContext, step?: string) {
    super(
      'SOURCE_CHANGED',
      `${path} changed since this upload started (${differences.join(', ')}); the parts on the server may hold the old bytes, so partwise will not mix them into one object. ` +
        (step ?? `Start over with ${FRESH}, which aborts upload ${context.uploadId ?? '?'} and uploads the file as it is now.`),
      { context },
    );
    this.differences = differences;
  }
}

export class UploadGoneError extends PartwiseError {
  constructor(context: ErrorContext, cause?: unknown, objectNote?: string) {
    super(
      'UPLOAD_GONE',
      `The server no longer knows multipart upload ${context.uploadId ?? '?'} for s3://${context.bucket}/${context.key} (aborted, expired by a lifecycle rule, or completed elsewhere)` +
        `${objectNote ? `, and the object at the key is not proven to be this file (${objectNote})` : ''}. ` +
        `The local journal for it has been removed; run the same upload again to start over.`,
      { context, cause },
    );
  }
}

/** What a lock guards: one upload's journal, or a folder job's. */
export type LockedWork = 'upload' | 'folder job';

export class UploadLockedError extends PartwiseError {
  readonly holder: { pid: number; host: string };
  constructor(lockPath: string, holder: { pid: number; host: string }, context: ErrorContext, what: LockedWork = 'upload') {
    super(
      'UPLOAD_LOCKED',
      `Another partwise process (pid ${holder.pid} on ${holder.host}) is driving this ${what}. Wait for it to finish or stop it; if it is truly gone, delete ${lockPath}.`,
      { context },
    );
    this.holder = holder;
  }
}

export class JournalCorruptError extends PartwiseError {
  constructor(path: string, reason: string) {
    super('JOURNAL_CORRUPT', `The journal ${path} cannot be read (${reason}). Run again with ${FRESH}: it moves the journal aside (kept for inspection) and starts over; \`partwise ls\` shows the upload it may name.`, {
      context: { journalPath: path },
    });
  }
}

export class JournalMismatchError extends PartwiseError {
  constructor(path: string, reason: string, context: ErrorContext) {
    super('JOURNAL_MISMATCH', `The journal ${path} belongs to a different upload (${reason}). Run again with ${FRESH} to start over.`, {
      context: { ...context, journalPath: path },
    });
  }
}

/** --no-overwrite: the key already holds an object that is not this file. */
export class ObjectExistsError extends PartwiseError {
  constructor(context: ErrorContext, when: 'before' | 'at-complete', cause?: unknown) {
    const s3url = `s3://${context.bucket ?? '?'}/${context.key ?? '?'}`;
    super(
      'OBJECT_EXISTS',
      when === 'before'
        ? `${s3url} already holds an object (not proven to be this file with the settings asked for), and overwriting was refused (no-overwrite). Choose another key, or run without no-overwrite to replace it.`
        : `Another writer created ${s3url} while this upload ran; Complete was refused (If-None-Match), so nothing was replaced. Upload ${context.uploadId ?? '?'} is kept: run again without no-overwrite to replace the object, or abort it with partwise abort ${s3url} --upload-id ${context.uploadId ?? '?'}.`,
      { context, cause, resumable: when === 'at-complete' },
    );
  }
}

/** A resume asked for object settings other than those the upload was created with (fixed at Create). */
export class SettingsDifferError extends PartwiseError {
  constructor(context: ErrorContext, readonly differences: string[]) {
    super(
      'SETTINGS_DIFFER',
      `Upload ${context.uploadId ?? '?'} was created with other object settings than this run asks for (they are fixed when an upload is created): ${differences.join('; ')}. Run again with the upload's settings to resume it, or with ${FRESH} to start over with the new ones.`,
      { context },
    );
  }
}

/** A stream without an expected size outgrew 10,000 parts of the planned size. */
export class StreamTooLargeError extends PartwiseError {
  constructor(context: ErrorContext, maxParts: number, partSize: number) {
    super(
      'STREAM_TOO_LARGE',
      `The stream is longer than ${maxParts} parts of ${partSize} bytes (S3's part limit); the multipart upload was aborted. Give its size with expected-size (or an upper bound with max-size), so the part size is planned for it, or a larger part size, and run the pipeline again.`,
      { context },
    );
  }
}

/** A stream of another length than its expected size: cut short (a producer that died), or another stream. */
export class StreamSizeMismatchError extends PartwiseError {
  constructor(context: ErrorContext, got: number, expected: number, more: boolean) {
    super(
      'STREAM_SIZE_MISMATCH',
      `${more ? `The stream went on past the ${expected} bytes expected (expected-size; ${got} read): it is not the stream that was announced` : `The stream ended after ${got} bytes, not the ${expected} expected (expected-size): the producer stopped early or failed`}, so it was not completed into an object and nothing at the key was replaced. Check the producer; if the size is only an upper bound, give it as max-size (CLI: --max-size)`,
      { context },
    );
  }
}

/** Uploading a stream failed: its multipart upload was aborted, since a stream cannot be read again. */
/** What became of a failed stream's multipart upload. */
export type StreamUploadFate = 'aborted' | 'abort-failed' | 'completed';

export class StreamFailedError extends PartwiseError {
  constructor(
    context: ErrorContext,
    readonly causeCode: ErrorCode,
    cause: Error,
    readonly fate: StreamUploadFate = 'aborted',
  ) {
    // A stop is no failure of the stream's, and PAUSED's own words (a journal, a resume) are not true of a stream.
    // Nor is starting over with the fresh option: the CLI refuses --fresh for a stream, whose only way again is the pipeline.
    const why = cause.message.split(FRESH).join('a new run of the whole pipeline').replace(` ${PART_RESUME}`, '');
    const what = causeCode === 'PAUSED' ? 'Uploading the stream was stopped before it finished' : `Uploading the stream failed (${causeCode}: ${why})`;
    const id = context.uploadId ?? '?';
    const upload =
      fate === 'aborted'
        ? `Multipart upload ${id} was aborted, as a stream cannot be resumed`
        : fate === 'abort-failed'
          ? `Multipart upload ${id} could not be aborted: remove it with partwise abort s3://${context.bucket}/${context.key} --upload-id ${id} (a stream cannot be resumed)`
          : `Multipart upload ${id} was completed: an object stays at s3://${context.bucket}/${context.key}, not proven to be the stream`;
    super('STREAM_FAILED', `${what}. ${upload}: run the whole pipeline again.`, { context, cause });
  }
}

/** A shared upload's plan does not describe this file, these settings or this part layout: nothing is sent under it. */
export class PlanMismatchError extends PartwiseError {
  /** `differences` empty: there is no plan at all */
  constructor(context: ErrorContext, readonly differences: string[], next: string) {
    const where = `s3://${context.bucket}/${context.key}`;
    super('PLAN_MISMATCH', `${differences.length ? `The plan for ${where}${context.uploadId ? ` (upload ${context.uploadId})` : ''} does not match: ${differences.join('; ')}` : `There is no shared-upload plan for ${where}`}. ${next}`, { context });
  }
}

/** Finishing a shared upload found parts (or receipts) missing: nothing was completed; the workers named can be run again. */
export class PartsMissingError extends PartwiseError {
  constructor(
    context: ErrorContext,
    readonly missing: { parts: number[]; workers: number[]; why: string[]; of?: number },
  ) {
    const parts = missing.parts.length > 12 ? `${missing.parts.slice(0, 12).join(', ')} and ${missing.parts.length - 12} more` : missing.parts.join(', ');
    super(
      'PARTS_MISSING',
      `Upload ${context.uploadId ?? '?'} is not whole yet${parts ? ` (parts ${parts} are missing)` : ''}${missing.why.length ? `: ${missing.why.join('; ')}` : ''}. Nothing was completed. Run worker${missing.workers.length > 1 ? 's' : ''} ${missing.workers.join(', ')} again where the file is (each resumes its range${missing.of ? `: partwise upload <file> s3://${context.bucket}/${context.key} --worker ${missing.workers[0]}/${missing.of}, or that array task alone, sbatch --array=${missing.workers.join(',')} with --worker auto` : ''}), then finish again.`,
      { context, resumable: true },
    );
  }
}

/** A worker's receipt and the server disagree about its parts: another writer, or a worker that read other bytes. Never completed. */
export class ReceiptMismatchError extends PartwiseError {
  /** `worker` undefined: the receipts together, not one of them */
  constructor(context: ErrorContext, readonly worker: number | undefined, details: string[]) {
    const who = worker === undefined ? 'The receipts' : `Worker ${worker}'s receipt`;
    const next = worker === undefined ? 'Run the workers again on the planned file' : `Run worker ${worker} again on the planned file (it verifies its range against the file and resends what differs)`;
    super('RECEIPT_MISMATCH', `${who} and the server disagree (${details.join('; ')}): another writer, or a worker that read other bytes than the plan's. Nothing was completed. ${next}, then finish again.`, { context, resumable: true });
  }
}

export class PausedError extends PartwiseError {
  constructor(context: ErrorContext, cause?: unknown) {
    super('PAUSED', `Upload ${context.uploadId ?? '?'} was stopped before it finished; the journal records every verified part. Run the same upload again to resume.`, {
      context,
      cause,
      resumable: true,
    });
  }
}

const PART_RESUME = 'The journal keeps every finished part; run the same upload again to resume.';

export class PartFailedError extends PartwiseError {
  constructor(context: ErrorContext, cause: unknown) {
    // A refusal a rerun would meet again (the part too large, its number past the server's limit) is not resumable.
    const permanent = isPermanentRefusal(cause);
    super(
      'PART_FAILED',
      `Part ${context.partNumber} of upload ${context.uploadId} failed: ${describeCause(cause)}.${permanent ? '' : ` ${PART_RESUME}`}`,
      { context, cause, resumable: !permanent },
    );
  }
}

export class RemotePartsInconsistentError extends PartwiseError {
  /** `step`: what helps where --fresh is not how the upload starts over (a shared upload) */
  constructor(message: string, context: ErrorContext, step?: string) {
    super('REMOTE_PARTS_INCONSISTENT', `${message} ${step ?? `Start over with ${FRESH}.`}`, { context });
  }
}

export class CompleteFailedError extends PartwiseError {
  constructor(context: ErrorContext, cause: unknown, resumable: boolean, objectNote?: string) {
    super(
      'COMPLETE_FAILED',
      `Completing upload ${context.uploadId} failed: ${describeCause(cause)}${objectNote ? `; the object is not proven to be this file either (${objectNote})` : ''}. ` +
        (resumable ? 'All parts are uploaded and journaled; run the same upload again to retry completion.' : `Start over with ${FRESH}.`),
      { context, cause, resumable },
    );
  }
}

export class ObjectVerificationError extends PartwiseError {
  readonly mismatches: string[];
  constructor(context: ErrorContext, mismatches: string[]) {
    super(
      'OBJECT_VERIFICATION_FAILED',
      `The object s3://${context.bucket}/${context.key} does not match the local file (${mismatches.join('; ')}). Do not trust it: upload again with ${FRESH}.`,
      { context },
    );
    this.mismatches = mismatches;
  }
}

/** An object that nothing the server reports identifies (only its size matched, or not even that could be read). */
export class ObjectUnverifiedError extends PartwiseError {
  constructor(context: ErrorContext, why: string) {
    super('OBJECT_UNVERIFIED', `s3://${context.bucket}/${context.key} could not be verified: ${why}. Nothing proves it is the file; it is not known to differ either.`, { context });
  }
}

/** An upload nothing could ever verify: the server's ETags are not MD5s and it carries no checksum. */
export class UnverifiableError extends PartwiseError {
  constructor(context: ErrorContext, why: string) {
    super('UNVERIFIABLE', `Nothing could verify this upload: ${why}. Start over with a checksum (fresh: true, checksumAlgorithm: 'CRC32C'; CLI: --fresh --checksum crc32c).`, { context });
  }
}

/** An upload named for adoption that is not proven to hold this file. */
export class UploadNotAdoptableError extends PartwiseError {
  constructor(context: ErrorContext, why: string) {
    super(
      'UPLOAD_NOT_ADOPTABLE',
      `Upload ${context.uploadId} of s3://${context.bucket}/${context.key} is not adopted: ${why}. Leave out the upload id to start a new upload; abort the old one with: partwise abort s3://${context.bucket}/${context.key} --upload-id ${context.uploadId}`,
      { context },
    );
  }
}

/** The state folder (journals and locks) cannot be written: read-only, full, or not ours. */
export class StateUnwritableError extends PartwiseError {
  /** `next`: what to do, where the default (resume, or nothing was sent) is not true */
  constructor(path: string, cause: unknown, context: ErrorContext = {}, next?: string) {
    const code = (cause as NodeJS.ErrnoException)?.code;
    const why = code === 'ENOSPC' ? 'the disk is full' : code === 'EROFS' ? 'it is on a read-only file system' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : ((cause as Error)?.message ?? String(cause));
    super(
      'STATE_UNWRITABLE',
      `Cannot write the state folder ${path} (${why}). ${next ?? (context.uploadId ? 'The journal on disk still holds every part recorded so far; free space or fix the folder, then run the same upload again to resume' : 'Nothing was sent; free space or fix the folder, or choose another with --state-dir / PARTWISE_STATE_DIR')}.`,
      { context, cause, resumable: true },
    );
  }
}

/**
 * A failure partwise has no name for (a bug, or the environment: disk, permissions). With an upload
 * begun, its journal is kept and a rerun continues it; with none, a rerun can only try again.
 */
export class UnexpectedError extends PartwiseError {
  constructor(cause: unknown, context: ErrorContext) {
    const begun = context.uploadId !== undefined;
    super(
      'UNEXPECTED',
      `Unexpected failure: ${(cause as Error)?.message ?? String(cause)}. ${begun ? 'The journal is kept; run the same upload again to resume.' : 'Nothing was begun on the server; run the same command again, and if it fails the same way, report it with this message.'}`,
      { context, cause, resumable: begun },
    );
  }
}

/**
 * A failed S3 call, normalized by the adapter so the retry policy and the engine never look at
 * SDK-specific shapes. Faults injected by tests are instances of this class too.
 */
export class S3RequestError extends PartwiseError {
  readonly operation: string;
  /** S3 error code (NoSuchUpload, SlowDown, …) or a network code (ECONNRESET, TimeoutError, …) */
  readonly s3Code: string;
  readonly httpStatus: number | undefined;
  readonly requestId: string | undefined;
  /** the server's own words (its error Message), when it gave any beyond the code */
  readonly serverMessage: string | undefined;

  constructor(args: { operation: string; s3Code: string; httpStatus?: number; requestId?: string; message?: string; context?: ErrorContext; cause?: unknown; resumable?: boolean }) {
    const serverMessage = args.message && args.message !== 'UnknownError' && args.message !== args.s3Code ? args.message : undefined;
    super('S3_REQUEST_FAILED', `${args.operation} failed: ${failureWords({ ...args, serverMessage })}`, { context: args.context, cause: args.cause, ...(args.resumable ? { resumable: true } : {}) });
    this.operation = args.operation;
    this.s3Code = args.s3Code;
    this.httpStatus = args.httpStatus;
    this.requestId = args.requestId;
    this.serverMessage = serverMessage;
  }
}

/** "Code (HTTP n) (the server's words): what it means and what helps", for a request and for what wraps it. */
function failureWords(e: { operation: string; s3Code: string; httpStatus?: number | undefined; serverMessage?: string | undefined }): string {
  return `${e.s3Code}${e.httpStatus ? ` (HTTP ${e.httpStatus})` : ''}${e.serverMessage ? ` (${e.serverMessage})` : ''}: ${s3Advice(e.s3Code, e.httpStatus, e.operation, e.serverMessage)}`;
}

/** The failure is a permanent refusal: running the same command again would meet it again. */
export function isPermanentRefusal(err: unknown): boolean {
  return err instanceof S3RequestError && permanentRefusal(err.s3Code, err.httpStatus, err.operation, err.serverMessage) !== undefined;
}

/** An error and its causes, outermost first (a part's failure wraps its request's); a few deep at most. */
export function* causeChain(err: unknown): Generator<unknown> {
  for (let e = err, depth = 0; e && depth < 6; e = (e as { cause?: unknown }).cause, depth++) yield e;
}

/**
 * Whether a failure is the stop's own doing: PAUSED, or a request cut off by the abort (the SDK's
 * AbortError, however deep in its causes). A failure of its own at the same moment (AccessDenied,
 * a changed file) is not, and is reported as what it is.
 */
export function causedByStop(err: unknown): boolean {
  for (const e of causeChain(err)) {
    if (e instanceof PausedError) return true;
    if (e instanceof S3RequestError ? e.s3Code === 'AbortError' : (e as { name?: string }).name === 'AbortError') return true;
  }
  return false;
}

/** The server no longer has this multipart upload (aborted, expired, or completed). */
export function isNoSuchUpload(err: unknown): boolean {
  return err instanceof S3RequestError && err.s3Code === 'NoSuchUpload';
}

/** The "no such upload" was a NoSuchKey (RGW's way, and a server without ListParts answering as GetObject). */
export function answeredNoSuchKey(err: unknown): boolean {
  return [...causeChain(err)].some((e) => e instanceof S3RequestError && e.s3Code === 'NoSuchKey');
}

function describeCause(cause: unknown): string {
  if (cause instanceof S3RequestError) return failureWords(cause);
  if (cause instanceof Error) return cause.message;
  return String(cause);
}
