/**
 * An S3 emulator for what the RADOS Gateway cannot show: the multipart subset as Amazon S3 behaves
 * (Amazon S3's documented behaviour, as summarised in the README), plus scripted faults. An in-process node:http server on
 * 127.0.0.1 (random port) that the real @aws-sdk/client-s3 talks to. Signatures are not checked.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ALGORITHMS, digest, digestB64, isAlg, md5B64, md5Hex, type Alg } from './checksums.ts';

export type OpName =
  | 'CreateBucket'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'ListParts'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'ListMultipartUploads'
  | 'HeadObject'
  | 'GetObject'
  | 'GetObjectAttributes'
  | 'GetObjectTagging'
  | 'GetObjectAcl'
  | 'PutObject'
  | 'DeleteObject';

export type FaultAction =
  | { type: 'error'; status: number; code: string; message?: string }
  /** read this many body bytes, then reset the connection */
  | { type: 'reset'; afterBytes: number }
  /** wait before handling the request */
  | { type: 'stall'; ms: number }
  /** Complete: do nothing, answer 200 with an <Error> body */
  | { type: 'error-in-200'; code?: string }
  /** perform the operation, then drop the connection without answering */
  | { type: 'drop-response' }
  /** the upload vanishes (lifecycle expiry) just before this request */
  | { type: 'expire-upload' }
  /** UploadPart: accept the part, then store it with one byte flipped */
  | { type: 'bit-rot' };

export interface FaultRule {
  op: OpName;
  /** fire on the nth matching request (1-based, retries count); default: the first */
  nth?: number;
  /** only UploadPart (or HeadObject ?partNumber=) requests for this part number match */
  partNumber?: number;
  /** how many matching requests fire, from the nth on (default 1) */
  times?: number;
  action: FaultAction;
}

interface StoredPart {
  data: Buffer;
  etag: string;
  md5: string;
  checksum?: string;
  lastModified: Date;
}

interface MpUpload {
  bucket: string;
  key: string;
  uploadId: string;
  algorithm: Alg | null;
  type: 'COMPOSITE' | 'FULL_OBJECT' | null;
  sseCKeyMd5?: string;
  kms: boolean;
  /** the KMS key, as S3 names it (an ARN) */
  kmsKeyId?: string;
  /** the object headers given at create (Content-Type, x-amz-meta-*, …), as HEAD returns them */
  headers: Record<string, string>;
  parts: Map<number, StoredPart>;
  initiated: Date;
}

interface StoredObject {
  data: Buffer;
  etag: string;
  algorithm: Alg;
  type: 'COMPOSITE' | 'FULL_OBJECT';
  checksum: string;
  parts: { size: number; checksum?: string }[];
  partsCount: number;
  sseCKeyMd5?: string;
  kms: boolean;
  kmsKeyId?: string;
  headers: Record<string, string>;
  /** checksums listed per part only when the upload chose an algorithm */
  explicitAlgorithm: boolean;
}

export interface EmulatorOptions {
  /** S3's 5 MiB; tests lower it to keep data small */
  minPartSize?: number;
  /** AWS answers a repeated identical Complete with success; MinIO and mocks say NoSuchUpload */
  repeatCompleteSucceeds?: boolean;
  /** false: HeadObject / GetObject never report checksums (as some S3-compatible servers) */
  headChecksums?: boolean;
  /** a lifecycle rule (AbortIncompleteMultipartUpload): ListParts reports x-amz-abort-date this long after initiation */
  abortAfterMs?: number;
  /**
   * A finished multipart object's ETag: S3's MD5 of the part MD5s with "-N" (the default); the
   * plain MD5 of the whole object (s3rver); or opaque, 32 hex digits of nothing (GCS's XML API).
   */
  multipartEtag?: 'md5-of-md5s' | 'whole-md5' | 'opaque';
  /** false: no ListParts; GET ?uploadId is read as GetObject (fauxqs): NoSuchKey, or the object's bytes with 200 */
  listParts?: boolean;
  /**
   * Additional checksums: stored and listed as S3 does (the default); 'ignored', every
   * x-amz-checksum-* header dropped unread (Ceph 16, GCS's XML API: no checksum stored or shown);
   * 'rejected', any request carrying one refused with 400 InvalidArgument (Backblaze B2).
   */
  checksums?: 'stored' | 'ignored' | 'rejected';
  /** the only checksum type each algorithm may use in a multipart upload (Cloudflare R2) */
  checksumTypes?: Partial<Record<Alg, 'COMPOSITE' | 'FULL_OBJECT'>>;
  /** false: GET ?uploads read as ListObjects (fauxqs): a ListBucketResult of the objects, no upload listed */
  listUploads?: boolean;
  /** the highest part number taken (Swift's s3api: 1,000) */
  maxParts?: number;
}

export interface LoggedRequest {
  op: OpName;
  partNumber?: number;
  status: number;
  /** the x-amz-checksum-* header names the request carried */
  checksumHeaders: string[];
  /** the body came aws-chunked (an SDK trailer) */
  chunked: boolean;
  /** request-payer, expected-bucket-owner and SSE-C headers, as sent */
  sent: { requestPayer?: string; expectedBucketOwner?: string; sseCustomerAlgorithm?: string };
}

class S3Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message = code,
  ) {
    super(message);
  }
}

const xmlEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const el = (name: string, v: string | number | boolean | undefined) => (v === undefined ? '' : `<${name}>${xmlEscape(String(v))}</${name}>`);
const checksumHeader = (alg: Alg) => `x-amz-checksum-${alg.toLowerCase()}`;

export class S3Emulator {
  readonly faults: FaultRule[] = [];
  readonly log: LoggedRequest[] = [];
  private readonly buckets = new Map<string, Map<string, StoredObject>>();
  private readonly uploads = new Map<string, MpUpload>();
  private readonly completed = new Map<string, { body: string; headers: Record<string, string>; partsXml: string }>();
  private readonly seen = new Map<FaultRule, number>();
  private readonly fired = new Map<FaultRule, number>();
  private server!: Server;
  endpoint = '';

  constructor(readonly options: EmulatorOptions = {}) {}

  static async start(options: EmulatorOptions = {}): Promise<S3Emulator> {
    const e = new S3Emulator(options);
    e.server = createServer((req, res) => void e.handle(req, res));
    await new Promise<void>((resolve) => e.server.listen(0, '127.0.0.1', resolve));
    e.endpoint = `http://127.0.0.1:${(e.server.address() as AddressInfo).port}`;
    return e;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  count(op: OpName, partNumber?: number): number {
    return this.log.filter((l) => l.op === op && (partNumber === undefined || l.partNumber === partNumber)).length;
  }

  /** Runs `fn` with fault `rule` installed, removing it afterwards whatever happens. */
  async withFault<T>(rule: FaultRule, fn: () => Promise<T>): Promise<T> {
    this.faults.push(rule);
    try {
      return await fn();
    } finally {
      const i = this.faults.indexOf(rule);
      if (i >= 0) this.faults.splice(i, 1);
    }
  }

  /** Moves an upload's initiation time back (as if started that long ago). */
  backdate(uploadId: string, ms: number): void {
    const u = this.uploads.get(uploadId);
    if (!u) throw new Error(`no upload ${uploadId}`);
    u.initiated = new Date(u.initiated.getTime() - ms);
  }

  /** Lifecycle expiry, or an abort by someone else. */
  expireUpload(uploadId: string): void {
    this.uploads.delete(uploadId);
  }

  /** Silent corruption at rest: one byte of a stored part changes (the server's listing follows the stored bytes). */
  async rotPart(uploadId: string, partNumber: number): Promise<void> {
    const u = this.uploads.get(uploadId);
    const p = u?.parts.get(partNumber);
    if (!u || !p) throw new Error(`no part ${partNumber} in ${uploadId}`);
    await this.store(u, partNumber, flip(p.data));
  }

  uploadIds(): string[] {
    return [...this.uploads.keys()];
  }

  private matchFault(op: OpName, partNumber: number | undefined): FaultAction | undefined {
    for (const rule of this.faults) {
      if (rule.op !== op || (rule.partNumber !== undefined && rule.partNumber !== partNumber)) continue;
      const n = (this.seen.get(rule) ?? 0) + 1;
      this.seen.set(rule, n);
      const from = rule.nth ?? 1;
      const fired = this.fired.get(rule) ?? 0;
      if (n >= from && fired < (rule.times ?? 1)) {
        this.fired.set(rule, fired + 1);
        return rule.action;
      }
    }
    return undefined;
  }

  private classify(method: string, bucket: string, key: string, q: URLSearchParams): OpName {
    if (!key) {
      if (method === 'PUT') return 'CreateBucket';
      if (method === 'GET' && q.has('uploads')) return 'ListMultipartUploads';
      throw new S3Error(501, 'NotImplemented', `${method} on a bucket`);
    }
    if (method === 'POST' && q.has('uploads')) return 'CreateMultipartUpload';
    if (method === 'PUT' && q.has('uploadId')) return 'UploadPart';
    if (method === 'GET' && q.has('uploadId') && this.options.listParts !== false) return 'ListParts';
    if (method === 'POST' && q.has('uploadId')) return 'CompleteMultipartUpload';
    if (method === 'DELETE' && q.has('uploadId')) return 'AbortMultipartUpload';
    if (method === 'HEAD') return 'HeadObject';
    if (method === 'GET' && q.has('attributes')) return 'GetObjectAttributes';
    if (method === 'GET' && q.has('tagging')) return 'GetObjectTagging';
    if (method === 'GET' && q.has('acl')) return 'GetObjectAcl';
    if (method === 'GET') return 'GetObject';
    if (method === 'PUT') return 'PutObject';
    if (method === 'DELETE') return 'DeleteObject';
    throw new S3Error(501, 'NotImplemented', method);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const [, bucket = '', ...rest] = url.pathname.split('/');
    const key = rest.map(decodeURIComponent).join('/');
    const q = url.searchParams;
    let op: OpName;
    try {
      op = this.classify(req.method ?? 'GET', decodeURIComponent(bucket), key, q);
    } catch (err) {
      return this.sendError(res, err as S3Error);
    }
    const partNumber = op === 'UploadPart' || (op === 'HeadObject' && q.has('partNumber')) ? Number(q.get('partNumber')) : undefined;
    const fault = this.matchFault(op, partNumber);
    const entry: LoggedRequest = {
      op,
      status: 0,
      checksumHeaders: Object.keys(req.headers).filter((k) => k.startsWith('x-amz-checksum-') && k !== 'x-amz-checksum-type' && k !== 'x-amz-checksum-algorithm' && k !== 'x-amz-checksum-mode'),
      chunked: String(req.headers['content-encoding'] ?? '').includes('aws-chunked'),
      sent: {},
    };
    const checksumNames = Object.keys(req.headers).filter((k) => k.startsWith('x-amz-checksum-') || k === 'x-amz-sdk-checksum-algorithm' || (k === 'x-amz-trailer' && String(req.headers[k]).startsWith('x-amz-checksum-')));
    if (this.options.checksums === 'ignored') for (const k of checksumNames) delete req.headers[k];
    const header = (name: string) => req.headers[name] as string | undefined;
    if (header('x-amz-request-payer')) entry.sent.requestPayer = header('x-amz-request-payer')!;
    if (header('x-amz-expected-bucket-owner')) entry.sent.expectedBucketOwner = header('x-amz-expected-bucket-owner')!;
    if (header('x-amz-server-side-encryption-customer-algorithm')) entry.sent.sseCustomerAlgorithm = header('x-amz-server-side-encryption-customer-algorithm')!;
    if (partNumber !== undefined) entry.partNumber = partNumber;
    this.log.push(entry);
    res.on('finish', () => (entry.status = res.statusCode));

    try {
      if (fault?.type === 'stall') await new Promise((r) => setTimeout(r, fault.ms));
      if (fault?.type === 'expire-upload' && q.get('uploadId')) this.expireUpload(q.get('uploadId')!);
      const body = await readBody(req, fault?.type === 'reset' ? fault.afterBytes : undefined);
      if (body === undefined) {
        entry.status = -1;
        return; // connection was reset mid-body
      }
      // Backblaze B2's words for an x-amz-checksum-* header.
      if (this.options.checksums === 'rejected' && checksumNames.length > 0) throw new S3Error(400, 'InvalidArgument', `Unsupported header '${checksumNames[0]}' received for this API call.`);
      if (fault?.type === 'error') throw new S3Error(fault.status, fault.code, fault.message);
      if (fault?.type === 'error-in-200') {
        res.writeHead(200, { 'content-type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error>${el('Code', fault.code ?? 'InternalError')}${el('Message', 'We encountered an internal error. Please try again.')}</Error>`);
        return;
      }
      const ctx = { bucket: decodeURIComponent(bucket), key, q, req, res, body, bitRot: fault?.type === 'bit-rot' };
      const reply = await this.dispatch(op, ctx);
      if (fault?.type === 'drop-response') {
        req.socket.destroy();
        entry.status = -2;
        return;
      }
      res.writeHead(reply.status ?? 200, { ...(reply.body !== undefined ? { 'content-type': 'application/xml' } : {}), 'x-amz-request-id': randomBytes(8).toString('hex'), ...reply.headers });
      res.end(reply.raw ?? (reply.body !== undefined ? `<?xml version="1.0" encoding="UTF-8"?>\n${reply.body}` : undefined));
    } catch (err) {
      if (err instanceof S3Error) return this.sendError(res, err, req.method === 'HEAD');
      return this.sendError(res, new S3Error(500, 'InternalError', (err as Error).message));
    }
  }

  private sendError(res: ServerResponse, err: S3Error, head = false): void {
    if (res.headersSent) return void res.destroy();
    res.writeHead(err.status, { 'content-type': 'application/xml', 'x-amz-request-id': randomBytes(8).toString('hex') });
    res.end(head ? undefined : `<?xml version="1.0" encoding="UTF-8"?>\n<Error>${el('Code', err.code)}${el('Message', err.message)}</Error>`);
  }

  private async dispatch(
    op: OpName,
    c: { bucket: string; key: string; q: URLSearchParams; req: IncomingMessage; res: ServerResponse; body: Buffer; bitRot: boolean },
  ): Promise<{ status?: number; headers?: Record<string, string>; body?: string; raw?: Buffer | string }> {
    const h = c.req.headers;
    switch (op) {
      case 'CreateBucket':
        if (!this.buckets.has(c.bucket)) this.buckets.set(c.bucket, new Map());
        return {};
      case 'CreateMultipartUpload': {
        this.bucket(c.bucket);
        const algHeader = (h['x-amz-checksum-algorithm'] as string | undefined)?.toUpperCase();
        const typeHeader = (h['x-amz-checksum-type'] as string | undefined)?.toUpperCase();
        if (typeHeader && !algHeader) throw new S3Error(400, 'InvalidRequest', 'The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.');
        if (algHeader && !isAlg(algHeader)) throw new S3Error(400, 'InvalidRequest', `Checksum algorithm ${algHeader} is not supported`);
        if (typeHeader && typeHeader !== 'COMPOSITE' && typeHeader !== 'FULL_OBJECT') throw new S3Error(400, 'InvalidRequest', `bad checksum type ${typeHeader}`);
        const alg = (algHeader as Alg | undefined) ?? null;
        if (alg && typeHeader === 'FULL_OBJECT' && (alg === 'SHA1' || alg === 'SHA256')) {
          throw new S3Error(400, 'InvalidRequest', `The FULL_OBJECT checksum type cannot be used with the ${alg.toLowerCase()} checksum algorithm.`);
        }
        if (alg === 'CRC64NVME' && typeHeader === 'COMPOSITE') throw new S3Error(400, 'InvalidRequest', 'The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.');
        const type = alg ? ((typeHeader as 'COMPOSITE' | 'FULL_OBJECT' | undefined) ?? (alg === 'CRC64NVME' ? 'FULL_OBJECT' : 'COMPOSITE')) : null;
        const only = alg ? this.options.checksumTypes?.[alg] : undefined;
        if (only && type !== only) throw new S3Error(400, 'InvalidRequest', `The ${type} checksum type is not supported for the ${alg!.toLowerCase()} checksum algorithm; use ${only}.`);
        const uploadId = randomBytes(24).toString('base64url');
        const u: MpUpload = { bucket: c.bucket, key: c.key, uploadId, algorithm: alg, type, kms: (h['x-amz-server-side-encryption'] as string | undefined)?.startsWith('aws:kms') ?? false, headers: objectHeaders(h), parts: new Map(), initiated: new Date() };
        const ssec = sseC(c.req);
        if (ssec) u.sseCKeyMd5 = ssec;
        if (u.kms) u.kmsKeyId = kmsArn(h['x-amz-server-side-encryption-aws-kms-key-id'] as string | undefined);
        this.uploads.set(uploadId, u);
        const headers: Record<string, string> = {};
        if (alg) {
          headers['x-amz-checksum-algorithm'] = alg;
          headers['x-amz-checksum-type'] = type!;
        }
        Object.assign(headers, sseHeaders(u));
        return { headers, body: `<InitiateMultipartUploadResult>${el('Bucket', c.bucket)}${el('Key', c.key)}${el('UploadId', uploadId)}</InitiateMultipartUploadResult>` };
      }
      case 'UploadPart': {
        const u = this.upload(c.q.get('uploadId')!);
        const n = Number(c.q.get('partNumber'));
        const most = this.options.maxParts ?? 10_000;
        if (!Number.isInteger(n) || n < 1 || n > most) throw new S3Error(400, 'InvalidArgument', `Part number must be an integer between 1 and ${most}, inclusive`);
        this.checkSseC(u, c.req, true);
        let data = c.body;
        let trailers: Record<string, string> = {};
        if (String(h['x-amz-content-sha256'] ?? '').startsWith('STREAMING-') || String(h['content-encoding'] ?? '').includes('aws-chunked')) {
          ({ data, trailers } = decodeAwsChunked(c.body));
        }
        if (h['content-md5'] !== undefined && h['content-md5'] !== md5B64(data)) throw new S3Error(400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.');
        const sent = this.options.checksums === 'ignored' ? {} : { ...pickChecksums(h), ...pickChecksums(trailers) };
        const names = Object.keys(sent) as Alg[];
        if (names.length > 1) throw new S3Error(400, 'InvalidRequest', 'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.');
        const sentAlg = names[0];
        if (u.algorithm && sentAlg && sentAlg !== u.algorithm) {
          throw new S3Error(400, 'InvalidRequest', `Checksum Type mismatch occurred, expected checksum Type: ${u.algorithm.toLowerCase()}, actual checksum Type: ${sentAlg.toLowerCase()}`);
        }
        if (u.algorithm && !sentAlg && u.type === 'COMPOSITE') {
          throw new S3Error(400, 'InvalidRequest', `Checksum Type mismatch occurred, expected checksum Type: ${u.algorithm.toLowerCase()}, actual checksum Type: null`);
        }
        if (sentAlg && sent[sentAlg] !== (await digestB64(sentAlg, data))) throw new S3Error(400, 'BadDigest', `The ${sentAlg} you specified did not match the calculated checksum.`);
        const part = await this.store(u, n, c.bitRot ? flip(data) : data);
        const headers: Record<string, string> = { etag: `"${part.etag}"`, ...sseHeaders(u) };
        if (u.algorithm) headers[checksumHeader(u.algorithm)] = await digestB64(u.algorithm, data);
        return { headers };
      }
      case 'ListParts': {
        const u = this.upload(c.q.get('uploadId')!);
        if (u.algorithm) this.checkSseC(u, c.req, true);
        const max = Math.min(1000, Number(c.q.get('max-parts') ?? 1000));
        const marker = Number(c.q.get('part-number-marker') ?? 0);
        const all = [...u.parts.entries()].filter(([n]) => n > marker).sort((a, b) => a[0] - b[0]);
        const page = all.slice(0, max);
        const truncated = all.length > max;
        const parts = page
          .map(([n, p]) => `<Part>${el('PartNumber', n)}${el('LastModified', p.lastModified.toISOString())}${el('ETag', `"${p.etag}"`)}${el('Size', p.data.length)}${u.algorithm && p.checksum ? el(`Checksum${u.algorithm}`, p.checksum) : ''}</Part>`)
          .join('');
        const abortAfter = this.options.abortAfterMs;
        return {
          ...(abortAfter !== undefined ? { headers: { 'x-amz-abort-date': new Date(u.initiated.getTime() + abortAfter).toUTCString(), 'x-amz-abort-rule-id': 'expire-incomplete' } } : {}),
          body:
            `<ListPartsResult>${el('Bucket', u.bucket)}${el('Key', u.key)}${el('UploadId', u.uploadId)}${el('PartNumberMarker', marker)}` +
            `${el('NextPartNumberMarker', page.at(-1)?.[0] ?? 0)}${el('MaxParts', max)}${el('IsTruncated', truncated)}${parts}` +
            `${u.algorithm ? el('ChecksumAlgorithm', u.algorithm) + el('ChecksumType', u.type!) : ''}<StorageClass>STANDARD</StorageClass></ListPartsResult>`,
        };
      }
      case 'CompleteMultipartUpload':
        return this.complete(c);
      case 'AbortMultipartUpload':
        this.upload(c.q.get('uploadId')!);
        this.uploads.delete(c.q.get('uploadId')!);
        return { status: 204 };
      case 'ListMultipartUploads': {
        const objects = this.bucket(c.bucket);
        if (this.options.listUploads === false) {
          return { body: `<ListBucketResult>${el('Name', c.bucket)}${el('MaxKeys', 1000)}${el('IsTruncated', false)}${[...objects.entries()].map(([k, o]) => `<Contents>${el('Key', k)}${el('ETag', `"${o.etag}"`)}${el('Size', o.data.length)}</Contents>`).join('')}</ListBucketResult>` };
        }
        const prefix = c.q.get('prefix') ?? '';
        const keyMarker = c.q.get('key-marker') ?? '';
        const idMarker = c.q.get('upload-id-marker') ?? '';
        const max = Math.min(1000, Number(c.q.get('max-uploads') ?? 1000));
        const all = [...this.uploads.values()]
          .filter((u) => u.bucket === c.bucket && u.key.startsWith(prefix))
          .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.initiated.getTime() - b.initiated.getTime()))
          .filter((u) => !keyMarker || u.key > keyMarker || (u.key === keyMarker && idMarker && u.uploadId > idMarker));
        const page = all.slice(0, max);
        const last = page.at(-1);
        return {
          body:
            `<ListMultipartUploadsResult>${el('Bucket', c.bucket)}${el('KeyMarker', keyMarker)}${el('UploadIdMarker', idMarker)}` +
            `${el('NextKeyMarker', last?.key ?? '')}${el('NextUploadIdMarker', last?.uploadId ?? '')}${el('MaxUploads', max)}${el('IsTruncated', all.length > max)}` +
            page.map((u) => `<Upload>${el('Key', u.key)}${el('UploadId', u.uploadId)}${el('Initiated', u.initiated.toISOString())}${u.algorithm ? el('ChecksumAlgorithm', u.algorithm) + el('ChecksumType', u.type!) : ''}</Upload>`).join('') +
            `</ListMultipartUploadsResult>`,
        };
      }
      case 'HeadObject':
      case 'GetObject': {
        const o = this.object(c.bucket, c.key);
        if (o.sseCKeyMd5 && sseC(c.req) !== o.sseCKeyMd5) throw new S3Error(400, 'InvalidRequest', 'The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.');
        const headers: Record<string, string> = { ...o.headers, etag: `"${o.etag}"`, 'last-modified': new Date().toUTCString(), ...sseHeaders(o) };
        const partNumber = c.q.get('partNumber');
        const mode = String(h['x-amz-checksum-mode'] ?? '').toUpperCase() === 'ENABLED' && this.options.headChecksums !== false;
        let data = o.data;
        if (partNumber) {
          const n = Number(partNumber);
          if (n < 1 || n > o.partsCount) throw new S3Error(416, 'InvalidPartNumber', 'The requested partnumber is not satisfiable');
          const offset = o.parts.slice(0, n - 1).reduce((a, p) => a + p.size, 0);
          data = o.data.subarray(offset, offset + o.parts[n - 1]!.size);
          headers['x-amz-mp-parts-count'] = String(o.partsCount);
          if (mode && o.type === 'COMPOSITE' && o.parts[n - 1]!.checksum) {
            headers[checksumHeader(o.algorithm)] = o.parts[n - 1]!.checksum!;
            headers['x-amz-checksum-type'] = 'COMPOSITE';
          }
        } else if (mode) {
          headers[checksumHeader(o.algorithm)] = o.checksum;
          headers['x-amz-checksum-type'] = o.type;
        }
        headers['content-length'] = String(data.length);
        return op === 'HeadObject' ? { headers } : { headers, raw: data };
      }
      case 'GetObjectAttributes': {
        const o = this.object(c.bucket, c.key);
        const wanted = String(h['x-amz-object-attributes'] ?? '')
          .split(',')
          .map((s) => s.trim());
        const max = Math.min(1000, Number(h['x-amz-max-parts'] ?? 1000));
        const marker = Number(h['x-amz-part-number-marker'] ?? 0);
        let body = '<GetObjectAttributesResponse>';
        if (wanted.includes('ETag')) body += el('ETag', o.etag);
        // GetObjectAttributes gives the COMPOSITE value without its "-N".
        if (wanted.includes('Checksum')) body += `<Checksum>${el(`Checksum${o.algorithm}`, o.checksum.replace(/-\d+$/, ''))}${el('ChecksumType', o.type)}</Checksum>`;
        if (wanted.includes('ObjectParts')) {
          const parts = o.parts.map((p, i) => ({ n: i + 1, ...p })).filter((p) => p.n > marker);
          const page = parts.slice(0, max);
          body += `<ObjectParts>${el('PartsCount', o.partsCount)}${el('PartNumberMarker', marker)}${el('NextPartNumberMarker', page.at(-1)?.n ?? marker)}${el('MaxParts', max)}${el('IsTruncated', parts.length > max)}`;
          // In general purpose buckets, parts are listed only when an additional checksum was applied.
          if (o.explicitAlgorithm) body += page.map((p) => `<Part>${el('PartNumber', p.n)}${el('Size', p.size)}${p.checksum ? el(`Checksum${o.algorithm}`, p.checksum) : ''}</Part>`).join('');
          body += '</ObjectParts>';
        }
        if (wanted.includes('ObjectSize')) body += el('ObjectSize', o.data.length);
        return { body: body + '</GetObjectAttributesResponse>' };
      }
      case 'GetObjectTagging':
        this.object(c.bucket, c.key);
        return { body: '<Tagging><TagSet></TagSet></Tagging>' };
      case 'GetObjectAcl':
        this.object(c.bucket, c.key);
        return { body: `<AccessControlPolicy><Owner><ID>${OWNER}</ID></Owner><AccessControlList><Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>${OWNER}</ID></Grantee><Permission>FULL_CONTROL</Permission></Grant></AccessControlList></AccessControlPolicy>` };
      case 'PutObject': {
        const b = this.bucket(c.bucket);
        const cs = await digestB64('CRC64NVME', c.body);
        b.set(c.key, { data: c.body, etag: md5Hex(c.body), algorithm: 'CRC64NVME', type: 'FULL_OBJECT', checksum: cs, parts: [{ size: c.body.length }], partsCount: 1, kms: false, headers: objectHeaders(h), explicitAlgorithm: false });
        return { headers: { etag: `"${md5Hex(c.body)}"` } };
      }
      case 'DeleteObject':
        this.bucket(c.bucket).delete(c.key);
        return { status: 204 };
    }
  }

  private async complete(c: { bucket: string; key: string; q: URLSearchParams; req: IncomingMessage; body: Buffer }) {
    const uploadId = c.q.get('uploadId')!;
    const listed = parseCompleteBody(c.body.toString('utf8'));
    const done = this.completed.get(uploadId);
    const u = this.uploads.get(uploadId);
    if (!u) {
      // AWS answers an identical repeated Complete with success for a while.
      if (done && this.options.repeatCompleteSucceeds !== false && done.partsXml === c.body.toString('utf8')) return { headers: done.headers, body: done.body };
      throw new S3Error(404, 'NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.');
    }
    if (u.algorithm) this.checkSseC(u, c.req, true);
    if (listed.length === 0) throw new S3Error(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema');
    for (let i = 1; i < listed.length; i++) if (listed[i]!.partNumber <= listed[i - 1]!.partNumber) throw new S3Error(400, 'InvalidPartOrder', 'The list of parts was not in ascending order. Parts must be ordered by part number.');
    if (u.algorithm) {
      // With additional checksums, part numbers must start at 1 and be consecutive.
      listed.forEach((p, i) => {
        if (p.partNumber !== i + 1) throw new S3Error(400, 'InvalidPartOrder', 'Parts must be consecutive, starting at 1, when checksums are used.');
      });
    }
    const min = this.options.minPartSize ?? 5 * 1024 * 1024;
    const parts: StoredPart[] = [];
    for (const [i, p] of listed.entries()) {
      const stored = u.parts.get(p.partNumber);
      if (!stored || stored.etag !== p.etag.replace(/"/g, '')) throw new S3Error(400, 'InvalidPart', 'One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part\'s entity tag.');
      if (u.algorithm) {
        const given = p.checksums[u.algorithm];
        if (given === undefined) {
          throw new S3Error(400, 'InvalidRequest', `The upload was created using a ${u.algorithm.toLowerCase()} checksum. The complete request must include the checksum for each part. It was missing for part ${p.partNumber} in the request.`);
        }
        if (given !== stored.checksum) throw new S3Error(400, 'InvalidPart', `The checksum of part ${p.partNumber} does not match.`);
      }
      if (i < listed.length - 1 && stored.data.length < min) throw new S3Error(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.');
      parts.push(stored);
    }
    const data = Buffer.concat(parts.map((p) => p.data));
    const mpSize = c.req.headers['x-amz-mp-object-size'];
    if (mpSize !== undefined && Number(mpSize) !== data.length) throw new S3Error(400, 'InvalidRequest', `The provided x-amz-mp-object-size ${mpSize} does not match the object size ${data.length}`);
    const algorithm: Alg = u.algorithm ?? 'CRC64NVME';
    const type = u.type ?? 'FULL_OBJECT';
    const checksum =
      type === 'FULL_OBJECT'
        ? await digestB64(algorithm, data)
        : `${(await digest(algorithm, Buffer.concat(await Promise.all(parts.map((p) => digest(algorithm, p.data)))))).toString('base64')}-${parts.length}`;
    const typeHeader = String(c.req.headers['x-amz-checksum-type'] ?? '').toUpperCase();
    if (u.algorithm && typeHeader && typeHeader !== type) throw new S3Error(400, 'BadDigest', `The checksum type ${typeHeader} does not match the upload's ${type}`);
    const wholeGiven = c.req.headers[checksumHeader(algorithm)] as string | undefined;
    if (u.algorithm && wholeGiven !== undefined && type === 'FULL_OBJECT' && wholeGiven !== checksum) {
      throw new S3Error(400, 'BadDigest', `The ${algorithm} you specified for the full object did not match the calculated checksum.`);
    }
    const style = this.options.multipartEtag ?? 'md5-of-md5s';
    const etag =
      u.kms || u.sseCKeyMd5 || style === 'opaque'
        ? randomBytes(16).toString('hex') // not an MD5 of anything
        : style === 'whole-md5'
          ? createHash('md5').update(data).digest('hex')
          : `${createHash('md5').update(Buffer.concat(parts.map((p) => Buffer.from(p.md5, 'hex')))).digest('hex')}-${parts.length}`;
    const obj: StoredObject = {
      data,
      etag,
      algorithm,
      type,
      checksum,
      parts: await Promise.all(parts.map(async (p) => ({ size: p.data.length, ...(u.algorithm ? { checksum: await digestB64(u.algorithm, p.data) } : {}) }))),
      partsCount: parts.length,
      kms: u.kms,
      ...(u.kmsKeyId ? { kmsKeyId: u.kmsKeyId } : {}),
      headers: u.headers,
      explicitAlgorithm: u.algorithm !== null,
    };
    if (u.sseCKeyMd5) obj.sseCKeyMd5 = u.sseCKeyMd5;
    this.bucket(u.bucket).set(u.key, obj);
    this.uploads.delete(uploadId);
    const body =
      `<CompleteMultipartUploadResult>${el('Location', `${this.endpoint}/${u.bucket}/${u.key}`)}${el('Bucket', u.bucket)}${el('Key', u.key)}${el('ETag', `"${etag}"`)}` +
      `${this.options.checksums === 'ignored' ? '' : `${el(`Checksum${algorithm}`, checksum)}${el('ChecksumType', type)}`}</CompleteMultipartUploadResult>`;
    const headers = sseHeaders(u);
    this.completed.set(uploadId, { body, headers, partsXml: c.body.toString('utf8') });
    return { headers, body };
  }

  private async store(u: MpUpload, n: number, data: Buffer): Promise<StoredPart> {
    const md5 = md5Hex(data);
    const part: StoredPart = {
      data,
      md5,
      // Under SSE-KMS and SSE-C part ETags are not MD5s (but still 32 hex digits, as on AWS).
      etag: u.kms || u.sseCKeyMd5 ? createHash('md5').update(`opaque:${md5}:${u.uploadId}`).digest('hex') : md5,
      lastModified: new Date(),
    };
    if (u.algorithm) part.checksum = await digestB64(u.algorithm, data);
    u.parts.set(n, part); // the same part number again replaces the part
    return part;
  }

  private bucket(name: string): Map<string, StoredObject> {
    const b = this.buckets.get(name);
    if (!b) throw new S3Error(404, 'NoSuchBucket', 'The specified bucket does not exist');
    return b;
  }

  private upload(id: string): MpUpload {
    const u = this.uploads.get(id);
    if (!u) throw new S3Error(404, 'NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.');
    return u;
  }

  private object(bucket: string, key: string): StoredObject {
    const o = this.bucket(bucket).get(key);
    if (!o) throw new S3Error(404, 'NoSuchKey', 'The specified key does not exist.');
    return o;
  }

  private checkSseC(u: MpUpload, req: IncomingMessage, required: boolean): void {
    if (!u.sseCKeyMd5) return;
    const given = sseC(req);
    if (!given && required) throw new S3Error(400, 'InvalidRequest', 'The multipart upload initiate requested encryption. Subsequent part requests must include the appropriate encryption parameters.');
    if (given && given !== u.sseCKeyMd5) throw new S3Error(400, 'InvalidArgument', 'The calculated MD5 hash of the key did not match the hash that was provided.');
  }
}

/** The key's MD5 (base64) from the SSE-C headers, checked against the key itself. */
function sseC(req: IncomingMessage): string | undefined {
  const key = req.headers['x-amz-server-side-encryption-customer-key'] as string | undefined;
  if (!key) return undefined;
  const md5 = createHash('md5').update(Buffer.from(key, 'base64')).digest('base64');
  if (req.headers['x-amz-server-side-encryption-customer-key-md5'] !== md5) throw new S3Error(400, 'InvalidArgument', 'The calculated MD5 hash of the key did not match the hash that was provided.');
  return md5;
}

/** The headers an object keeps from its create request; S3's default type when none was given. */
function objectHeaders(h: IncomingMessage['headers']): Record<string, string> {
  const out: Record<string, string> = { 'content-type': 'binary/octet-stream' };
  for (const [k, v] of Object.entries(h)) {
    if (typeof v === 'string' && (k.startsWith('x-amz-meta-') || ['content-type', 'cache-control', 'content-encoding', 'content-disposition'].includes(k))) out[k] = v;
  }
  return out;
}

/** The account every object here belongs to. */
const OWNER = 'emulator-owner';

/** S3 names a KMS key by its key ARN, whatever form it was given in (an alias resolves to its key); with none given, the account's default key. */
function kmsArn(given: string | undefined): string {
  if (given?.startsWith('arn:') && given.includes(':key/')) return given;
  const alias = given?.replace(/^arn:.*:alias\//, 'alias/');
  return `arn:aws:kms:us-east-1:111122223333:key/${alias?.startsWith('alias/') ? `${alias.slice(6)}-key` : (given ?? 'default-key')}`;
}

function sseHeaders(x: { kms: boolean; kmsKeyId?: string; sseCKeyMd5?: string }): Record<string, string> {
  if (x.sseCKeyMd5) return { 'x-amz-server-side-encryption-customer-algorithm': 'AES256', 'x-amz-server-side-encryption-customer-key-md5': x.sseCKeyMd5 };
  if (x.kms) return { 'x-amz-server-side-encryption': 'aws:kms', ...(x.kmsKeyId ? { 'x-amz-server-side-encryption-aws-kms-key-id': x.kmsKeyId } : {}) };
  return {};
}

function pickChecksums(h: Record<string, unknown>): Partial<Record<Alg, string>> {
  const out: Partial<Record<Alg, string>> = {};
  for (const alg of ALGORITHMS) {
    const v = h[checksumHeader(alg)];
    if (typeof v === 'string') out[alg] = v;
  }
  return out;
}

function flip(data: Buffer): Buffer {
  const copy = Buffer.from(data);
  const i = Math.floor(copy.length / 2);
  if (copy.length) copy[i] = copy[i]! ^ 0x01;
  return copy;
}

/** Reads the body; with `resetAfter`, destroys the connection once that many bytes arrived. */
function readBody(req: IncomingMessage, resetAfter?: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      chunks.push(c);
      n += c.length;
      if (resetAfter !== undefined && n >= resetAfter) {
        req.socket.resetAndDestroy();
        resolve(undefined);
      }
    });
    req.on('end', () => {
      if (resetAfter !== undefined && n < resetAfter && resetAfter > 0) {
        // A body shorter than the reset point: reset once it has all arrived.
        req.socket.resetAndDestroy();
        return resolve(undefined);
      }
      resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

/** aws-chunked: hex-size[;ext]\r\n data \r\n … 0\r\n trailers \r\n\r\n */
function decodeAwsChunked(raw: Buffer): { data: Buffer; trailers: Record<string, string> } {
  const out: Buffer[] = [];
  const trailers: Record<string, string> = {};
  let pos = 0;
  for (;;) {
    const eol = raw.indexOf('\r\n', pos);
    const size = parseInt(raw.subarray(pos, eol).toString().split(';')[0]!, 16);
    pos = eol + 2;
    if (size === 0) break;
    out.push(raw.subarray(pos, pos + size));
    pos += size + 2;
  }
  for (const line of raw.subarray(pos).toString().split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) trailers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { data: Buffer.concat(out), trailers };
}

function parseCompleteBody(xml: string): { partNumber: number; etag: string; checksums: Partial<Record<Alg, string>> }[] {
  return [...xml.matchAll(/<Part>([\s\S]*?)<\/Part>/g)].map((m) => {
    const inner = m[1]!;
    const get = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(inner)?.[1];
    const checksums: Partial<Record<Alg, string>> = {};
    for (const alg of ALGORITHMS) {
      const v = get(`Checksum${alg}`);
      if (v !== undefined) checksums[alg] = v;
    }
    return { partNumber: Number(get('PartNumber')), etag: (get('ETag') ?? '').replace(/&quot;/g, '"'), checksums };
  });
}
