/**
 * Quirks of S3 servers partwise is pointed at, as profiles of the S3 emulator (issue 26):
 * - a finished multipart object's ETag in the forms servers give it: S3's MD5 of the part MD5s
 *   with "-N"; the plain MD5 of the whole object (s3rver); opaque (Google Cloud Storage's XML API).
 *   Only the first two identify the bytes, and neither of the others is ever a reason to call an
 *   identical object bad (defect 1). With no checksum, so the ETag is the only evidence.
 * - no ListParts: GET ?uploadId read as GetObject (fauxqs), answering NoSuchKey for a live upload,
 *   or the object's bytes with 200: never taken for "the upload is gone" (defect 6).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand, ListMultipartUploadsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { FolderJob, StreamUpload, Upload } from '../src/index.ts';
import { SdkS3Port, createS3Client } from '../src/s3/adapter.ts';
import { emulatorClient } from './emulator/client.ts';
import { S3Emulator, type EmulatorOptions } from './emulator/server.ts';
import { cliEnv, jsonLines, runCli } from './helpers/cli.ts';
import { tempDir } from './helpers/s3.ts';

const KiB = 1024;
const partSize = 8 * KiB;
const Bucket = 'etags';
const credentials = { accessKeyId: 'emulator', secretAccessKey: 'emulator-secret' };

/** An emulator in a server's profile, with the bucket the tests use. */
async function emulatorWithBucket(options: EmulatorOptions): Promise<S3Emulator> {
  const e = await S3Emulator.start({ minPartSize: partSize, ...options });
  await emulatorClient(e.endpoint).send(new CreateBucketCommand({ Bucket }));
  return e;
}

/** An upload stopped after its first part: the file, the port, and the upload left open with its journal. */
async function interrupted(emu: S3Emulator, key: string) {
  const dir = await tempDir();
  const bytes = randomBytes(4 * partSize + 123);
  const path = join(dir, 'f.bin');
  await writeFile(path, bytes);
  const s3 = new SdkS3Port(createS3Client({ endpoint: emu.endpoint, region: 'us-east-1', credentials }));
  const ac = new AbortController();
  const u = new Upload({ s3, file: path, bucket: Bucket, key, partSize, minPartSize: 1, stateDir: dir, concurrency: 1, signal: ac.signal });
  u.on('part-done', () => ac.abort());
  await assert.rejects(u.done());
  const uploadId = (await emulatorClient(emu.endpoint).send(new ListMultipartUploadsCommand({ Bucket, Prefix: key }))).Uploads![0]!.UploadId!;
  return { dir, path, s3, uploadId, resume: () => new Upload({ s3, file: path, bucket: Bucket, key, partSize, minPartSize: 1, stateDir: dir }).done() };
}

describe('ETag forms of a finished multipart object', () => {
  const servers: Partial<Record<'wholeMd5' | 'opaque', S3Emulator>> = {};
  before(async () => {
    servers.wholeMd5 = await emulatorWithBucket({ multipartEtag: 'whole-md5', headChecksums: false });
    servers.opaque = await emulatorWithBucket({ multipartEtag: 'opaque', headChecksums: false });
  });
  after(async () => {
    for (const e of Object.values(servers)) await e.close();
  });

  async function file(size = 4 * partSize + 123) {
    const dir = await tempDir();
    const bytes = randomBytes(size);
    const path = join(dir, 'f.bin');
    await writeFile(path, bytes);
    return { dir, path, bytes };
  }
  const upload = (e: S3Emulator, f: { dir: string; path: string }, key: string) =>
    new Upload({ s3: new SdkS3Port(createS3Client({ endpoint: e.endpoint, region: 'us-east-1', credentials })), file: f.path, bucket: Bucket, key, partSize, minPartSize: 1, stateDir: f.dir, checksumAlgorithm: 'none' });
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  const objectSha = async (e: S3Emulator, key: string) => sha(await (await emulatorClient(e.endpoint).send(new GetObjectCommand({ Bucket, Key: key }))).Body!.transformToByteArray());

  test('the plain MD5 of the whole object (s3rver): the upload is proven by it (level object-md5), never "do not trust"', async () => {
    const f = await file();
    const r = await upload(servers.wholeMd5!, f, 'whole.bin').done();
    assert.equal(r.verification.level, 'object-md5');
    assert.ok(r.verification.checks.some((c) => /MD5 of the whole file/.test(c)), r.verification.checks.join('; '));
    assert.equal(await objectSha(servers.wholeMd5!, 'whole.bin'), sha(f.bytes));
  });

  test('an opaque ETag and nothing else: OBJECT_UNVERIFIED (exit 4 material), not OBJECT_VERIFICATION_FAILED', async () => {
    const f = await file();
    await assert.rejects(upload(servers.opaque!, f, 'opaque.bin').done(), (e: { code?: string; message?: string }) => {
      assert.equal(e.code, 'OBJECT_UNVERIFIED', e.message);
      assert.match(e.message ?? '', /neither a multipart ETag nor the file's MD5/);
      return true;
    });
    assert.equal(await objectSha(servers.opaque!, 'opaque.bin'), sha(f.bytes), 'the object is the file: nothing called it bad');
  });

  test('the command: upload exits 0 on the whole-object MD5, and verify says object-md5 (not multipart-etag); on an opaque ETag both exit 4', async () => {
    for (const [name, e, code] of [['whole', servers.wholeMd5!, 0], ['opaque', servers.opaque!, 4]] as const) {
      const f = await file(11 * 1024 * KiB); // three parts of 5 MiB: a multipart upload
      const env = { ...cliEnv(f.dir), AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey, AWS_ENDPOINT_URL: e.endpoint };
      const up = await runCli(['upload', f.path, `s3://${Bucket}/cli-${name}.bin`, '--part-size', '5MiB', '--checksum', 'none', '--json'], env);
      assert.equal(up.code, code, up.stderr);
      const v = await runCli(['verify', f.path, `s3://${Bucket}/cli-${name}.bin`, '--json'], env);
      assert.equal(v.code, code, v.stderr);
      const last = jsonLines(v.stdout).at(-1) as { verificationLevel?: string; level?: string };
      if (code === 0) assert.equal(last.verificationLevel ?? last.level, 'object-md5', v.stdout);
    }
  });
});

describe('a server without ListParts (GET ?uploadId read as GetObject, as fauxqs)', () => {
  let emu: S3Emulator;
  before(async () => {
    emu = await emulatorWithBucket({ listParts: false });
  });
  after(() => emu.close());

  const notImplemented = (e: { code?: string; message?: string }) => {
    assert.equal(e.code, 'S3_REQUEST_FAILED', e.message);
    assert.match(e.message ?? '', /this server does not implement ListParts/);
    assert.match(e.message ?? '', /--fresh/);
    assert.doesNotMatch(e.message ?? '', /gone|run the same|resume with/i);
    return true;
  };

  test('NoSuchKey for a live upload (no object at the key): not "gone"; the server is said not to implement ListParts, and --fresh then uploads the file', async () => {
    const t = await interrupted(emu, 'nolist/absent.bin');
    await assert.rejects(t.resume(), notImplemented);
    const fresh = await new Upload({ s3: t.s3, file: t.path, bucket: Bucket, key: 'nolist/absent.bin', partSize, minPartSize: 1, stateDir: t.dir, fresh: true }).done();
    assert.equal(fresh.verification.level, 'full-object-checksum');
    const open = (await emulatorClient(emu.endpoint).send(new ListMultipartUploadsCommand({ Bucket, Prefix: 'nolist/' }))).Uploads ?? [];
    assert.deepEqual(open.map((u) => u.UploadId), [], 'no upload left open');
  });

  test('the object\'s bytes with 200 (an older object at the key): said not to implement ListParts, never "refused (HTTP 200)"', async () => {
    await emulatorClient(emu.endpoint).send(new PutObjectCommand({ Bucket, Key: 'nolist/present.bin', Body: randomBytes(3000) }));
    const t = await interrupted(emu, 'nolist/present.bin');
    await assert.rejects(t.resume(), notImplemented);
  });
});

describe('a server that answers ListMultipartUploads as ListObjects (fauxqs)', () => {
  let emu: S3Emulator;
  before(async () => {
    emu = await emulatorWithBucket({ listUploads: false });
    await emulatorClient(emu.endpoint).send(new PutObjectCommand({ Bucket, Key: 'listed/other.bin', Body: randomBytes(100) }));
  });
  after(() => emu.close());

  test('ls says the server read it as another operation (exit 1), never an empty list; discovery is skipped with a warning, not "no upload open"', async () => {
    const dir = await tempDir();
    const env = { ...cliEnv(dir), AWS_ENDPOINT_URL: emu.endpoint, AWS_ACCESS_KEY_ID: 'emulator', AWS_SECRET_ACCESS_KEY: 'emulator-secret', AWS_REGION: 'us-east-1' };
    const ls = await runCli(['ls', `s3://${Bucket}/listed/`], env);
    assert.equal(ls.code, 1, ls.stdout + ls.stderr);
    assert.match(ls.stderr, /not a list of uploads/);
    const path = join(dir, 'f.bin');
    await writeFile(path, randomBytes(2 * partSize));
    const s3 = new SdkS3Port(createS3Client({ endpoint: emu.endpoint, region: 'us-east-1', credentials }));
    const up = new Upload({ s3, file: path, bucket: Bucket, key: 'listed/f.bin', partSize, minPartSize: 1, stateDir: dir, discover: true });
    const warnings: { code: string; message: string }[] = [];
    up.on('warning', (w) => warnings.push(w));
    let why = '';
    up.on('discover', (d) => (why = d.why));
    const r = await up.done();
    assert.match(why, /could not be listed/, 'the discovery report does not say "no upload of this key is open"');
    assert.equal(r.verification.level, 'full-object-checksum');
    const skipped = warnings.find((w) => w.code === 'DISCOVERY_SKIPPED');
    assert.ok(skipped, JSON.stringify(warnings));
    assert.match(skipped.message, /not a list of uploads/);
  });
});

describe('a server that refuses AbortMultipartUpload (s3rver: 405)', () => {
  let emu: S3Emulator;
  before(async () => {
    emu = await emulatorWithBucket({});
  });
  after(() => emu.close());

  test('--fresh is a way out: the old upload is said to stay on the server (ABORT_FAILED), the journal is let go and the file uploaded', async () => {
    const { dir, path, s3 } = await interrupted(emu, 'noabort/f.bin');
    const refused = { op: 'AbortMultipartUpload' as const, times: 1000, action: { type: 'error' as const, status: 405, code: 'MethodNotAllowed', message: 'The specified method is not allowed against this resource.' } };
    const warnings: { code: string; message: string }[] = [];
    const r = await emu.withFault(refused, async () => {
      const up = new Upload({ s3, file: path, bucket: Bucket, key: 'noabort/f.bin', partSize, minPartSize: 1, stateDir: dir, fresh: true });
      up.on('warning', (w) => warnings.push(w));
      return up.done();
    });
    assert.equal(r.verification.level, 'full-object-checksum');
    const w = warnings.find((x) => x.code === 'ABORT_FAILED');
    assert.ok(w, JSON.stringify(warnings));
    assert.match(w.message, /does not allow AbortMultipartUpload/);
    assert.match(w.message, /stays on the server/);
  });
});

describe('servers that take checksums only their way (Cloudflare R2, Backblaze B2)', () => {
  const servers: Partial<Record<'r2' | 'b2', S3Emulator>> = {};
  before(async () => {
    servers.r2 = await emulatorWithBucket({ checksumTypes: { CRC32: 'COMPOSITE', CRC32C: 'COMPOSITE', SHA1: 'COMPOSITE', SHA256: 'COMPOSITE', CRC64NVME: 'FULL_OBJECT' } });
    servers.b2 = await emulatorWithBucket({ checksums: 'rejected' });
  });
  after(async () => {
    for (const e of Object.values(servers)) await e.close();
  });

  async function run(e: S3Emulator, key: string, extra: Record<string, unknown> = {}) {
    const dir = await tempDir();
    const bytes = randomBytes(3 * partSize + 77);
    const path = join(dir, 'f.bin');
    await writeFile(path, bytes);
    const s3 = new SdkS3Port(createS3Client({ endpoint: e.endpoint, region: 'us-east-1', credentials }));
    const up = new Upload({ s3, file: path, bucket: Bucket, key, partSize, minPartSize: 1, stateDir: dir, ...extra });
    const warnings: { code: string; message: string }[] = [];
    up.on('warning', (w) => warnings.push(w));
    return { done: up.done(), warnings, bytes };
  }

  test('R2: CRC32C as FULL_OBJECT refused, the upload is made COMPOSITE (said in a warning) and proven part by part; a type the user chose is never changed', async () => {
    const t = await run(servers.r2!, 'r2/default.bin');
    const r = await t.done;
    assert.equal(r.verification.level, 'composite-checksum');
    assert.ok(t.warnings.some((w) => w.code === 'CHECKSUM_TYPE_CHANGED' && /FULL_OBJECT/.test(w.message)), JSON.stringify(t.warnings));
    const got = await emulatorClient(servers.r2!.endpoint).send(new GetObjectCommand({ Bucket, Key: 'r2/default.bin' }));
    assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(t.bytes));
    const pinned = await run(servers.r2!, 'r2/pinned.bin', { checksumType: 'FULL_OBJECT' });
    await assert.rejects(pinned.done, (e: Error & { code?: string }) => {
      assert.match(e.message, /refuses this checksum \(or its type\).*--checksum/);
      return true;
    });
  });

  test('B2: every x-amz-checksum-* header refused: with no checksum chosen, the upload goes without (CHECKSUM_REFUSED) and the MD5 ETags prove it; a checksum the user chose is refused in words that give --checksum (never "does not implement")', async () => {
    const d = await run(servers.b2!, 'b2/default.bin');
    const byDefault = await d.done;
    assert.equal(byDefault.verification.level, 'multipart-etag');
    assert.ok(d.warnings.some((w) => w.code === 'CHECKSUM_REFUSED'), JSON.stringify(d.warnings));
    const got = await emulatorClient(servers.b2!.endpoint).send(new GetObjectCommand({ Bucket, Key: 'b2/default.bin' }));
    assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(d.bytes));
    const t = await run(servers.b2!, 'b2/chosen.bin', { checksumAlgorithm: 'CRC32C' });
    await assert.rejects(t.done, (e: Error) => {
      assert.match(e.message, /Unsupported header/);
      assert.match(e.message, /refuses this checksum.*another --checksum, or none \(the MD5 ETags/);
      assert.doesNotMatch(e.message, /does not implement|run the same command/);
      return true;
    });
    // Under SSE-KMS the ETags are no MD5s: without a checksum nothing could prove the bytes, so the refusal stands before a byte is sent.
    const parts = servers.b2!.count('UploadPart');
    const kms = await run(servers.b2!, 'b2/kms.bin', { serverSideEncryption: 'aws:kms' });
    await assert.rejects(kms.done, /refuses this checksum/);
    assert.equal(servers.b2!.count('UploadPart'), parts, 'nothing sent');
    assert.ok(!kms.warnings.some((w) => w.code === 'CHECKSUM_REFUSED'));
    const none = await run(servers.b2!, 'b2/none.bin', { checksumAlgorithm: 'none' });
    const r = await none.done;
    assert.equal(r.verification.level, 'multipart-etag');
  });

  test('B2, a stream with no checksum chosen: it goes without one (CHECKSUM_REFUSED) and the multipart ETag proves it', async () => {
    const bytes = randomBytes(3 * partSize + 11);
    const s3 = new SdkS3Port(createS3Client({ endpoint: servers.b2!.endpoint, region: 'us-east-1', credentials }));
    const up = new StreamUpload({ s3, source: Readable.from([bytes]), bucket: Bucket, key: 'b2/stream.bin', partSize, minPartSize: 1 });
    const warnings: string[] = [];
    up.on('warning', (w) => warnings.push(w.code));
    const r = await up.done();
    assert.equal(r.verification.level, 'multipart-etag');
    assert.ok(warnings.includes('CHECKSUM_REFUSED'), warnings.join());
  });

  test('B2, a folder job with no checksum chosen: small files and multipart ones go without, each proven by its MD5 ETag, exit 0 material (nothing failed)', async () => {
    const dir = await tempDir();
    const small = randomBytes(1000);
    const big = randomBytes(2 * partSize + 3);
    await writeFile(join(dir, 'small.txt'), small);
    await writeFile(join(dir, 'big.bin'), big);
    const s3 = new SdkS3Port(createS3Client({ endpoint: servers.b2!.endpoint, region: 'us-east-1', credentials }));
    const state = await tempDir();
    const job = new FolderJob({ s3, dir, bucket: Bucket, prefix: 'b2tree/', partSize, minPartSize: 1, stateDir: state });
    const warnings: string[] = [];
    job.on('warning', (w) => warnings.push(w.code));
    const r = await job.done();
    assert.equal(r.failed, 0, JSON.stringify(r.outcomes.map((f) => f.error)));
    assert.deepEqual(r.outcomes.map((f) => f.verificationLevel).sort(), ['multipart-etag', 'object-md5']);
    assert.ok(warnings.includes('CHECKSUM_REFUSED'), warnings.join());
  });
});

describe('a NoSuchKey from ListParts that passes (a server catching up just after a write)', () => {
  let emu: S3Emulator;
  before(async () => {
    emu = await emulatorWithBucket({});
  });
  after(() => emu.close());

  test('is never the end of a live upload: asked again, the upload is listed; the run stops resumable with the upload and journal kept, and the next run resumes it', async () => {
    const { dir, path, s3, uploadId } = await interrupted(emu, 'passing/f.bin');
    const once = { op: 'ListParts' as const, times: 1, action: { type: 'error' as const, status: 404, code: 'NoSuchKey', message: 'The specified key does not exist.' } };
    await emu.withFault(once, () =>
      assert.rejects(new Upload({ s3, file: path, bucket: Bucket, key: 'passing/f.bin', partSize, minPartSize: 1, stateDir: dir }).done(), (e: Error & { resumable?: boolean }) => {
        assert.equal(e.resumable, true, e.message);
        assert.match(e.message, /passing answer/);
        return true;
      }),
    );
    assert.equal(emu.count('AbortMultipartUpload'), 0, 'the live upload was not aborted');
    // NoSuchKey, then the server failing when asked again: its failure goes up, resumable; nothing aborted.
    const thenFailing = [{ ...once }, { op: 'ListParts' as const, times: 100, action: { type: 'error' as const, status: 503, code: 'ServiceUnavailable', message: 'Please reduce your request rate.' } }];
    emu.faults.push(...thenFailing);
    try {
      await assert.rejects(new Upload({ s3, file: path, bucket: Bucket, key: 'passing/f.bin', partSize, minPartSize: 1, stateDir: dir, retry: { maxAttempts: 2, baseDelayMs: 1 } }).done(), /ServiceUnavailable/);
    } finally {
      emu.faults.splice(0, emu.faults.length);
    }
    assert.equal(emu.count('AbortMultipartUpload'), 0, 'not aborted on a failed second look');
    const r = await new Upload({ s3, file: path, bucket: Bucket, key: 'passing/f.bin', partSize, minPartSize: 1, stateDir: dir }).done();
    assert.equal(r.uploadId, uploadId, 'the same upload resumed');
    assert.ok(r.partsSkipped >= 1);
  });
});
