/**
 * What a folder job takes and reports (its options, each entry's outcome, the summary, the events)
 * and the decisions on them: which failures every file would meet alike, what an entry list may
 * hold, a failure as an outcome, the settings a file's record is compared by.
 */
import type { ConcurrencyChange } from '../core/throttle.ts';
import type { UploadEvents } from '../upload/events.ts';
import type { EngineOptions } from '../upload/options.ts';
import { InvalidOptionsError, PartwiseError, S3RequestError, causeChain } from '../core/errors.ts';
import { objectSettings, settingsDiff } from '../core/object-settings.ts';
import type { JobEntry } from '../local/folder-walk.ts';
import type { VerificationLevel } from '../core/verify-object.ts';

export interface FolderJobOptions extends Omit<EngineOptions, 'file' | 'key' | 'uploadId' | 'fresh' | 'signal'> {
  /** a folder: every file below it, keys = prefix + relative path */
  dir?: string;
  /** key prefix for `dir` ("backups/2026-11-24/"); "" for the bucket's root */
  prefix?: string;
  exclude?: string[];
  /** or an explicit list of files and keys (then dir, prefix and exclude are not used) */
  entries?: JobEntry[];
  /** stop starting files after the first failure (default: every file is tried); files in flight finish */
  failFast?: boolean;
  /**
   * Entries that cannot be read (a folder not listable, a file without read permission, one that
   * vanished since it was listed) are listed and counted as `unreadable` instead of failing the job.
   * Default false: an entry not read is a failure. Names S3 cannot take are failures either way.
   */
  skipUnreadable?: boolean;
  /**
   * This run is shard `index` of `count` (0-based) of the tree, as one task of a scheduler's array:
   * it accounts for and sends the entries whose relative path (for `entries`, the key) hashes to
   * it. The shards' union is the whole tree, each entry in exactly one; each has its own journal.
   */
  shard?: { index: number; count: number };
  /**
   * The job's name: its journal. Default: the folder (with bucket and prefix), or for `entries` the
   * list itself; give one when a backup tool passes a different list each run of the same job.
   */
  jobId?: string;
  signal?: AbortSignal;
}

/**
 * interrupted: the job was stopped while the file was under way; the same job resumes it.
 * unreadable: not read, and not a failure because skipUnreadable asked so.
 * abandoned: a file gone since an interrupted run; its upload was aborted (not an entry of the walk).
 */
export type FileStatus = 'uploaded' | 'skipped' | 'failed' | 'interrupted' | 'unreadable' | 'abandoned';

export interface FileOutcome {
  file: string;
  key: string;
  size: number;
  status: FileStatus;
  /** how it was sent or why it was skipped */
  how: string;
  /** uploaded or skipped: the evidence the object is the file, as a single upload's result names it */
  verificationLevel?: VerificationLevel;
  bytesSent: number;
  /** s3Code: the server's (or the network's) code when a request failed, from the error or its cause */
  error?: { code: string; message: string; s3Code?: string };
  /** the file was never started (a stop, or a failure that stopped the job): nothing was tried */
  notStarted?: true;
}

/** Failures that do not depend on the file: the bucket, the credentials, the region, the endpoint. */
const EVERY_FILE = new Set(['NoSuchBucket', 'InvalidBucketName', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'NoCredentials', 'CredentialsProviderError', 'RegionMissing', 'ExpiredToken', 'ExpiredTokenException', 'AllAccessDisabled', 'ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * Whether every file of a job would fail this way too: then the job stops starting files (a
 * 10,000-file backup to a wrong bucket, or an unreachable endpoint after its retries, fails once,
 * not 10,000 times). AccessDenied is not one: a policy may refuse one key and allow the next.
 */
export function failsEveryFile(error: { code: string; s3Code?: string } | undefined): boolean {
  return error?.s3Code !== undefined && EVERY_FILE.has(error.s3Code);
}

/** The S3 or network code behind an error, however deep in its causes (a part's failure wraps its request's). */
export function s3CodeOf(err: unknown): string | undefined {
  for (const e of causeChain(err)) if (e instanceof S3RequestError) return e.s3Code;
  return undefined;
}

/**
 * A job's accounting: every unit of the job (`entries`: each entry the walk met, or each of a list's
 * `entries`, plus each upload of a file deleted since an interrupted run) ends in exactly one of
 * uploaded, skipped (already there, proven), failed, interrupted, unreadable (skipped as asked),
 * excluded, notRegular or abandoned, and those add up to `entries`. Every outcome but excluded and
 * notRegular (listed in notRead) is in `outcomes`.
 */
export interface JobSummary {
  entries: number;
  /** regular files to send (the walk's, or the list's) */
  files: number;
  bytesTotal: number;
  uploaded: number;
  skipped: number;
  failed: number;
  /** files a stop left for the next run: the ones under way, and the ones never started */
  interrupted: number;
  /** entries not read, listed, and not failures because skipUnreadable asked so */
  unreadable: number;
  /** entries an exclude pattern matched (a matching folder counts once) */
  excluded: number;
  /** entries that are not regular files (symbolic links, special files), listed in notRead */
  notRegular: number;
  /** uploads of files deleted since an interrupted run, aborted (outcomes with status abandoned) */
  abandoned: number;
  bytesSent: number;
  outcomes: FileOutcome[];
  /** entries of the folder not uploaded by rule (symbolic links, special files) */
  notRead: { path: string; why: string }[];
  journalPath: string;
  durationMs: number;
}

export interface JobProgress {
  files: number;
  filesDone: number;
  bytesTotal: number;
  /** bytes of finished files (uploaded or confirmed) plus acknowledged parts of files in flight */
  bytesDone: number;
  bytesSent: number;
}

export interface JobEvents {
  'job-plan': (e: { files: number; bytesTotal: number; notRead: JobSummary['notRead']; journalPath: string }) => void;
  'file-start': (e: { file: string; key: string; size: number; multipart: boolean }) => void;
  'file-done': (e: FileOutcome) => void;
  /** a file's own engine event (multipart files), named with the file */
  'file-event': (e: { file: string; key: string; event: keyof UploadEvents; data: unknown }) => void;
  'job-progress': (p: JobProgress) => void;
  /** the parts (and files) allowed in flight: the level at the start, then each change and why */
  concurrency: (e: ConcurrencyChange) => void;
  warning: (e: { file?: string; code: string; message: string }) => void;
}

/** Entries that cannot each end in one object: a folder's name as a key, the same file twice, two files for one key. */
export function refuseBadEntries(entries: readonly JobEntry[]): void {
  const byKey = new Map<string, string>();
  const problems: string[] = [];
  for (const e of entries) {
    const first = byKey.get(e.key);
    // A folder's name as a key: the next file to it would replace the object without a word.
    if (!e.key || e.key.endsWith('/')) problems.push(`${e.file} → ${JSON.stringify(e.key)}: a key must name an object, not a folder`);
    else if (first === e.file) problems.push(`${e.file} is listed twice for ${JSON.stringify(e.key)}`);
    else if (first !== undefined) problems.push(`${JSON.stringify(e.key)}: ${first} and ${e.file} (two files cannot go to one key: one object would survive, and each run would send both again)`);
    else byKey.set(e.key, e.file);
  }
  if (problems.length) throw new InvalidOptionsError(`entries: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? `; and ${problems.length - 5} more` : ''}`);
}

/** A file's failure as its outcome, with its error's stable code (anything untyped is UNEXPECTED). */
export function failedOutcome(base: Pick<FileOutcome, 'file' | 'key' | 'size'>, err: unknown, how: string, bytesSent: number): FileOutcome {
  const e = err instanceof PartwiseError ? err : new PartwiseError('UNEXPECTED', (err as Error)?.message ?? String(err));
  const s3Code = s3CodeOf(err);
  return { ...base, status: 'failed', how, bytesSent, error: { code: e.code, message: e.message, ...(s3Code ? { s3Code } : {}) } };
}

/**
 * The object settings a file goes up with, as a stable string (the job journal compares them). The
 * Object Lock date is not in it: a later one extends the retention of the same object.
 */
export function settingsKey(o: FolderJobOptions, file: string): string {
  const { objectLockRetainUntil: _until, ...s } = objectSettings(o, file);
  return settingsDiff({}, s).join('\n');
}
