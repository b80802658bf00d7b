/**
 * The only module that imports @aws-sdk/client-s3. It maps the S3Port onto SDK commands and
 * normalizes every failure into an S3RequestError.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type * as Sdk from '@aws-sdk/client-s3';
import type {
  AbortMultipartUploadCommandInput,
  CompleteMultipartUploadCommandInput,
  CompletedPart,
  CreateMultipartUploadCommandInput,
  DeleteObjectCommandInput,
  GetObjectAclCommandInput,
  GetObjectCommandInput,
  GetObjectAttributesCommandInput,
  GetObjectTaggingCommandInput,
  HeadObjectCommandInput,
  PutObjectRetentionCommandInput,
  ListMultipartUploadsCommandInput,
  ListPartsCommandInput,
  PutObjectCommandInput,
  S3Client,
  S3ClientConfig,
  UploadPartCommandInput,
} from '@aws-sdk/client-s3';
import { CHECKSUM_ALGORITHMS, type ChecksumAlgorithm } from '../core/checksums.ts';
import { InvalidOptionsError, S3RequestError } from '../core/errors.ts';
import type { RemotePart } from '../core/reconcile.ts';
import { taggingHeader, type ObjectSettings } from '../core/object-settings.ts';
import { PACED_SLICE } from '../core/rate-limit.ts';
import type { AclGrant, AclOutput, AttributesOutput, HeadOutput, ListUploadsOutput, ObjectRef, PartBody, RequestOptions, RetentionInput, S3Port } from './port.ts';

/** The SDK's client, for the options that take one (a type only: nothing loads the SDK by naming it). */
export type { S3Client } from '@aws-sdk/client-s3';

// Node loads the SDK's CommonJS build whether it is imported or required (its "module" field is for
// bundlers; Node ignores it). An import first has Node's ESM loader lex the whole bundle for its
// export names, ~30 ms of every CLI start; require() skips that. And it is required when first
// needed, not when this module loads: the CLI reads its journal and starts hashing first, so the
// SDK's ~0.1 s of loading runs beside the hash threads instead of before them.
// Bundling partwise: keep @aws-sdk/client-s3 external (it is a peer dependency).
let loaded: typeof Sdk | undefined;
const SDK = '@aws-sdk/client-s3';
const require = createRequire(import.meta.url);
const missingSdk = (err: unknown) =>
  new InvalidOptionsError(
    `partwise needs the AWS SDK for JavaScript v3 (${SDK}, a peer dependency), which cannot be loaded (${String((err as Error)?.message ?? err).split('\n')[0]}): install it beside partwise (npm install ${SDK}), or repair the installation the error names`,
  );
function sdk(): typeof Sdk {
  try {
    return (loaded ??= require(SDK) as typeof Sdk);
  } catch (err) {
    throw missingSdk(err);
  }
}

/** Fails at once when the SDK is not even installed (finding it costs a few stats; loading it waits). */
function assertSdkInstalled(): void {
  if (loaded) return;
  try {
    require.resolve(SDK);
  } catch (err) {
    throw missingSdk(err);
  }
}

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
 * Where createS3Client's endpoint comes from: the option, else the environment's; the first one set
 * and not empty, as the SDK picks it (an empty one is passed over). With where it came from, for messages.
 */
function endpointSource(opts: ClientOptions): { url: string; from: string } | undefined {
  const sources: [string | undefined, string][] = [
    [opts.endpoint, 'the endpoint option, CLI: --endpoint'],
    [process.env.AWS_ENDPOINT_URL_S3, 'AWS_ENDPOINT_URL_S3'],
    [process.env.AWS_ENDPOINT_URL, 'AWS_ENDPOINT_URL'],
  ];
  const hit = sources.find(([url]) => url);
  return hit ? { url: hit[0]!, from: hit[1] } : undefined;
}

/** The endpoint createS3Client gives its client. */
function endpointOf(opts: ClientOptions): string | undefined {
  return endpointSource(opts)?.url;
}

/** An endpoint the SDK would refuse with a bare "Invalid URL" (an unexpected failure) is refused here, in words. */
function assertUrl(url: string, from: string): void {
  try {
    new URL(url);
  } catch {
    throw new InvalidOptionsError(`the endpoint ${JSON.stringify(url)} is not a URL (${from}): give one such as http://127.0.0.1:7490 or https://s3.eu-west-1.amazonaws.com`);
  }
}

/**
 * Builds a client from the SDK's standard chain (env, shared config and profiles, AWS_ENDPOINT_URL)
 * with two changes: checksums only when an operation requires one (partwise precomputes its own,
 * and third-party servers reject the SDK's defaults), and no SDK-level retries (the engine retries
 * each request itself, with a fresh body, so attempts never multiply).
 */
export function createS3Client(opts: ClientOptions = {}): S3Client {
  const endpoint = endpointOf(opts);
  const config: S3ClientConfig = {
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
    forcePathStyle: opts.forcePathStyle ?? endpoint !== undefined,
    // Without a logger the SDK prints to the console when a streaming request fails; the engine
    // reports every failure itself, as a typed error or a part-retry event.
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {} },
    // Without throwOnRequestTimeout the SDK only logs a warning and keeps waiting.
    // socketTimeout, not requestTimeout: the handler's requestTimeout is a deadline for the whole
    // request, which a large part on a slow link (or under --max-rate) can never meet; what marks a
    // stalled server is a socket with no traffic either way.
    requestHandler: { socketTimeout: opts.requestTimeoutMs ?? 60_000, connectionTimeout: Math.min(opts.requestTimeoutMs ?? 10_000, 10_000) },
  };
  if (endpoint) config.endpoint = endpoint;
  if (opts.region) config.region = opts.region;
  if (opts.credentials) config.credentials = opts.credentials;
  return new (sdk().S3Client)(config);
}

/** The SDK's per-algorithm checksum members, as every input and output that carries them spells them. */
interface ChecksumFields {
  ChecksumCRC32?: string | undefined;
  ChecksumCRC32C?: string | undefined;
  ChecksumCRC64NVME?: string | undefined;
  ChecksumSHA1?: string | undefined;
  ChecksumSHA256?: string | undefined;
}

function checksumFields(alg: ChecksumAlgorithm, value: string): ChecksumFields {
  switch (alg) {
    case 'CRC32':
      return { ChecksumCRC32: value };
    case 'CRC32C':
      return { ChecksumCRC32C: value };
    case 'CRC64NVME':
      return { ChecksumCRC64NVME: value };
    case 'SHA1':
      return { ChecksumSHA1: value };
    case 'SHA256':
      return { ChecksumSHA256: value };
  }
}

function readChecksum(out: ChecksumFields, alg: ChecksumAlgorithm): string | undefined {
  const v = out[`Checksum${alg}`];
  return v ? v : undefined;
}

function readChecksums(out: ChecksumFields): Partial<Record<ChecksumAlgorithm, string>> {
  const found: Partial<Record<ChecksumAlgorithm, string>> = {};
  for (const alg of CHECKSUM_ALGORITHMS) {
    const v = readChecksum(out, alg);
    if (v) found[alg] = v;
  }
  return found;
}

function commonParams(req: RequestOptions): { RequestPayer?: 'requester'; ExpectedBucketOwner?: string } {
  return { ...(req.requestPayer ? { RequestPayer: req.requestPayer } : {}), ...(req.expectedBucketOwner ? { ExpectedBucketOwner: req.expectedBucketOwner } : {}) };
}

/** The object's settings as CreateMultipartUpload's typed fields. */
function settingsParams(s: ObjectSettings) {
  return {
    ...(s.contentType ? { ContentType: s.contentType } : {}),
    ...(s.metadata ? { Metadata: s.metadata } : {}),
    ...(s.storageClass ? { StorageClass: s.storageClass } : {}),
    ...(s.tags ? { Tagging: taggingHeader(s.tags) } : {}),
    ...(s.cacheControl ? { CacheControl: s.cacheControl } : {}),
    ...(s.contentEncoding ? { ContentEncoding: s.contentEncoding } : {}),
    ...(s.contentDisposition ? { ContentDisposition: s.contentDisposition } : {}),
    ...(s.acl ? { ACL: s.acl } : {}),
    ...(s.objectLockMode ? { ObjectLockMode: s.objectLockMode } : {}),
    ...(s.objectLockRetainUntil ? { ObjectLockRetainUntilDate: new Date(s.objectLockRetainUntil) } : {}),
    ...(s.legalHold !== undefined ? { ObjectLockLegalHoldStatus: s.legalHold ? ('ON' as const) : ('OFF' as const) } : {}),
  } satisfies Partial<CreateMultipartUploadCommandInput>;
}

function sseCParams(req: RequestOptions): { SSECustomerAlgorithm?: string; SSECustomerKey?: string } {
  if (!req.sseCustomerKey) return {};
  // The SDK's SSE-C middleware decodes a valid base64 key and adds the key MD5 header itself.
  return { SSECustomerAlgorithm: 'AES256', SSECustomerKey: Buffer.from(req.sseCustomerKey).toString('base64') };
}

/**
 * Bytes go out in 1 MiB slices: small slices cost RGW and the client CPU; the count feeds progress.
 * Under a bandwidth cap they go out in 64 KiB slices, each paid for just before it is handed over,
 * so the rate is smooth. A streamed part is read from its source afresh for each request.
 */
function countingBody(body: PartBody, onBytes?: (n: number) => void, pace?: (n: number) => Promise<void>): Readable | Buffer {
  const count = (s: Buffer) => onBytes?.(s.length);
  if (Buffer.isBuffer(body)) {
    if ((!onBytes && !pace) || body.length === 0) return body;
    const SLICE = pace ? PACED_SLICE : 1024 * 1024;
    if (!pace) {
      return Readable.from(
        (function* () {
          for (let off = 0; off < body.length; off += SLICE) {
            const s = body.subarray(off, Math.min(body.length, off + SLICE));
            count(s);
            yield s;
          }
        })(),
        { objectMode: false },
      );
    }
    return Readable.from(
      (async function* () {
        for (let off = 0; off < body.length; off += SLICE) {
          const s = body.subarray(off, Math.min(body.length, off + SLICE));
          await pace(s.length);
          count(s);
          yield s;
        }
      })(),
      { objectMode: false },
    );
  }
  return Readable.from(
    (async function* () {
      for await (const chunk of body.chunks()) {
        for (let off = 0; off < chunk.length; off += pace ? PACED_SLICE : chunk.length) {
          const s = pace ? chunk.subarray(off, Math.min(chunk.length, off + PACED_SLICE)) : chunk;
          if (pace) await pace(s.length);
          count(s);
          yield s;
        }
      }
    })(),
    { objectMode: false },
  );
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
  if (/region is missing/i.test(e.message ?? '')) code = 'RegionMissing';
  // The SDK's one name for "none anywhere" and for "one configured but failing" (an SSO token expired, a
  // credential_process failing): only the first is told to set some.
  if (code === 'CredentialsProviderError' && /could not load credentials from any providers/i.test(e.message ?? '')) code = 'NoCredentials';
  // Not the SDK's exception itself: it carries every field of the error body (AWS echoes the
  // canonical request there, headers and all: session token, SSE-C key), which a caller logging
  // the error would print. Only its name and message are kept.
  const cause = new Error(`${e.name ?? 'Error'}${e.message ? `: ${e.message}` : ''}`);
  const args: ConstructorParameters<typeof S3RequestError>[0] = { operation, s3Code: code, cause };
  if (status !== undefined) args.httpStatus = status;
  if (e.$metadata?.requestId) args.requestId = e.$metadata.requestId;
  if (e.message && e.message !== code) args.message = e.message;
  return new S3RequestError(args);
}

/**
 * The same string for the same destination however the client was configured (an explicit
 * endpoint, or AWS_ENDPOINT_URL[_S3], which the SDK applies without exposing it in its config),
 * because the journal's identity depends on it.
 */
export function endpointIdentity(ep: { protocol: string; hostname: string; port?: number | undefined; path?: string } | undefined, region: string): string {
  if (ep) return `${ep.protocol}//${ep.hostname}${ep.port ? `:${ep.port}` : ''}${ep.path && ep.path !== '/' ? ep.path : ''}`;
  const fromEnv = endpointOf({});
  if (fromEnv) return fromEnv.replace(/\/+$/, '');
  return `aws:${region}`;
}

/**
 * What a client createS3Client(opts) would make describes itself as, worked out without the SDK;
 * undefined where only the SDK can tell (a region or endpoint from a shared config profile, a URL
 * it would reject).
 */
export function presetIdentity(opts: ClientOptions): string | undefined {
  const region = opts.region ?? process.env.AWS_REGION;
  // The SDK rewrites FIPS pseudo-regions (us-east-1-fips is us-east-1) and refuses what is not a
  // host label, in words of its own: only a plain region is taken as it is written.
  if (!region || !/^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/.test(region) || region.startsWith('fips-') || region.endsWith('-fips')) return undefined;
  const endpoint = endpointOf(opts);
  if (!endpoint) return sharedFilesMayNameEndpoint() ? undefined : endpointIdentity(undefined, region);
  return urlIdentity(endpoint, region);
}

/** A URL's identity, as the SDK's URL parser reads it (the port as a number when one is written); undefined if it is not one. */
function urlIdentity(url: string, region: string): string | undefined {
  try {
    const u = new URL(url);
    return endpointIdentity({ protocol: u.protocol, hostname: u.hostname, port: u.port ? Number(u.port) : undefined, path: u.pathname }, region);
  } catch {
    return undefined;
  }
}

/**
 * Whether the shared config or credentials file may name an endpoint (endpoint_url, or a services
 * section that can hold one), which only the SDK reads: then it is asked. Most files name none, and
 * the SDK is not loaded just to learn that.
 */
function sharedFilesMayNameEndpoint(): boolean {
  const home = process.env.HOME || process.env.USERPROFILE || homedir();
  const path = (v: string | undefined, dflt: string) => (v ? v.replace(/^~(?=[\\/])/, home) : join(home, '.aws', dflt));
  for (const f of [path(process.env.AWS_CONFIG_FILE, 'config'), path(process.env.AWS_SHARED_CREDENTIALS_FILE, 'credentials')]) {
    try {
      if (/endpoint_url|^\s*services\s*=/m.test(readFileSync(f, 'utf8'))) return true;
    } catch (err) {
      // Absent: nothing named there. Unreadable for another reason: the SDK's reading decides.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return true;
    }
  }
  return false;
}

export class SdkS3Port implements S3Port {
  private made: S3Client | undefined;
  private readonly preset: ClientOptions | undefined;
  private identity: Promise<string> | undefined;
  private configuring: Promise<S3Client> | undefined;

  /** A client, or the options to make one with createS3Client when a request first needs it. */
  constructor(client: S3Client | { lazy: ClientOptions }) {
    if ('lazy' in client) {
      assertSdkInstalled();
      const source = endpointSource(client.lazy);
      if (source) assertUrl(source.url, source.from);
      this.preset = client.lazy;
    } else this.made = client;
  }

  get client(): S3Client {
    return (this.made ??= createS3Client(this.preset));
  }

  /** One answer for the port's life (a folder job's files share it), worked out once. */
  describeEndpoint(): Promise<string> {
    if (!this.identity) {
      const p = this.resolveIdentity();
      // A failure is not kept: asked again, it is tried again.
      p.catch(() => {
        if (this.identity === p) this.identity = undefined;
      });
      this.identity = p;
    }
    return this.identity;
  }

  private async resolveIdentity(): Promise<string> {
    const known = this.made ? undefined : this.preset && presetIdentity(this.preset);
    if (known) return known;
    // The region is resolved here first (every request needs it): a missing one is said in words.
    const region = await this.call('ResolveRegion', (c) => c.config.region());
    const client = this.client;
    if (client.config.endpoint) return endpointIdentity(await client.config.endpoint(), region);
    // An endpoint from the environment or a shared config profile is applied by the SDK at each
    // request, not kept in config.endpoint: asked for the same way, so the journal is that endpoint's.
    const configured = await this.call('ResolveEndpoint', async (c) => c.config.serviceConfiguredEndpoint?.());
    return (configured && urlIdentity(configured, region)) || endpointIdentity(undefined, region);
  }

  async clientMaxAttempts(): Promise<number> {
    // createS3Client's clients make one attempt (the engine retries).
    if (this.preset) return 1;
    try {
      return await this.client.config.maxAttempts();
    } catch {
      return 3;
    }
  }

  /**
   * The client a request goes out on. A lazy port's endpoint named in a shared config profile
   * (endpoint_url) is made explicit: the SDK would apply it as the endpoint only, with virtual-host
   * addressing (bucket.host), which an S3-compatible server at a host name does not answer;
   * explicit, it gets path-style addressing as an endpoint from the options or the environment does.
   */
  private configured(client: S3Client): Promise<S3Client> {
    const o = this.preset;
    if (!o || this.made !== client || endpointOf(o) || o.forcePathStyle !== undefined) return Promise.resolve(client);
    this.configuring ??= (async () => {
      const url = await client.config.serviceConfiguredEndpoint?.();
      if (url && this.made === client) {
        assertUrl(url, 'endpoint_url in the shared config profile');
        this.made = createS3Client({ ...o, endpoint: url });
      }
      return this.made ?? client;
    })();
    return this.configuring;
  }

  /**
   * Every call goes through here, so every failure of a request leaves the adapter as an
   * S3RequestError; one of loading the SDK (made here, outside) is not a request's.
   */
  private async call<T>(operation: string, send: (client: S3Client) => Promise<T>): Promise<T> {
    const client = this.client;
    try {
      return await send(await this.configured(client));
    } catch (err) {
      // A configured endpoint that is not a URL is the options', said as such (not a request's failure).
      if (err instanceof InvalidOptionsError) throw err;
      throw toS3RequestError(operation, err);
    }
  }

  private opts(signal?: AbortSignal) {
    return signal ? { abortSignal: signal } : {};
  }

  async createMultipartUpload(input: Parameters<S3Port['createMultipartUpload']>[0], req: RequestOptions, signal?: AbortSignal) {
    const params = {
      Bucket: input.bucket,
      Key: input.key,
      ...commonParams(req),
      ...sseCParams(req),
      ...(input.checksumAlgorithm ? { ChecksumAlgorithm: input.checksumAlgorithm } : {}),
      ...(input.checksumType ? { ChecksumType: input.checksumType } : {}),
      ...settingsParams(input.settings ?? {}),
      ...(req.serverSideEncryption ? { ServerSideEncryption: req.serverSideEncryption } : {}),
      ...(req.sseKmsKeyId ? { SSEKMSKeyId: req.sseKmsKeyId } : {}),
    } satisfies CreateMultipartUploadCommandInput;
    const out = await this.call('CreateMultipartUpload', (c) => c.send(new (sdk().CreateMultipartUploadCommand)(params), this.opts(signal)));
    if (!out.UploadId) throw new S3RequestError({ operation: 'CreateMultipartUpload', s3Code: 'MissingUploadId', message: 'the response has no UploadId' });
    return {
      uploadId: out.UploadId,
      ...(out.ServerSideEncryption ? { serverSideEncryption: out.ServerSideEncryption } : {}),
      ...(out.SSECustomerAlgorithm ? { sseCustomerAlgorithm: out.SSECustomerAlgorithm } : {}),
      ...(out.AbortDate ? { abortDate: out.AbortDate } : {}),
    };
  }

  async uploadPart(input: Parameters<S3Port['uploadPart']>[0], req: RequestOptions, signal?: AbortSignal) {
    const params = {
      Bucket: input.bucket,
      Key: input.key,
      UploadId: input.uploadId,
      PartNumber: input.partNumber,
      // Always a stream: a Buffer body makes the SDK sign the payload, a SHA-256 of every byte.
      Body: countingBody(input.body, input.onBytesSent ?? (() => undefined), input.pace),
      ContentLength: input.body.length,
      ...(input.contentMd5 ? { ContentMD5: input.contentMd5 } : {}),
      ...commonParams(req),
      ...sseCParams(req),
      // Value *and* algorithm: with the value alone RGW skips validating CRC64NVME, and with both
      // the SDK sends the header as is, with no trailer and no recomputation.
      ...(input.checksum ? { ChecksumAlgorithm: input.checksum.algorithm, ...checksumFields(input.checksum.algorithm, input.checksum.value) } : {}),
    } satisfies UploadPartCommandInput;
    const out = await this.call('UploadPart', (c) => c.send(new (sdk().UploadPartCommand)(params), this.opts(signal)));
    if (!out.ETag) throw new S3RequestError({ operation: 'UploadPart', s3Code: 'MissingETag', message: 'the response has no ETag' });
    const echo = input.checksum ? readChecksum(out, input.checksum.algorithm) : undefined;
    return {
      etag: out.ETag,
      ...(echo ? { checksum: echo } : {}),
      ...(out.ServerSideEncryption ? { serverSideEncryption: out.ServerSideEncryption } : {}),
      ...(out.SSECustomerAlgorithm ? { sseCustomerAlgorithm: out.SSECustomerAlgorithm } : {}),
    };
  }

  async putObject(input: Parameters<S3Port['putObject']>[0], req: RequestOptions, signal?: AbortSignal) {
    const alg = input.checksum?.algorithm;
    const params = {
      Bucket: input.bucket,
      Key: input.key,
      // Always a stream: a Buffer body makes the SDK sign the payload, a SHA-256 of every byte.
      Body: countingBody(input.body, input.onBytesSent ?? (() => undefined), input.pace),
      ContentLength: input.body.length,
      ...(input.contentMd5 ? { ContentMD5: input.contentMd5 } : {}),
      ...(input.checksum ? { ChecksumAlgorithm: input.checksum.algorithm, ...checksumFields(input.checksum.algorithm, input.checksum.value) } : {}),
      ...settingsParams(input.settings ?? {}),
      ...(input.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
      ...commonParams(req),
      ...sseCParams(req),
      ...(req.serverSideEncryption ? { ServerSideEncryption: req.serverSideEncryption } : {}),
      ...(req.sseKmsKeyId ? { SSEKMSKeyId: req.sseKmsKeyId } : {}),
    } satisfies PutObjectCommandInput;
    const out = await this.call('PutObject', (c) => c.send(new (sdk().PutObjectCommand)(params), this.opts(signal)));
    const checksum = alg ? readChecksum(out, alg) : undefined;
    return {
      etag: String(out.ETag ?? ''),
      ...(checksum ? { checksum } : {}),
      ...(out.ServerSideEncryption ? { serverSideEncryption: out.ServerSideEncryption } : {}),
      ...(out.SSECustomerAlgorithm ? { sseCustomerAlgorithm: out.SSECustomerAlgorithm } : {}),
    };
  }

  async listParts(input: Parameters<S3Port['listParts']>[0], req: RequestOptions, signal?: AbortSignal) {
    const params = {
      Bucket: input.bucket,
      Key: input.key,
      UploadId: input.uploadId,
      MaxParts: input.maxParts,
      ...(input.partNumberMarker !== undefined ? { PartNumberMarker: String(input.partNumberMarker) } : {}),
      ...commonParams(req),
      ...sseCParams(req),
    } satisfies ListPartsCommandInput;
    const out = await this.call('ListParts', (c) => c.send(new (sdk().ListPartsCommand)(params), this.opts(signal))).catch((err: unknown) => {
      // RGW answers ListParts on an unknown, aborted or completed upload with NoSuchKey; S3 says NoSuchUpload.
      if (err instanceof S3RequestError && err.s3Code === 'NoSuchKey') {
        throw new S3RequestError({ operation: 'ListParts', s3Code: 'NoSuchUpload', ...(err.httpStatus ? { httpStatus: err.httpStatus } : {}), message: 'the server answered NoSuchKey', cause: err });
      }
      throw err;
    });
    const parts: RemotePart[] = (out.Parts ?? []).map((p) => {
      const rp: RemotePart = { partNumber: p.PartNumber ?? -1, size: p.Size ?? -1, etag: p.ETag ?? '' };
      const sums = readChecksums(p);
      const alg = CHECKSUM_ALGORITHMS.find((a) => sums[a] !== undefined);
      if (alg) {
        rp.checksum = sums[alg]!;
        rp.checksumAlgorithm = alg;
      }
      return rp;
    });
    const next = out.NextPartNumberMarker !== undefined ? Number(out.NextPartNumberMarker) : undefined;
    return {
      parts,
      isTruncated: out.IsTruncated === true,
      ...(next !== undefined && Number.isFinite(next) ? { nextPartNumberMarker: next } : {}),
      ...(out.ChecksumAlgorithm ? { checksumAlgorithm: out.ChecksumAlgorithm } : {}),
      ...(out.ChecksumType ? { checksumType: out.ChecksumType } : {}),
      ...(out.AbortDate ? { abortDate: out.AbortDate } : {}),
    };
  }

  async completeMultipartUpload(input: Parameters<S3Port['completeMultipartUpload']>[0], req: RequestOptions, signal?: AbortSignal) {
    const alg = input.checksumAlgorithm;
    const parts: CompletedPart[] = input.parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag, ...(alg && p.checksum ? checksumFields(alg, p.checksum) : {}) }));
    const params = {
      Bucket: input.bucket,
      Key: input.key,
      UploadId: input.uploadId,
      MultipartUpload: { Parts: parts },
      MpuObjectSize: input.objectSize,
      ...(input.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
      ...commonParams(req),
      ...sseCParams(req),
      ...(alg && input.checksumType ? { ChecksumType: input.checksumType } : {}),
      ...(alg && input.fullObjectChecksum ? checksumFields(alg, input.fullObjectChecksum) : {}),
    } satisfies CompleteMultipartUploadCommandInput;
    const out = await this.call('CompleteMultipartUpload', (c) => c.send(new (sdk().CompleteMultipartUploadCommand)(params), this.opts(signal)));
    const checksum = alg ? readChecksum(out, alg) : undefined;
    return {
      ...(out.ETag ? { etag: out.ETag } : {}),
      ...(checksum ? { checksum } : {}),
      ...(out.ChecksumType ? { checksumType: out.ChecksumType } : {}),
    };
  }

  async abortMultipartUpload(input: Parameters<S3Port['abortMultipartUpload']>[0], req: RequestOptions, signal?: AbortSignal) {
    const params = { Bucket: input.bucket, Key: input.key, UploadId: input.uploadId, ...commonParams(req) } satisfies AbortMultipartUploadCommandInput;
    await this.call('AbortMultipartUpload', (c) => c.send(new (sdk().AbortMultipartUploadCommand)(params), this.opts(signal)));
  }

  async headObject(input: Parameters<S3Port['headObject']>[0], req: RequestOptions, signal?: AbortSignal): Promise<HeadOutput | undefined> {
    const params = {
      Bucket: input.bucket,
      Key: input.key,
      ChecksumMode: 'ENABLED',
      ...(input.partNumber !== undefined ? { PartNumber: input.partNumber } : {}),
      ...commonParams(req),
      ...sseCParams(req),
    } satisfies HeadObjectCommandInput;
    try {
      const out = await this.call('HeadObject', (c) => c.send(new (sdk().HeadObjectCommand)(params), this.opts(signal)));
      const head: HeadOutput = { size: Number(out.ContentLength ?? -1), etag: String(out.ETag ?? ''), checksums: readChecksums(out) };
      if (out.ChecksumType) head.checksumType = out.ChecksumType;
      if (typeof out.PartsCount === 'number') head.partsCount = out.PartsCount;
      if (out.ServerSideEncryption) head.serverSideEncryption = out.ServerSideEncryption;
      if (out.SSECustomerAlgorithm) head.sseCustomerAlgorithm = out.SSECustomerAlgorithm;
      if (out.SSEKMSKeyId) head.sseKmsKeyId = out.SSEKMSKeyId;
      if (out.ContentType) head.contentType = out.ContentType;
      if (out.CacheControl) head.cacheControl = out.CacheControl;
      if (out.ContentEncoding) head.contentEncoding = out.ContentEncoding;
      if (out.ContentDisposition) head.contentDisposition = out.ContentDisposition;
      if (out.Metadata) head.metadata = out.Metadata;
      if (out.StorageClass) head.storageClass = out.StorageClass;
      if (out.ObjectLockMode) head.objectLockMode = out.ObjectLockMode;
      if (out.ObjectLockRetainUntilDate) head.objectLockRetainUntil = out.ObjectLockRetainUntilDate;
      if (out.ObjectLockLegalHoldStatus) head.legalHold = out.ObjectLockLegalHoldStatus === 'ON';
      return head;
    } catch (err) {
      if (err instanceof S3RequestError && (err.httpStatus === 404 || err.s3Code === 'NotFound' || err.s3Code === 'NoSuchKey')) return undefined;
      throw err;
    }
  }

  async listMultipartUploads(input: Parameters<S3Port['listMultipartUploads']>[0], req: RequestOptions, signal?: AbortSignal): Promise<ListUploadsOutput> {
    const params = {
      Bucket: input.bucket,
      ...commonParams(req),
      ...(input.prefix ? { Prefix: input.prefix } : {}),
      ...(input.keyMarker ? { KeyMarker: input.keyMarker } : {}),
      ...(input.uploadIdMarker ? { UploadIdMarker: input.uploadIdMarker } : {}),
    } satisfies ListMultipartUploadsCommandInput;
    const out = await this.call('ListMultipartUploads', (c) => c.send(new (sdk().ListMultipartUploadsCommand)(params), this.opts(signal)));
    return {
      uploads: (out.Uploads ?? []).filter((u) => u.Key && u.UploadId).map((u) => ({ key: u.Key!, uploadId: u.UploadId!, ...(u.Initiated ? { initiated: u.Initiated } : {}) })),
      isTruncated: out.IsTruncated === true,
      ...(out.NextKeyMarker ? { nextKeyMarker: out.NextKeyMarker } : {}),
      ...(out.NextUploadIdMarker ? { nextUploadIdMarker: out.NextUploadIdMarker } : {}),
    };
  }

  async getObjectAttributes(input: Parameters<S3Port['getObjectAttributes']>[0], req: RequestOptions, signal?: AbortSignal): Promise<AttributesOutput> {
    const params = {
      Bucket: input.bucket,
      Key: input.key,
      ObjectAttributes: ['ETag', 'Checksum', 'ObjectParts', 'ObjectSize'],
      ...(input.maxParts !== undefined ? { MaxParts: input.maxParts } : {}),
      ...(input.partNumberMarker !== undefined ? { PartNumberMarker: String(input.partNumberMarker) } : {}),
      ...commonParams(req),
      ...sseCParams(req),
    } satisfies GetObjectAttributesCommandInput;
    const command = new (sdk().GetObjectAttributesCommand)(params);
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
    const out = await this.call('GetObjectAttributes', (c) => c.send(command, this.opts(signal)));
    const parts = (out.ObjectParts?.Parts ?? []).map((p) => {
      const part: AttributesOutput['parts'][number] = { partNumber: p.PartNumber ?? -1, size: p.Size ?? -1 };
      const sums = readChecksums(p);
      const alg = CHECKSUM_ALGORITHMS.find((a) => sums[a] !== undefined);
      if (alg) part.checksum = sums[alg]!;
      return part;
    });
    const next = out.ObjectParts?.NextPartNumberMarker !== undefined ? Number(out.ObjectParts.NextPartNumberMarker) : undefined;
    const result: AttributesOutput = { checksums: out.Checksum ? readChecksums(out.Checksum) : {}, parts, isTruncated: out.ObjectParts?.IsTruncated === true };
    if (out.Checksum?.ChecksumType) result.checksumType = out.Checksum.ChecksumType;
    const count = out.ObjectParts?.TotalPartsCount;
    if (count !== undefined) result.partsCount = count;
    if (next !== undefined && Number.isFinite(next)) result.nextPartNumberMarker = next;
    if (out.ObjectSize !== undefined) result.objectSize = out.ObjectSize;
    return result;
  }

  async getObjectTagging(input: ObjectRef, req: RequestOptions, signal?: AbortSignal): Promise<Record<string, string>> {
    const params = { Bucket: input.bucket, Key: input.key, ...commonParams(req) } satisfies GetObjectTaggingCommandInput;
    const out = await this.call('GetObjectTagging', (c) => c.send(new (sdk().GetObjectTaggingCommand)(params), this.opts(signal)));
    return Object.fromEntries((out.TagSet ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));
  }

  async getObjectAcl(input: ObjectRef, req: RequestOptions, signal?: AbortSignal): Promise<AclOutput> {
    const params = { Bucket: input.bucket, Key: input.key, ...commonParams(req) } satisfies GetObjectAclCommandInput;
    const out = await this.call('GetObjectAcl', (c) => c.send(new (sdk().GetObjectAclCommand)(params), this.opts(signal)));
    const grants: AclGrant[] = (out.Grants ?? []).map((g) => {
      const who = g.Grantee;
      const grantee: AclGrant['grantee'] = who?.Type === 'CanonicalUser' && who.ID ? { type: 'user', id: who.ID } : who?.Type === 'Group' && who.URI ? { type: 'group', uri: who.URI } : { type: 'other', text: JSON.stringify(who ?? {}) };
      return { grantee, permission: g.Permission ?? '' };
    });
    return { ...(out.Owner?.ID ? { ownerId: out.Owner.ID } : {}), grants };
  }

  async putObjectRetention(input: RetentionInput, req: RequestOptions, signal?: AbortSignal): Promise<void> {
    const params = { Bucket: input.bucket, Key: input.key, Retention: { Mode: input.mode, RetainUntilDate: input.retainUntil }, ...commonParams(req) } satisfies PutObjectRetentionCommandInput;
    await this.call('PutObjectRetention', (c) => c.send(new (sdk().PutObjectRetentionCommand)(params), this.opts(signal)));
  }

  async getObject(input: ObjectRef, req: RequestOptions, signal?: AbortSignal): Promise<{ body: Buffer; etag: string } | undefined> {
    const params = { Bucket: input.bucket, Key: input.key, ...commonParams(req), ...sseCParams(req) } satisfies GetObjectCommandInput;
    try {
      return await this.call('GetObject', async (c) => {
        const out = await c.send(new (sdk().GetObjectCommand)(params), this.opts(signal));
        return { body: Buffer.from(await out.Body!.transformToByteArray()), etag: String(out.ETag ?? '') };
      });
    } catch (err) {
      if (err instanceof S3RequestError && (err.httpStatus === 404 || err.s3Code === 'NoSuchKey')) return undefined;
      throw err;
    }
  }

  async deleteObject(input: ObjectRef, req: RequestOptions, signal?: AbortSignal): Promise<void> {
    const params = { Bucket: input.bucket, Key: input.key, ...commonParams(req) } satisfies DeleteObjectCommandInput;
    await this.call('DeleteObject', (c) => c.send(new (sdk().DeleteObjectCommand)(params), this.opts(signal)));
  }
}
