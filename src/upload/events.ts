/**
 * The public shapes an upload emits and returns: events, the result, warning codes. Programs
 * switch on `code`s, so warnings are a closed union like error codes.
 */
import type { EventEmitter } from 'eventemitter3';
import type { ChecksumAlgorithm } from '../core/checksums.ts';
import type { PartwiseError } from '../core/errors.ts';
import type { ReconcileReport, VerificationBasis } from '../core/reconcile.ts';
import type { VerificationLevel } from '../core/verify-object.ts';
import type { ConcurrencyChange } from '../core/throttle.ts';

export type { ConcurrencyChange } from '../core/throttle.ts';

/** `ours-empty`: the upload this machine created and was stopped before journaling; it has no parts, so it is aborted (not adopted: nothing to keep, and its checksum settings cannot be read back). */
export type CandidateStatus = 'match' | 'stale' | 'expired' | 'unprovable' | 'ours-empty';

export interface CandidateReport {
  uploadId: string;
  initiated?: Date;
  abortDate?: Date;
  parts: number;
  status: CandidateStatus;
  /** why, in words: what proved it, or what ruled it out */
  why: string;
  partSize?: number;
}

export interface DiscoveryReport {
  key: string;
  candidates: CandidateReport[];
  /** the upload adopted (or, for status, that would be) */
  chosen?: string;
  /** empty uploads this machine created and was stopped before journaling: aborted (status: would be) */
  aborted?: string[];
  why: string;
}

export type Phase = 'prepare' | 'verify' | 'upload' | 'complete' | 'done';

export type WarningCode =
  /** the server asked to slow down: the shared concurrency was lowered */
  | 'SLOW_DOWN'
  /** an upload of this key holds the file's parts, but the run asks for object settings it cannot be checked for */
  | 'NOT_ADOPTED'
  /** a stream was longer than the upper bound given for it (max-size) */
  | 'SIZE_NOT_EXPECTED'
  /** a stream's multipart upload could not be aborted after a failure: the message gives the command */
  | 'ABORT_FAILED'
  /** folder job: a file changed since an interrupted run; its old upload is aborted and it starts over */
  | 'FILE_CHANGED'
  /** the file has the same size and times but another device or inode (a remount): every part is verified from it */
  | 'SOURCE_MOVED'
  /** a resume keeps the upload's own part size, not the one asked for */
  | 'PART_SIZE_KEPT'
  /** the server refused the FULL_OBJECT checksum type the run chose (R2 for CRC32/CRC32C): the upload is COMPOSITE */
  | 'CHECKSUM_TYPE_CHANGED'
  /** the server refuses additional checksums (B2) and the run did not choose one: the upload has none, MD5 ETags are the evidence */
  | 'CHECKSUM_REFUSED'
  /** a resume keeps the upload's own checksum algorithm */
  | 'CHECKSUM_KEPT'
  /** ListParts stopped advancing its marker; unlisted parts are sent again */
  | 'LIST_PARTS_STALLED'
  /** the server's part ETags are not MD5s (SSE-KMS, SSE-C, or a non-MD5 format) */
  | 'ETAG_NOT_MD5'
  /** Complete said BadDigest/InvalidPart: every part is verified again and the bad ones resent */
  | 'REPAIR'
  /** Complete failed, but the object on the server is proven to be this file */
  | 'COMPLETE_RECOVERED'
  /** a previous run completed the upload; the object was proven to be this file, nothing was sent */
  | 'ALREADY_COMPLETE'
  /** the upload was completed by another process while this run sent parts; the object was proven to be this file */
  | 'COMPLETED_ELSEWHERE'
  /** the object could not be read back (no s3:GetObject); Complete's own response was judged */
  | 'NO_READ_ACCESS'
  /** an unreadable journal was moved aside (--fresh) and kept for inspection */
  | 'JOURNAL_SET_ASIDE'
  /** uploads of the key could not be listed (no s3:ListBucketMultipartUploads): none adopted */
  | 'DISCOVERY_SKIPPED'
  /** folder job: a failure every file would meet alike (a missing bucket, bad credentials): no more files started */
  | 'JOB_STOPPED'
  /** folder job: a file not sent this run still has an upload open from an interrupted run: the message gives the command */
  | 'UPLOAD_LEFT';

export interface WarningEvent {
  code: WarningCode;
  message: string;
}

export interface PlanEvent {
  bucket: string;
  key: string;
  uploadId: string;
  fileSize: number;
  partSize: number;
  partCount: number;
  checksumAlgorithm: ChecksumAlgorithm | null;
  resumed: boolean;
  /** set when the requested part size was raised to fit 10,000 parts */
  partSizeAdjustedFrom?: number;
  /** set when no journal existed and an upload found on the server was proven to be this file's */
  adopted?: boolean;
  journalPath: string;
}

export type { VerificationLevel } from '../core/verify-object.ts';

export interface UploadResult {
  bucket: string;
  key: string;
  uploadId: string;
  etag: string;
  size: number;
  partCount: number;
  partsUploaded: number;
  partsSkipped: number;
  bytesSent: number;
  retries: number;
  resumed: boolean;
  /** true when a previous run had completed the upload and this one only proved it */
  alreadyComplete: boolean;
  checksumAlgorithm: ChecksumAlgorithm | null;
  /** the object's checksum as the server reports it, when it reports one */
  checksum?: string;
  checksumType?: string;
  /** how strongly the object on the server is known to equal the local file */
  verification: { level: VerificationLevel; checks: string[] };
  reconcile?: ReconcileReport;
  durationMs: number;
}

export interface ProgressSnapshot {
  phase: Phase;
  totalBytes: number;
  partsTotal: number;
  /** verification phase: bytes of the local file hashed so far / to hash */
  bytesHashed: number;
  bytesToHash: number;
  /** parts the server already held and that were verified, so not sent again */
  partsSkipped: number;
  bytesSkipped: number;
  /** this run: body bytes handed to the network for parts in flight or done (a retried part restarts at 0) */
  bytesSent: number;
  /** this run: bytes of parts the server acknowledged */
  bytesAcknowledged: number;
  partsUploaded: number;
  partsInFlight: number;
  /** parts allowed in flight now (searched, fixed, or lowered by a SlowDown); 0 before the first `concurrency` event */
  concurrency: number;
  retries: number;
  /** (skipped + acknowledged) / total, 0..1, never above 1 */
  fractionDone: number;
  /** acknowledged bytes per second since the upload phase began */
  bytesPerSecond: number;
  elapsedMs: number;
}

export interface UploadEvents {
  plan: (e: PlanEvent) => void;
  phase: (e: { phase: Phase }) => void;
  /** no journal: the uploads of this key found on the server, and which (if any) was adopted */
  discover: (report: DiscoveryReport) => void;
  reconcile: (report: ReconcileReport) => void;
  'verify-progress': (e: { bytesHashed: number; bytesToHash: number; partsHashed: number; partsToHash: number }) => void;
  'part-start': (e: { partNumber: number; size: number; attempt: number }) => void;
  /** body bytes of a part handed to the network (in slices) */
  'part-sent': (e: { partNumber: number; bytes: number }) => void;
  'part-done': (e: { partNumber: number; size: number; etag: string; attempts: number }) => void;
  'part-retry': (e: { partNumber: number; attempt: number; delayMs: number; error: string; throttled: boolean }) => void;
  /** a part gave up (its error ends the run) */
  'part-failed': (e: { partNumber: number; error: string }) => void;
  'part-skip': (e: { partNumber: number; size: number; basis: VerificationBasis[] }) => void;
  /** the parts allowed in flight: the level at the start of sending, then each change and why */
  concurrency: (e: ConcurrencyChange) => void;
  progress: (s: ProgressSnapshot) => void;
  warning: (e: WarningEvent) => void;
  complete: (r: UploadResult) => void;
  error: (err: PartwiseError) => void;
}

/** What phases need of the upload's emitter: a typed emit, nothing else. */
export type Emit = EventEmitter<UploadEvents>['emit'];
