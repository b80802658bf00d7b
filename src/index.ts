/**
 * partwise: resumable S3 multipart uploads that verify every part before trusting it.
 */
import { Upload } from './upload/engine.ts';
import { StreamUpload, type StreamUploadOptions } from './jobs/stream-upload.ts';
import type { EngineOptions } from './upload/options.ts';
import { SdkS3Port, type ClientOptions } from './s3/adapter.ts';
import type { S3Client } from './s3/adapter.ts';

export type UploadOptions = Omit<EngineOptions, 's3'> &
  ClientOptions & {
    /** your own client; when absent one is built from the SDK's standard chain (env, profiles, AWS_ENDPOINT_URL) */
    client?: S3Client;
  };

/** Creates an upload; subscribe to its events, then `await upload.done()`. */
export function createUpload(options: UploadOptions): Upload {
  const { client, endpoint, region, forcePathStyle, credentials, requestTimeoutMs, ...rest } = options;
  return new Upload({ ...rest, s3: new SdkS3Port(client ?? { lazy: clientOptions({ endpoint, region, forcePathStyle, credentials, requestTimeoutMs }) }) });
}

/** The client options that were given (exactOptionalPropertyTypes: no undefined members). */
function clientOptions(o: { [K in keyof ClientOptions]?: ClientOptions[K] | undefined }): ClientOptions {
  const out: ClientOptions = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** Creates an upload of a stream (read once, not resumable; aborted on failure). */
export function createStreamUpload(options: Omit<StreamUploadOptions, 's3'> & ClientOptions & { client?: S3Client }): StreamUpload {
  const { client, endpoint, region, forcePathStyle, credentials, requestTimeoutMs, ...rest } = options;
  return new StreamUpload({ ...rest, s3: new SdkS3Port(client ?? { lazy: clientOptions({ endpoint, region, forcePathStyle, credentials, requestTimeoutMs }) }) });
}

/** Uploads (or resumes) a file and resolves when the object is complete and verified. */
export function uploadFile(options: UploadOptions) {
  return createUpload(options).done();
}

export { Upload, type StatusReport } from './upload/engine.ts';
export type { EngineOptions } from './upload/options.ts';
export { SdkS3Port, createS3Client, type ClientOptions } from './s3/adapter.ts';
export type { S3Port, RequestOptions } from './s3/port.ts';
export * from './core/errors.ts';
export { planParts, DEFAULT_PART_SIZE, S3_MIN_PART_SIZE, S3_MAX_PART_SIZE, S3_MAX_PARTS, S3_MAX_OBJECT_SIZE, KiB, MiB, GiB, type PartPlan } from './core/planner.ts';
export { reconcile, type ReconcileReport, type PartVerdict, type PartStatus, type RemotePart } from './core/reconcile.ts';
export { DEFAULT_RETRY_POLICY, decideRetry, classifyError, type RetryPolicy } from './core/retry.ts';
export { CHECKSUM_ALGORITHMS, DEFAULT_CHECKSUM_ALGORITHM, type ChecksumAlgorithm, type ChecksumType } from './core/checksums.ts';
export { defaultStateDir, type JournalData } from './local/journal.ts';
export { RateLimiter } from './core/rate-limit.ts';
export { StreamUpload, type StreamUploadOptions } from './jobs/stream-upload.ts';
export { FolderJob, listFolder, type FolderJobOptions, type JobEntry, type JobSummary, type FileOutcome, type JobProgress, type JobEvents } from './jobs/folder-job.ts';
export type { UploadEvents, UploadResult, ProgressSnapshot, PlanEvent, VerificationLevel, WarningCode, WarningEvent, Phase, DiscoveryReport, CandidateReport, CandidateStatus } from './upload/events.ts';
export { planSharedUpload, SharedWorker, finishSharedUpload, abandonSharedUpload, type SharedOptions, type WorkerOptions, type FinishOptions, type PlanResult, type WorkerResult, type FinishResult } from './jobs/shared-upload.ts';
export { rangeOf, shardOf, indexFromEnv, parseIndex, combineCrcs, planKey, receiptKey, type SharedPlan, type Receipt, type ReceiptPart } from './core/shared-plan.ts';
