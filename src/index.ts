/**
 * partwise: resumable S3 multipart uploads that verify every part before trusting it.
 */
import { Upload } from './engine.ts';
import type { EngineOptions } from './options.ts';
import { SdkS3Port, createS3Client, type ClientOptions } from './s3-adapter.ts';
import type { S3Client } from '@aws-sdk/client-s3';

export type UploadOptions = Omit<EngineOptions, 's3'> &
  ClientOptions & {
    /** your own client; when absent one is built from the SDK's standard chain (env, profiles, AWS_ENDPOINT_URL) */
    client?: S3Client;
  };

/** Creates an upload; subscribe to its events, then `await upload.done()`. */
export function createUpload(options: UploadOptions): Upload {
  const { client, endpoint, region, forcePathStyle, credentials, requestTimeoutMs, ...rest } = options;
  const clientOpts: ClientOptions = {};
  if (endpoint !== undefined) clientOpts.endpoint = endpoint;
  if (region !== undefined) clientOpts.region = region;
  if (forcePathStyle !== undefined) clientOpts.forcePathStyle = forcePathStyle;
  if (credentials !== undefined) clientOpts.credentials = credentials;
  if (requestTimeoutMs !== undefined) clientOpts.requestTimeoutMs = requestTimeoutMs;
  return new Upload({ ...rest, s3: new SdkS3Port(client ?? createS3Client(clientOpts)) });
}

/** Uploads (or resumes) a file and resolves when the object is complete and verified. */
export function uploadFile(options: UploadOptions) {
  return createUpload(options).done();
}

export { Upload, type StatusReport } from './engine.ts';
export type { EngineOptions } from './options.ts';
export { SdkS3Port, createS3Client, type ClientOptions } from './s3-adapter.ts';
export type { S3Port, RequestOptions } from './s3-port.ts';
export * from './errors.ts';
export { planParts, DEFAULT_PART_SIZE, S3_MIN_PART_SIZE, S3_MAX_PART_SIZE, S3_MAX_PARTS, S3_MAX_OBJECT_SIZE, KiB, MiB, GiB, type PartPlan } from './planner.ts';
export { reconcile, type ReconcileReport, type PartVerdict, type PartStatus, type RemotePart } from './reconcile.ts';
export { DEFAULT_RETRY_POLICY, decideRetry, classifyError, type RetryPolicy } from './retry.ts';
export { CHECKSUM_ALGORITHMS, DEFAULT_CHECKSUM_ALGORITHM, type ChecksumAlgorithm, type ChecksumType } from './checksums.ts';
export { defaultStateDir, type JournalData } from './journal.ts';
export { RateLimiter } from './rate-limit.ts';
export type { UploadEvents, UploadResult, ProgressSnapshot, PlanEvent, VerificationLevel, WarningCode, WarningEvent, Phase } from './events.ts';
