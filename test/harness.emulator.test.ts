/**
 * The emulator checked against independent implementations, so it cannot agree with the engine by
 * sharing a bug: check values, the SDK's own checksum code, and the SDK's response validation.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Crc32cJs, Crc64NvmeJs } from '@aws-sdk/checksums/crc';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectAttributesCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListPartsCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { digest } from './emulator/checksums.ts';
import { emulatorClient } from './emulator/client.ts';
import { S3Emulator } from './emulator/server.ts';

const KiB = 1024;

async function sdkDigest(h: { update(d: Uint8Array): void; digest(): Promise<Uint8Array> }, data: Uint8Array): Promise<string> {
  h.update(data);
  return Buffer.from(await h.digest()).toString('base64');
}

const rejectsWith = (p: Promise<unknown>, code: string) => assert.rejects(p, (e: Error) => (e.name === code ? true : assert.fail(`expected ${code}, got ${e.name}: ${e.message}`)));

describe('S3 emulator', () => {
  let emu: S3Emulator;
  let s3: S3Client;
  const Bucket = 'emu';
  before(async () => {
    emu = await S3Emulator.start({ minPartSize: 5 * KiB });
    s3 = emulatorClient(emu.endpoint);
    await s3.send(new CreateBucketCommand({ Bucket }));
  });
  after(() => emu.close());

  async function mpu(Key: string, parts: Buffer[], alg?: 'CRC32C' | 'SHA256' | 'CRC64NVME' | 'CRC32', type?: 'COMPOSITE' | 'FULL_OBJECT') {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key, ...(alg ? { ChecksumAlgorithm: alg } : {}), ...(type ? { ChecksumType: type } : {}) }));
    const done = [];
    for (const [i, Body] of parts.entries()) {
      const out = await s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: i + 1, Body, ...(alg ? { ChecksumAlgorithm: alg } : {}) }));
      done.push({ PartNumber: i + 1, ETag: out.ETag!, ...(alg ? { [`Checksum${alg}`]: (out as unknown as Record<string, unknown>)[`Checksum${alg}`] } : {}) });
    }
    return { UploadId: UploadId!, done };
  }

  test('check values for "123456789"', async () => {
    const nine = Buffer.from('123456789');
    assert.equal((await digest('CRC32', nine)).toString('hex'), 'cbf43926');
    assert.equal((await digest('CRC32C', nine)).toString('hex'), 'e3069283');
    assert.equal((await digest('CRC64NVME', nine)).toString('hex'), 'ae8b14860a799888');
    assert.equal((await digest('SHA256', nine)).toString('hex'), '15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225');
  });

  test('COMPOSITE CRC32C (the AWS default type for CRC32C) equals the SDK checksum code over the part digests, "-N"', async () => {
    const parts = [randomBytes(6 * KiB), randomBytes(6 * KiB), randomBytes(100)];
    const { UploadId, done } = await mpu('composite', parts, 'CRC32C');
    const out = await s3.send(new CompleteMultipartUploadCommand({ Bucket, Key: 'composite', UploadId, MultipartUpload: { Parts: done } }));
    const partDigests = await Promise.all(parts.map(async (p) => Buffer.from(await sdkDigest(new Crc32cJs(), p), 'base64')));
    const want = `${await sdkDigest(new Crc32cJs(), Buffer.concat(partDigests))}-3`;
    assert.equal(out.ChecksumCRC32C, want);
    assert.equal(out.ChecksumType, 'COMPOSITE');
    const head = await s3.send(new HeadObjectCommand({ Bucket, Key: 'composite', ChecksumMode: 'ENABLED' }));
    assert.equal(head.ChecksumCRC32C, want);
    // GetObjectAttributes drops the "-N" and lists the parts with their checksums.
    const attrs = await s3.send(new GetObjectAttributesCommand({ Bucket, Key: 'composite', ObjectAttributes: ['Checksum', 'ObjectParts', 'ObjectSize'] }));
    assert.equal(attrs.Checksum?.ChecksumCRC32C, want.replace(/-3$/, ''));
    assert.equal(attrs.ObjectParts?.Parts?.length, 3);
    assert.equal(attrs.ObjectParts?.Parts?.[2]?.ChecksumCRC32C, await sdkDigest(new Crc32cJs(), parts[2]!));
    assert.equal(attrs.ObjectSize, 12 * KiB + 100);
    // and the multipart ETag is md5 of the part md5s
    const md5s = parts.map((p) => createHash('md5').update(p).digest());
    assert.equal(out.ETag, `"${createHash('md5').update(Buffer.concat(md5s)).digest('hex')}-3"`);
  });

  test('FULL_OBJECT CRC64NVME is the CRC of the whole object: the SDK validates it on GetObject', async () => {
    const parts = [randomBytes(5 * KiB), randomBytes(5 * KiB), randomBytes(7)];
    const { UploadId, done } = await mpu('full', parts, 'CRC64NVME');
    const out = await s3.send(new CompleteMultipartUploadCommand({ Bucket, Key: 'full', UploadId, MultipartUpload: { Parts: done } }));
    assert.equal(out.ChecksumType, 'FULL_OBJECT');
    assert.equal(out.ChecksumCRC64NVME, await sdkDigest(new Crc64NvmeJs(), Buffer.concat(parts)));
    const validating = emulatorClient(emu.endpoint, { responseChecksumValidation: 'WHEN_SUPPORTED' });
    const get = await validating.send(new GetObjectCommand({ Bucket, Key: 'full', ChecksumMode: 'ENABLED' }));
    assert.deepEqual(Buffer.from(await get.Body!.transformToByteArray()), Buffer.concat(parts), 'the SDK read the body and its CRC64NVME check passed');
  });

  test('an upload without an algorithm gets a CRC64NVME full-object checksum, as S3 does now', async () => {
    const parts = [randomBytes(5 * KiB), randomBytes(10)];
    const { UploadId, done } = await mpu('default-alg', parts);
    await s3.send(new CompleteMultipartUploadCommand({ Bucket, Key: 'default-alg', UploadId, MultipartUpload: { Parts: done } }));
    const head = await s3.send(new HeadObjectCommand({ Bucket, Key: 'default-alg', ChecksumMode: 'ENABLED' }));
    assert.equal(head.ChecksumCRC64NVME, await sdkDigest(new Crc64NvmeJs(), Buffer.concat(parts)));
    assert.equal(head.ChecksumType, 'FULL_OBJECT');
  });

  test('CreateMultipartUpload: invalid algorithm/type combinations are rejected', async () => {
    await rejectsWith(s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'x', ChecksumAlgorithm: 'SHA256', ChecksumType: 'FULL_OBJECT' })), 'InvalidRequest');
    await rejectsWith(s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'x', ChecksumAlgorithm: 'CRC64NVME', ChecksumType: 'COMPOSITE' })), 'InvalidRequest');
    await rejectsWith(s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'x', ChecksumType: 'FULL_OBJECT' })), 'InvalidRequest');
  });

  test('UploadPart: Content-MD5 and checksum values are validated', async () => {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'val', ChecksumAlgorithm: 'SHA256' }));
    const Body = randomBytes(100);
    await rejectsWith(s3.send(new UploadPartCommand({ Bucket, Key: 'val', UploadId, PartNumber: 1, Body, ContentMD5: createHash('md5').update('other').digest('base64') })), 'BadDigest');
    await rejectsWith(s3.send(new UploadPartCommand({ Bucket, Key: 'val', UploadId, PartNumber: 1, Body, ChecksumSHA256: createHash('sha256').update('other').digest('base64') })), 'BadDigest');
    // COMPOSITE upload, part without its checksum
    await rejectsWith(s3.send(new UploadPartCommand({ Bucket, Key: 'val', UploadId, PartNumber: 1, Body })), 'InvalidRequest');
    // another algorithm's checksum
    await rejectsWith(s3.send(new UploadPartCommand({ Bucket, Key: 'val', UploadId, PartNumber: 1, Body, ChecksumAlgorithm: 'CRC32' })), 'InvalidRequest');
  });

  test('CompleteMultipartUpload validations', async () => {
    const parts = [randomBytes(6 * KiB), randomBytes(6 * KiB), randomBytes(10)];
    const { UploadId, done } = await mpu('cv', parts, 'CRC32C');
    const send = (Parts: typeof done, extra: Record<string, unknown> = {}) => s3.send(new CompleteMultipartUploadCommand({ Bucket, Key: 'cv', UploadId, MultipartUpload: { Parts }, ...extra }));
    await rejectsWith(send([done[1]!, done[0]!, done[2]!]), 'InvalidPartOrder');
    await rejectsWith(send([done[0]!, done[2]!].map((p, i) => (i === 1 ? { ...p, PartNumber: 3 } : p))), 'InvalidPartOrder'); // a gap
    await rejectsWith(send(done.map((p, i) => (i === 1 ? { ...p, ETag: '"0123456789abcdef0123456789abcdef"' } : p))), 'InvalidPart');
    await rejectsWith(send(done.map((p) => ({ PartNumber: p.PartNumber, ETag: p.ETag }))), 'InvalidRequest'); // part checksums missing
    await rejectsWith(send(done.map((p, i) => (i === 0 ? { ...p, ChecksumCRC32C: 'AAAAAA==' } : p))), 'InvalidPart');
    await rejectsWith(send(done, { MpuObjectSize: 1 }), 'InvalidRequest');
    await rejectsWith(send([]), 'MalformedXML');
    const ok = await send(done, { MpuObjectSize: 12 * KiB + 10 });
    assert.ok(ok.ETag);
    // AWS answers an identical repeated Complete with success, then ListParts/Abort say NoSuchUpload
    assert.equal((await send(done, { MpuObjectSize: 12 * KiB + 10 })).ETag, ok.ETag);
    await rejectsWith(s3.send(new ListPartsCommand({ Bucket, Key: 'cv', UploadId })), 'NoSuchUpload');
    await rejectsWith(s3.send(new AbortMultipartUploadCommand({ Bucket, Key: 'cv', UploadId })), 'NoSuchUpload');
  });

  test('EntityTooSmall for a small non-last part; NoSuchUpload after abort', async () => {
    const { UploadId, done } = await mpu('small', [randomBytes(100), randomBytes(100)]);
    await rejectsWith(s3.send(new CompleteMultipartUploadCommand({ Bucket, Key: 'small', UploadId, MultipartUpload: { Parts: done } })), 'EntityTooSmall');
    await s3.send(new AbortMultipartUploadCommand({ Bucket, Key: 'small', UploadId }));
    await rejectsWith(s3.send(new UploadPartCommand({ Bucket, Key: 'small', UploadId, PartNumber: 1, Body: randomBytes(1) })), 'NoSuchUpload');
  });

  test('ListParts pages with MaxParts / PartNumberMarker / NextPartNumberMarker and lists part checksums', async () => {
    const parts = Array.from({ length: 7 }, () => randomBytes(10));
    const { UploadId } = await mpu('paging', parts, 'CRC32');
    const seen: number[] = [];
    let marker: string | undefined;
    for (let i = 0; i < 10; i++) {
      const out = await s3.send(new ListPartsCommand({ Bucket, Key: 'paging', UploadId, MaxParts: 3, ...(marker ? { PartNumberMarker: marker } : {}) }));
      for (const p of out.Parts ?? []) {
        seen.push(p.PartNumber!);
        assert.ok(p.ChecksumCRC32);
      }
      if (!out.IsTruncated) break;
      marker = out.NextPartNumberMarker;
    }
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7]);
  });

  test('SSE-C: parts and ListParts need the key; ETags are not MD5s', async () => {
    const key = randomBytes(32).toString('base64');
    const ssec = { SSECustomerAlgorithm: 'AES256', SSECustomerKey: key };
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'ssec', ChecksumAlgorithm: 'CRC32C', ...ssec }));
    const Body = randomBytes(100);
    const part = await s3.send(new UploadPartCommand({ Bucket, Key: 'ssec', UploadId, PartNumber: 1, Body, ChecksumAlgorithm: 'CRC32C', ...ssec }));
    assert.notEqual(part.ETag, `"${createHash('md5').update(Body).digest('hex')}"`);
    await rejectsWith(s3.send(new ListPartsCommand({ Bucket, Key: 'ssec', UploadId })), 'InvalidRequest');
    assert.equal((await s3.send(new ListPartsCommand({ Bucket, Key: 'ssec', UploadId, ...ssec }))).Parts?.length, 1);
  });

  test('faults: an error on the nth request, a reset mid-body, 200 with an <Error> body', async () => {
    emu.faults.push({ op: 'UploadPart', nth: 2, action: { type: 'error', status: 503, code: 'SlowDown' } });
    emu.faults.push({ op: 'UploadPart', partNumber: 3, action: { type: 'reset', afterBytes: 1000 } });
    const before = emu.count('UploadPart');
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'faults' }));
    const up = (n: number) => s3.send(new UploadPartCommand({ Bucket, Key: 'faults', UploadId, PartNumber: n, Body: randomBytes(6 * KiB) }));
    await up(1);
    await rejectsWith(up(2), 'SlowDown');
    await assert.rejects(up(3), (e: Error & { code?: string }) => /ECONNRESET|socket hang up|EPIPE/.test(`${e.code} ${e.message}`));
    const p2 = await up(2);
    const p3 = await up(3);
    emu.faults.push({ op: 'CompleteMultipartUpload', action: { type: 'error-in-200' } });
    const parts = [1, 2, 3].map((n) => ({ PartNumber: n, ETag: n === 2 ? p2.ETag! : n === 3 ? p3.ETag! : '' }));
    const listed = await s3.send(new ListPartsCommand({ Bucket, Key: 'faults', UploadId }));
    parts[0]!.ETag = listed.Parts![0]!.ETag!;
    await assert.rejects(s3.send(new CompleteMultipartUploadCommand({ Bucket, Key: 'faults', UploadId, MultipartUpload: { Parts: parts } })), (e: Error) => e.name === 'InternalError');
    assert.ok((await s3.send(new CompleteMultipartUploadCommand({ Bucket, Key: 'faults', UploadId, MultipartUpload: { Parts: parts } }))).ETag);
    assert.equal(emu.count('UploadPart') - before, 5);
  });
});
