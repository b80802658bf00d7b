import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { KiB, Upload, createUpload, type ReconcileReport } from '../src/index.ts';
import { SdkS3Port, createS3Client } from '../src/s3/adapter.ts';
import { uploadThenPause } from './helpers/pause.ts';
import { wrapPort } from './helpers/ports.ts';
import { referenceDigest } from './helpers/reference.ts';
import { countingClient, getObjectBytes, loadS3Env, makeBucket, plainClient, randomFile, sha256, tempDir } from './helpers/s3.ts';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { verifyObject } from '../src/upload/inspect.ts';

const ref = referenceDigest;

const partSize = 64 * KiB;

describe('each checksum algorithm on the real server', () => {
  let bucket: string;
  before(async () => {
    loadS3Env();
    bucket = await makeBucket('pw-cksum');
  });

  for (const alg of ['CRC32', 'CRC32C', 'SHA1', 'SHA256', 'CRC64NVME'] as const) {
    test(`${alg}: parts accepted, listed checksums compared on resume, object checksum equals the local one`, async () => {
      const dir = await tempDir();
      const f = await randomFile(dir, 2 * partSize + 999);
      const key = `alg/${alg}`;
      await uploadThenPause({ file: f.path, bucket, key, partSize, minPartSize: 1, stateDir: dir, checksumAlgorithm: alg }, 2);

      const { client, partNumbers } = countingClient();
      const up = createUpload({ client, file: f.path, bucket, key, stateDir: dir });
      let report: ReconcileReport | undefined;
      up.on('reconcile', (r) => (report = r));
      const r = await up.done();
      assert.deepEqual(report!.parts.map((p) => p.status), ['verified', 'verified', 'missing']);
      assert.ok(report!.parts[0]!.basis.includes('checksum'), `the server listed a ${alg} part checksum and it was compared`);
      assert.deepEqual(partNumbers, [3]);
      assert.equal(sha256(await getObjectBytes(bucket, key)), f.sha256);

      const parts = [f.bytes.subarray(0, partSize), f.bytes.subarray(partSize, 2 * partSize), f.bytes.subarray(2 * partSize)];
      if (alg === 'SHA1' || alg === 'SHA256') {
        const digests = await Promise.all(parts.map((p) => ref(alg, p)));
        const want = `${(await ref(alg, Buffer.concat(digests))).toString('base64')}-3`;
        assert.equal(r.checksum, want, 'composite checksum');
        assert.equal(r.verification.level, 'composite-checksum');
      } else {
        assert.equal(r.checksum, (await ref(alg, f.bytes)).toString('base64'), 'full-object CRC of the whole file');
        assert.equal(r.verification.level, 'full-object-checksum');
      }
    });
  }

  test('the server validates the part checksum partwise sends (a corrupted value gets BadDigest, and the part is retried)', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 2 * partSize);
    const inner = new SdkS3Port(createS3Client());
    let corrupted = 0;
    const s3 = wrapPort(inner, {
      uploadPart: (input, req, signal) => {
        if (input.partNumber === 2 && corrupted === 0 && input.checksum) {
          corrupted++;
          return inner.uploadPart({ ...input, checksum: { ...input.checksum, value: Buffer.alloc(8, 7).toString('base64') } }, req, signal);
        }
        return inner.uploadPart(input, req, signal);
      },
    });
    const up = new Upload({ s3, file: f.path, bucket, key: 'baddigest', partSize, minPartSize: 1, stateDir: dir, checksumAlgorithm: 'CRC64NVME', random: () => 0 });
    const retries: { partNumber: number; error: string }[] = [];
    up.on('part-retry', (e) => retries.push(e));
    const r = await up.done();
    assert.equal(corrupted, 1);
    assert.equal(retries.length, 1);
    assert.equal(retries[0]!.partNumber, 2);
    assert.match(retries[0]!.error, /BadDigest/);
    assert.equal(r.retries, 1);
    assert.equal(sha256(await getObjectBytes(bucket, 'baddigest')), f.sha256);
  });

  test('GetObjectAttributes through the port lists every part checksum on RGW (the comma-space header fix)', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 3 * partSize + 5);
    await createUpload({ client: countingClient().client, file: f.path, bucket, key: 'attrs', partSize, minPartSize: 1, stateDir: dir, checksumAlgorithm: 'CRC32C' }).done();
    const port = new SdkS3Port(createS3Client());
    const out = await port.getObjectAttributes({ bucket, key: 'attrs', maxParts: 2 }, {});
    assert.equal(out.parts.length, 2);
    assert.equal(out.isTruncated, true);
    const rest = await port.getObjectAttributes({ bucket, key: 'attrs', maxParts: 2, partNumberMarker: out.nextPartNumberMarker! }, {});
    const all = [...out.parts, ...rest.parts];
    assert.deepEqual(all.map((p) => p.partNumber), [1, 2, 3, 4]);
    for (const [i, p] of all.entries()) assert.equal(p.checksum, (await ref('CRC32C', f.bytes.subarray(i * partSize, (i + 1) * partSize))).toString('base64'));
    assert.equal(out.objectSize, f.bytes.length);
    assert.equal(out.checksums.CRC32C, (await ref('CRC32C', f.bytes)).toString('base64'));
  });

  for (const alg of ['SHA256', 'SHA1', 'CRC32C'] as const) {
    test(`verify: a single-PUT object stored with ${alg} is proven by its plain checksum (no false mismatch)`, async () => {
      const dir = await tempDir();
      const f = await randomFile(dir, 300 * KiB + 7);
      const key = `single-put/${alg}`;
      await plainClient().send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: f.bytes, ChecksumAlgorithm: alg }));
      const r = await verifyObject(new SdkS3Port(createS3Client()), { file: f.path, bucket, key });
      assert.deepEqual(r.mismatches, []);
      assert.equal(r.proven, true);
      assert.equal(r.level, 'full-object-checksum');
      // …and a single PUT of other bytes is a mismatch, not a pass.
      await plainClient().send(new PutObjectCommand({ Bucket: bucket, Key: `${key}-other`, Body: Buffer.alloc(f.bytes.length, 1), ChecksumAlgorithm: alg }));
      const other = await verifyObject(new SdkS3Port(createS3Client()), { file: f.path, bucket, key: `${key}-other` });
      assert.equal(other.proven, false);
      assert.ok(other.mismatches.length > 0);
    });
  }
});

