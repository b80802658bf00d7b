import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, test } from 'node:test';
import { UploadPartCommand } from '@aws-sdk/client-s3';
import { KiB, createUpload, type ReconcileReport } from '../src/index.ts';
import { uploadThenPause } from './helpers/pause.ts';
import { countingClient, getObjectBytes, loadS3Env, makeBucket, plainClient, randomFile, sha256, tempDir } from './helpers/s3.ts';

before(() => loadS3Env());

// The gateway runs with `rgw multipart min part size = 0`, so 1 KiB parts complete; S3 itself would need 5 MiB.
test('resume of a 1,200-part upload lists every page and verifies every part', async () => {
  const bucket = await makeBucket('pw-many');
  const dir = await tempDir();
  const f = await randomFile(dir, 1200 * KiB);
  const key = 'many/parts.bin';
  // Paused once every part is sent, before Complete.
  const { uploadId, done } = await uploadThenPause({ file: f.path, bucket, key, partSize: KiB, minPartSize: 1, stateDir: dir, concurrency: 16, checksumAlgorithm: 'CRC32C' }, 1200);
  assert.equal(done.length, 1200);

  // Overwrite a part on the second ListParts page.
  await plainClient().send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: 1100, Body: randomBytes(KiB), ChecksumAlgorithm: 'CRC32C' }));

  const { client, counts, partNumbers } = countingClient();
  const up = createUpload({ client, file: f.path, bucket, key, stateDir: dir });
  let report: ReconcileReport | undefined;
  let lastVerify = { partsHashed: 0, partsToHash: 0 };
  up.on('reconcile', (r) => (report = r));
  up.on('verify-progress', (v) => (lastVerify = v));
  const r = await up.done();
  assert.equal(counts.ListParts, 2, 'two pages: 1000 + 200');
  assert.equal(lastVerify.partsHashed, 1200);
  assert.equal(lastVerify.partsToHash, 1200);
  assert.equal(report!.counts.verified, 1199);
  assert.equal(report!.counts['checksum-mismatch'], 1);
  assert.equal(report!.parts[1099]!.status, 'checksum-mismatch');
  assert.deepEqual(partNumbers, [1100]);
  assert.equal(r.partCount, 1200);
  assert.equal(r.verification.level, 'full-object-checksum');
  assert.equal(sha256(await getObjectBytes(bucket, key)), f.sha256);
});
