/**
 * Layer s3/: the S3 wire. This port (the operations the engine needs, and their shapes) is all
 * the other layers talk to; adapter.ts maps it onto the AWS SDK (with client.ts, which loads the SDK
 * and builds its client, the only code that imports it); list-parts.ts pages ListParts. It may
 * import core/.
 */
import type { PartBody } from '../core/part-body.ts';
import type { ChecksumAlgorithm, ChecksumType } from '../core/checksums.ts';
import type { ObjectSettings } from '../core/object-settings.ts';
import type { RemotePart } from '../core/reconcile.ts';

/**
 * Parameters some S3 calls must carry. SSE-C and RequestPayer/ExpectedBucketOwner go on every
 * call that accepts them (ListParts included: S3 needs the SSE-C key there for checksum uploads).
 */
export interface RequestOptions {
  requestPayer?: 'requester';
  expectedBucketOwner?: string;
  /** SSE-C: a 32-byte AES-256 key. Never written to the journal or logs. */
  sseCustomerKey?: Uint8Array;
  /** SSE-KMS ('aws:kms' / 'aws:kms:dsse') or SSE-S3 ('AES256') at create */
  serverSideEncryption?: 'AES256' | 'aws:kms' | 'aws:kms:dsse';
  sseKmsKeyId?: string;
}

export interface ObjectRef {
  bucket: string;
  key: string;
}

export interface UploadRef extends ObjectRef {
  uploadId: string;
}

export interface CreateInput extends ObjectRef {
  checksumAlgorithm?: ChecksumAlgorithm;
  checksumType?: ChecksumType;
  settings?: ObjectSettings;
}

export interface CreateOutput {
  uploadId: string;
  /** encryption the server applied (aws:kms, AES256, …) */
  serverSideEncryption?: string;
  sseCustomerAlgorithm?: string;
  abortDate?: Date;
}

export type { PartBody } from '../core/part-body.ts';

export interface UploadPartInput extends UploadRef {
  partNumber: number;
  body: PartBody;
  /** base64 MD5 of the body; left out when the checksum is the evidence */
  contentMd5?: string;
  checksum?: { algorithm: ChecksumAlgorithm; value: string };
  /** called as body bytes are handed to the HTTP layer */
  onBytesSent?: (n: number) => void;
  /** the bandwidth cap: resolves when the next slice of `n` bytes may be handed over */
  pace?: (n: number) => Promise<void>;
}

export interface UploadPartOutput {
  etag: string;
  /** the server's echo of the part checksum, when it sends one */
  checksum?: string;
  serverSideEncryption?: string;
  sseCustomerAlgorithm?: string;
}

/** A whole small object in one request, with its checksum (the server checks it on arrival). */
export interface PutInput extends ObjectRef {
  body: PartBody;
  contentMd5?: string;
  checksum?: { algorithm: ChecksumAlgorithm; value: string };
  settings?: ObjectSettings;
  /** If-None-Match: * */
  ifNoneMatch?: boolean;
  onBytesSent?: (n: number) => void;
  pace?: (n: number) => Promise<void>;
}

export interface ListPartsInput extends UploadRef {
  maxParts: number;
  partNumberMarker?: number;
}

export interface ListPartsOutput {
  parts: RemotePart[];
  isTruncated: boolean;
  nextPartNumberMarker?: number;
  checksumAlgorithm?: string;
  checksumType?: string;
  /** when a lifecycle rule will abort the upload (x-amz-abort-date), if one applies */
  abortDate?: Date;
}

export interface CompleteInput extends UploadRef {
  parts: { partNumber: number; etag: string; checksum?: string }[];
  checksumAlgorithm?: ChecksumAlgorithm;
  checksumType?: ChecksumType;
  /** whole-object value, sent so S3 checks it (FULL_OBJECT only) */
  fullObjectChecksum?: string;
  objectSize: number;
  /** If-None-Match: *: fail (412) rather than replace an object at the key */
  ifNoneMatch?: boolean;
}

export interface CompleteOutput {
  etag?: string;
  checksum?: string;
  checksumType?: string;
}

export interface HeadInput extends ObjectRef {
  /** HEAD one part of a multipart object: its size, and the object's part count */
  partNumber?: number;
}

export interface HeadOutput {
  /** the object's size, or the part's when partNumber was given */
  size: number;
  /** number of parts of a multipart object (only when partNumber was given) */
  partsCount?: number;
  etag: string;
  checksums: Partial<Record<ChecksumAlgorithm, string>>;
  checksumType?: string;
  serverSideEncryption?: string;
  sseCustomerAlgorithm?: string;
  /** the KMS key the object is encrypted with, as the server names it (usually an ARN) */
  sseKmsKeyId?: string;
  /** what HEAD shows of the object's settings (absent: the server sent nothing for it) */
  contentType?: string;
  cacheControl?: string;
  contentEncoding?: string;
  contentDisposition?: string;
  metadata?: Record<string, string>;
  storageClass?: string;
  objectLockMode?: string;
  objectLockRetainUntil?: Date;
  legalHold?: boolean;
}

/** A grant of an object's ACL: to a user by id, or to a group by URI. */
export interface AclGrant {
  grantee: { type: 'user'; id: string } | { type: 'group'; uri: string } | { type: 'other'; text: string };
  permission: string;
}

export interface AclOutput {
  ownerId?: string;
  grants: AclGrant[];
}

export interface RetentionInput extends ObjectRef {
  mode: 'GOVERNANCE' | 'COMPLIANCE';
  retainUntil: Date;
}

export interface AttributesInput extends ObjectRef {
  maxParts?: number;
  partNumberMarker?: number;
}

export interface AttributesOutput {
  /** whole-object checksum (a COMPOSITE value may come without its "-N") */
  checksums: Partial<Record<ChecksumAlgorithm, string>>;
  checksumType?: string;
  /** listed only when an additional checksum was applied */
  parts: { partNumber: number; size: number; checksum?: string }[];
  partsCount?: number;
  isTruncated: boolean;
  nextPartNumberMarker?: number;
  objectSize?: number;
}

export interface IncompleteUpload {
  key: string;
  uploadId: string;
  initiated?: Date;
}

export interface ListUploadsInput {
  bucket: string;
  prefix?: string;
  keyMarker?: string;
  uploadIdMarker?: string;
}

export interface ListUploadsOutput {
  uploads: IncompleteUpload[];
  isTruncated: boolean;
  nextKeyMarker?: string;
  nextUploadIdMarker?: string;
}

/** The S3 operations the engine needs. Errors are thrown as S3RequestError. */
export interface S3Port {
  /** where requests go (for the journal's identity and messages) */
  describeEndpoint(): Promise<string>;
  /** how many attempts the underlying client makes per call (so engine retries don't multiply) */
  clientMaxAttempts(): Promise<number>;
  createMultipartUpload(input: CreateInput, req: RequestOptions, signal?: AbortSignal): Promise<CreateOutput>;
  uploadPart(input: UploadPartInput, req: RequestOptions, signal?: AbortSignal): Promise<UploadPartOutput>;
  /** answers like UploadPart: the ETag and the server's checksum echo */
  putObject(input: PutInput, req: RequestOptions, signal?: AbortSignal): Promise<UploadPartOutput>;
  listParts(input: ListPartsInput, req: RequestOptions, signal?: AbortSignal): Promise<ListPartsOutput>;
  completeMultipartUpload(input: CompleteInput, req: RequestOptions, signal?: AbortSignal): Promise<CompleteOutput>;
  abortMultipartUpload(input: UploadRef, req: RequestOptions, signal?: AbortSignal): Promise<void>;
  /** undefined when the object does not exist */
  headObject(input: HeadInput, req: RequestOptions, signal?: AbortSignal): Promise<HeadOutput | undefined>;
  listMultipartUploads(input: ListUploadsInput, req: RequestOptions, signal?: AbortSignal): Promise<ListUploadsOutput>;
  getObjectAttributes(input: AttributesInput, req: RequestOptions, signal?: AbortSignal): Promise<AttributesOutput>;
  /**
   * Reading back what HEAD does not show, to prove an object carries the settings asked for, and
   * extending a retention date. Optional: a port without them cannot prove those settings, so
   * nothing already on the server is taken as a run's that asks for them.
   */
  getObjectTagging?(input: ObjectRef, req: RequestOptions, signal?: AbortSignal): Promise<Record<string, string>>;
  getObjectAcl?(input: ObjectRef, req: RequestOptions, signal?: AbortSignal): Promise<AclOutput>;
  putObjectRetention?(input: RetentionInput, req: RequestOptions, signal?: AbortSignal): Promise<void>;
  /**
   * A small object's bytes (a shared upload's plan or a receipt), undefined when there is none;
   * and removing one. Optional: a port without them cannot coordinate workers through the bucket.
   */
  getObject?(input: ObjectRef, req: RequestOptions, signal?: AbortSignal): Promise<{ body: Buffer; etag: string } | undefined>;
  deleteObject?(input: ObjectRef, req: RequestOptions, signal?: AbortSignal): Promise<void>;
}
