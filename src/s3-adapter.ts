/**
 * The only module that imports @aws-sdk/client-s3. It maps the S3Port onto SDK commands and
 * normalizes every failure into an S3RequestError.
 */
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectAttributesCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  S3Client,
  UploadPartCommand,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { CHECKSUM_ALGORITHMS, type ChecksumAlgorithm } from './checksums.ts';
import { S3RequestError } from './errors.ts';
import type { RemotePart } from './reconcile.ts';
import type { AttributesOutput, HeadOutput, ListUploadsOutput, RequestOptions, S3Port } from './s3-port.ts';

export interface ClientOptions {
  endpoint?: string;
  region?: string;
  /** path-style URLs (http://host/bucket/key); default: on when an endpoint is set, as most non-AWS servers need */
  forcePathStyle?: boolean;
  credentials?: S3ClientConfig['credentials'];
  /**
   * A request whose socket stays silent this long fails (and is retried): a stalled server must not
   * hang an upload. Default 60 s.
   */
  requestTimeoutMs?: number;
}

/**
 * Builds a client from the SDK's standard chain (env, shared config and profiles, AWS_ENDPOINT_URL)
 * with two changes: checksums only when an operation requires one (partwise precomputes its own,
 * and third-party servers reject the SDK's defaults), and no SDK-level retries (the engine retries
 * each request itself, with a fresh body, so attempts never multiply).
 */
export function createS3Client(opts: ClientOptions = {}): S3Client {
  const endpoint = opts.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
  const config: S3ClientConfig = {
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
    forcePathStyle: opts.forcePathStyle ?? endpoint !== undefined,
    // Without a logger the SDK prints to the console when a streaming request fails; the engine
    // reports every failure itself, as a typed error or a part-retry event.
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {} },
    // Without throwOnRequestTimeout the SDK only logs a warning and keeps waiting.
    requestHandler: { requestTimeout: opts.requestTimeoutMs ?? 60_000, connectionTimeout: Math.min(opts.requestTimeoutMs ?? 10_000, 10_000), throwOnRequestTimeout: true },
  };
  if (endpoint) config.endpoint = endpoint;
  if (opts.region) config.region = opts.region;
  if (opts.credentials) config.credentials = opts.credentials;
  return new S3Client(config);
}

const checksumField = (alg: ChecksumAlgorithm) => `Checksum${alg}` as const;

function commonParams(req: RequestOptions) {
  const p: Record<string, unknown> = {};
  if (req.requestPayer) p.RequestPayer = req.requestPayer;
  if (req.expectedBucketOwner) p.ExpectedBucketOwner = req.expectedBucketOwner;
  return p;
}

function sseCParams(req: RequestOptions) {
  if (!req.sseCustomerKey) return {};
  // The SDK's SSE-C middleware decodes a valid base64 key and adds the key MD5 header itself.
  return { SSECustomerAlgorithm: 'AES256', SSECustomerKey: Buffer.from(req.sseCustomerKey).toString('base64') };
}

/** Bytes go out in 1 MiB slices: small slices cost RGW and the client CPU; the count feeds progress. */
function countingBody(body: Buffer, onBytes?: (n: number) => void): Readable | Buffer {
  if (!onBytes || body.length === 0) return body;
  const SLICE = 1024 * 1024;
  function* slices() {
    for (let off = 0; off < body.length; off += SLICE) {
      const s = body.subarray(off, Math.min(body.length, off + SLICE));
      onBytes!(s.length);
      yield s;
    }
  }
  return Readable.from(slices(), { objectMode: false });
}

const NETWORK_CODE = /^E[A-Z_]+$|^UND_ERR/;

export function toS3RequestError(operation: string, err: unknown): S3RequestError {
  if (err instanceof S3RequestError) return err;
  const e = (err ?? {}) as {
    name?: string;
    code?: string;
    Code?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number; requestId?: string };
    $response?: { statusCode?: number };
  };
  const status = e.$metadata?.httpStatusCode ?? e.$response?.statusCode;
  let code = e.Code ?? e.name ?? 'UnknownError';
  if ((code === 'Error' || code === 'UnknownError' || code === 'TypeError') && e.code && NETWORK_CODE.test(e.code)) code = e.code;
  if (code === 'Error' && e.message === 'socket hang up') code = 'ECONNRESET';
  const args: ConstructorParameters<typeof S3RequestError>[0] = { operation, s3Code: code, cause: err };
  if (status !== undefined) args.httpStatus = status;
  if (e.$metadata?.requestId) args.requestId = e.$metadata.requestId;
  if (e.message && e.message !== code) args.message = e.message;
  return new S3RequestError(args);
}

export class SdkS3Port implements S3Port {
  constructor(readonly client: S3Client) {}

  /**
   * The same string for the same destination however the client was configured (an explicit
   * endpoint, or AWS_ENDPOINT_URL[_S3], which the SDK applies without exposing it in its config),
   * because the journal's identity depends on it.
   */
  async describeEndpoint(): Promise<string> {
    const ep = this.client.config.endpoint ? await this.client.config.endpoint() : undefined;
    if (ep) return `${ep.protocol}//${ep.hostname}${ep.port ? `:${ep.port}` : ''}${ep.path && ep.path !== '/' ? ep.path : ''}`;
    const fromEnv = process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
    if (fromEnv) return fromEnv.replace(/\/+$/, '');
    return `aws:${await this.client.config.region()}`;
  }

  async clientMaxAttempts(): Promise<number> {
    try {
      return await this.client.config.maxAttempts();
    } catch {
      return 3;
    }
  }

  private async send<T>(operation: string, command: object, signal?: AbortSignal): Promise<T> {
    try {
      // Typed loosely on purpose: each caller narrows the output to the fields it reads.
      return (await this.client.send(command as never, signal ? { abortSignal: signal } : {})) as T;
    } catch (err) {
      throw toS3RequestError(operation, err);
    }
  }

  async createMultipartUpload(input: Parameters<S3Port['createMultipartUpload']>[0], req: RequestOptions, signal?: AbortSignal) {
    const params: Record<string, unknown> = { Bucket: input.bucket, Key: input.key, ...commonParams(req), ...sseCParams(req) };
    if (input.checksumAlgorithm) params.ChecksumAlgorithm = input.checksumAlgorithm;
    if (input.checksumType) params.ChecksumType = input.checksumType;
    if (input.contentType) params.ContentType = input.contentType;
    if (input.metadata) params.Metadata = input.metadata;
    if (req.serverSideEncryption) params.ServerSideEncryption = req.serverSideEncryption;
    if (req.sseKmsKeyId) params.SSEKMSKeyId = req.sseKmsKeyId;
    const out = await this.send<{ UploadId?: string; ServerSideEncryption?: string; SSECustomerAlgorithm?: string; AbortDate?: Date }>(
      'CreateMultipartUpload',
      new CreateMultipartUploadCommand(params as never),
      signal,
    );
    if (!out.UploadId) throw new S3RequestError({ operation: 'CreateMultipartUpload', s3Code: 'MissingUploadId', message: 'the response has no UploadId' });
    return {
      uploadId: out.UploadId,
      ...(out.ServerSideEncryption ? { serverSideEncryption: out.ServerSideEncryption } : {}),
      ...(out.SSECustomerAlgorithm ? { sseCustomerAlgorithm: out.SSECustomerAlgorithm } : {}),
      ...(out.AbortDate ? { abortDate: out.AbortDate } : {}),
    };
  }

  async uploadPart(input: Parameters<S3Port['uploadPart']>[0], req: RequestOptions, signal?: AbortSignal) {
    const params: Record<string, unknown> = {
      Bucket: input.bucket,
      Key: input.key,
      UploadId: input.uploadId,
      PartNumber: input.partNumber,
      Body: countingBody(input.body, input.onBytesSent),
      ContentLength: input.body.length,
      ContentMD5: input.contentMd5,
      ...commonParams(req),
      ...sseCParams(req),
    };
    if (input.checksum) {
      // Value *and* algorithm: with the value alone RGW skips validating CRC64NVME (rgw-tentacle.md §5),
      // and with both the SDK sends the header as is, with no trailer and no recomputation.
      params.ChecksumAlgorithm = input.checksum.algorithm;
      params[checksumField(input.checksum.algorithm)] = input.checksum.value;
    }
    const out = await this.send<Record<string, string | undefined>>('UploadPart', new UploadPartCommand(params as never), signal);
    if (!out.ETag) throw new S3RequestError({ operation: 'UploadPart', s3Code: 'MissingETag', message: 'the response has no ETag' });
    const echo = input.checksum ? out[checksumField(input.checksum.algorithm)] : undefined;
    return {
      etag: out.ETag,
      ...(echo ? { checksum: echo } : {}),
      ...(out.ServerSideEncryption ? { serverSideEncryption: out.ServerSideEncryption } : {}),
      ...(out.SSECustomerAlgorithm ? { sseCustomerAlgorithm: out.SSECustomerAlgorithm } : {}),
    };
  }

  async listParts(input: Parameters<S3Port['listParts']>[0], req: RequestOptions, signal?: AbortSignal) {
    const params: Record<string, unknown> = {
      Bucket: input.bucket,
      Key: input.key,
      UploadId: input.uploadId,
      MaxParts: input.maxParts,
      ...commonParams(req),
      ...sseCParams(req),
    };
    if (input.partNumberMarker !== undefined) params.PartNumberMarker = String(input.partNumberMarker);
    type Part = { PartNumber?: number; ETag?: string; Size?: number } & Record<string, unknown>;
    const out = await this.send<{ Parts?: Part[]; IsTruncated?: boolean; NextPartNumberMarker?: string; ChecksumAlgorithm?: string }>(
      'ListParts',
      new ListPartsCommand(params as never),
      signal,
    ).catch((err: unknown) => {
      // RGW answers ListParts on an unknown, aborted or completed upload with NoSuchKey; S3 says NoSuchUpload.
      if (err instanceof S3RequestError && err.s3Code === 'NoSuchKey') {
        throw new S3RequestError({ operation: 'ListParts', s3Code: 'NoSuchUpload', ...(err.httpStatus ? { httpStatus: err.httpStatus } : {}), message: 'the server answered NoSuchKey', cause: err });
      }
      throw err;
    });
    const parts: RemotePart[] = (out.Parts ?? []).map((p) => {
      const rp: RemotePart = { partNumber: p.PartNumber ?? -1, size: p.Size ?? -1, etag: p.ETag ?? '' };
      for (const alg of CHECKSUM_ALGORITHMS) {
        const v = p[checksumField(alg)];
        if (typeof v === 'string' && v) rp.checksum = v;
      }
      return rp;
    });
    const next = out.NextPartNumberMarker !== undefined ? Number(out.NextPartNumberMarker) : undefined;
    return {
      parts,
      isTruncated: out.IsTruncated === true,
      ...(next !== undefined && Number.isFinite(next) ? { nextPartNumberMarker: next } : {}),
      ...(out.ChecksumAlgorithm ? { checksumAlgorithm: out.ChecksumAlgorithm } : {}),
    };
  }

  async completeMultipartUpload(input: Parameters<S3Port['completeMultipartUpload']>[0], req: RequestOptions, signal?: AbortSignal) {
    const alg = input.checksumAlgorithm;
    const params: Record<string, unknown> = {
      Bucket: input.bucket,
      Key: input.key,
      UploadId: input.uploadId,
      MultipartUpload: {
        Parts: input.parts.map((p) => {
          const part: Record<string, unknown> = { PartNumber: p.partNumber, ETag: p.etag };
          if (alg && p.checksum) part[checksumField(alg)] = p.checksum;
          return part;
        }),
      },
      MpuObjectSize: input.objectSize,
      ...commonParams(req),
      ...sseCParams(req),
    };
    if (alg && input.checksumType) params.ChecksumType = input.checksumType;
    if (alg && input.fullObjectChecksum) params[checksumField(alg)] = input.fullObjectChecksum;
    const out = await this.send<Record<string, string | undefined>>('CompleteMultipartUpload', new CompleteMultipartUploadCommand(params as never), signal);
    const checksum = alg ? out[checksumField(alg)] : undefined;
    return {
      ...(out.ETag ? { etag: out.ETag } : {}),
      ...(checksum ? { checksum } : {}),
      ...(out.ChecksumType ? { checksumType: out.ChecksumType } : {}),
    };
  }

  async abortMultipartUpload(input: Parameters<S3Port['abortMultipartUpload']>[0], req: RequestOptions, signal?: AbortSignal) {
    await this.send('AbortMultipartUpload', new AbortMultipartUploadCommand({ Bucket: input.bucket, Key: input.key, UploadId: input.uploadId, ...commonParams(req) } as never), signal);
  }

  async headObject(input: Parameters<S3Port['headObject']>[0], req: RequestOptions, signal?: AbortSignal): Promise<HeadOutput | undefined> {
    try {
      const out = await this.send<Record<string, unknown>>(
        'HeadObject',
        new HeadObjectCommand({
          Bucket: input.bucket,
          Key: input.key,
          ChecksumMode: 'ENABLED',
          ...(input.partNumber !== undefined ? { PartNumber: input.partNumber } : {}),
          ...commonParams(req),
          ...sseCParams(req),
        } as never),
        signal,
      );
      const checksums: HeadOutput['checksums'] = {};
      for (const alg of CHECKSUM_ALGORITHMS) {
        const v = out[checksumField(alg)];
        if (typeof v === 'string' && v) checksums[alg] = v;
      }
      const head: HeadOutput = { size: Number(out.ContentLength ?? -1), etag: String(out.ETag ?? ''), checksums };
      if (typeof out.ChecksumType === 'string') head.checksumType = out.ChecksumType;
      if (typeof out.PartsCount === 'number') head.partsCount = out.PartsCount;
      if (typeof out.ServerSideEncryption === 'string') head.serverSideEncryption = out.ServerSideEncryption;
      if (typeof out.SSECustomerAlgorithm === 'string') head.sseCustomerAlgorithm = out.SSECustomerAlgorithm;
      return head;
    } catch (err) {
      if (err instanceof S3RequestError && (err.httpStatus === 404 || err.s3Code === 'NotFound' || err.s3Code === 'NoSuchKey')) return undefined;
      throw err;
    }
  }

  async listMultipartUploads(input: Parameters<S3Port['listMultipartUploads']>[0], req: RequestOptions, signal?: AbortSignal): Promise<ListUploadsOutput> {
    const params: Record<string, unknown> = { Bucket: input.bucket, ...(req.expectedBucketOwner ? { ExpectedBucketOwner: req.expectedBucketOwner } : {}) };
    if (req.requestPayer) params.RequestPayer = req.requestPayer;
    if (input.prefix) params.Prefix = input.prefix;
    if (input.keyMarker) params.KeyMarker = input.keyMarker;
    if (input.uploadIdMarker) params.UploadIdMarker = input.uploadIdMarker;
    const out = await this.send<{ Uploads?: { Key?: string; UploadId?: string; Initiated?: Date }[]; IsTruncated?: boolean; NextKeyMarker?: string; NextUploadIdMarker?: string }>(
      'ListMultipartUploads',
      new ListMultipartUploadsCommand(params as never),
      signal,
    );
    return {
      uploads: (out.Uploads ?? []).filter((u) => u.Key && u.UploadId).map((u) => ({ key: u.Key!, uploadId: u.UploadId!, ...(u.Initiated ? { initiated: u.Initiated } : {}) })),
      isTruncated: out.IsTruncated === true,
      ...(out.NextKeyMarker ? { nextKeyMarker: out.NextKeyMarker } : {}),
      ...(out.NextUploadIdMarker ? { nextUploadIdMarker: out.NextUploadIdMarker } : {}),
    };
  }

  async getObjectAttributes(input: Parameters<S3Port['getObjectAttributes']>[0], req: RequestOptions, signal?: AbortSignal): Promise<AttributesOutput> {
    const params: Record<string, unknown> = {
      Bucket: input.bucket,
      Key: input.key,
      ObjectAttributes: ['ETag', 'Checksum', 'ObjectParts', 'ObjectSize'],
      ...(input.maxParts !== undefined ? { MaxParts: input.maxParts } : {}),
      ...(input.partNumberMarker !== undefined ? { PartNumberMarker: String(input.partNumberMarker) } : {}),
      ...commonParams(req),
      ...sseCParams(req),
    };
    const command = new GetObjectAttributesCommand(params as never);
    // The SDK joins the names with ", "; RGW does not trim and then sees only the first one.
    command.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { headers?: Record<string, string> };
        const h = request.headers?.['x-amz-object-attributes'];
        if (h) request.headers!['x-amz-object-attributes'] = h.replace(/,\s+/g, ',');
        return next(args);
      },
      { step: 'build', name: 'partwiseObjectAttributesHeader' },
    );
    type Part = { PartNumber?: number; Size?: number } & Record<string, unknown>;
    const out = await this.send<{
      Checksum?: Record<string, unknown>;
      ObjectParts?: { Parts?: Part[]; TotalPartsCount?: number; PartsCount?: number; IsTruncated?: boolean; NextPartNumberMarker?: string };
      ObjectSize?: number;
    }>('GetObjectAttributes', command, signal);
    const checksums: AttributesOutput['checksums'] = {};
    for (const alg of CHECKSUM_ALGORITHMS) {
      const v = out.Checksum?.[checksumField(alg)];
      if (typeof v === 'string' && v) checksums[alg] = v;
    }
    const parts = (out.ObjectParts?.Parts ?? []).map((p) => {
      const part: AttributesOutput['parts'][number] = { partNumber: p.PartNumber ?? -1, size: p.Size ?? -1 };
      for (const alg of CHECKSUM_ALGORITHMS) {
        const v = p[checksumField(alg)];
        if (typeof v === 'string' && v) part.checksum = v;
      }
      return part;
    });
    const next = out.ObjectParts?.NextPartNumberMarker !== undefined ? Number(out.ObjectParts.NextPartNumberMarker) : undefined;
    const result: AttributesOutput = { checksums, parts, isTruncated: out.ObjectParts?.IsTruncated === true };
    if (typeof out.Checksum?.ChecksumType === 'string') result.checksumType = out.Checksum.ChecksumType;
    const count = out.ObjectParts?.TotalPartsCount ?? out.ObjectParts?.PartsCount;
    if (count !== undefined) result.partsCount = count;
    if (next !== undefined && Number.isFinite(next)) result.nextPartNumberMarker = next;
    if (out.ObjectSize !== undefined) result.objectSize = out.ObjectSize;
    return result;
  }
}
