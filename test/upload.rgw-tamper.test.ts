import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { before, describe, test } from 'node:test';
import { UploadPartCommand } from '@aws-sdk/client-s3';
import { MiB, createUpload, type ReconcileReport } from '../src/index.ts';
import { uploadThenPause } from './helpers/pause.ts';
import { countingClient, getObjectBytes, loadS3Env, makeBucket, plainClient, randomFile, sha256, tempDir } from './helpers/s3.ts';

const partSize = 5 * MiB;

/** Uploads parts 1..3 of a 4-part file and pauses. Returns the upload's id and journal path. */
async function pausedUpload(bucket: string, key: string, dir: string, file: string, checksumAlgorithm: 'CRC32C' | 'none') {
  const { uploadId } = await uploadThenPause({ file, bucket, key, partSize, stateDir: dir, checksumAlgorithm }, 3);
  const journalPath = `${dir}/${(await readdir(dir)).find((x) => x.endsWith('.json'))!}`;
  return { uploadId, journalPath };
}

describe('a part overwritten on the server while the upload is paused', () => {
  let bucket: string;
  before(async () => {
    loadS3Env();
    bucket = await makeBucket('pw-tamper');
  });

  test('found by ETag (upload without a checksum algorithm) and re-uploaded alone', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 3 * partSize + 1000);
    const key = 'tamper/etag';
    const { uploadId } = await pausedUpload(bucket, key, dir, f.path, 'none');
    // Same size, different bytes: only a content check can tell.
    await plainClient().send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: 2, Body: randomBytes(partSize) }));

    const { client, partNumbers } = countingClient();
    const up = createUpload({ client, file: f.path, bucket, key, stateDir: dir });
    let report: ReconcileReport | undefined;
    up.on('reconcile', (r) => (report = r));
    await up.done();
    assert.deepEqual(report!.parts.map((p) => p.status), ['verified', 'etag-mismatch', 'verified', 'missing']);
    assert.deepEqual(report!.parts[0]!.basis, ['etag']);
    assert.deepEqual([...partNumbers].sort(), [2, 4], 'only the tampered and the missing part were sent');
    assert.equal(sha256(await getObjectBytes(bucket, key)), f.sha256);
  });

  test('found by CRC32C alone, with ETags not usable (as under SSE-KMS / SSE-C), and re-uploaded alone', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 3 * partSize + 1000);
    const key = 'tamper/crc32c';
    const { uploadId, journalPath } = await pausedUpload(bucket, key, dir, f.path, 'CRC32C');
    // The tampered part carries a valid CRC32C of its new bytes, so the server accepts and lists it.
    await plainClient().send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: 2, Body: randomBytes(partSize), ChecksumAlgorithm: 'CRC32C' }));
    // Tell the engine part ETags are not MD5s, so the checksum is its only evidence.
    const j = JSON.parse(await readFile(journalPath, 'utf8'));
    j.etagIsMd5 = false;
    await writeFile(journalPath, JSON.stringify(j));

    const { client, partNumbers } = countingClient();
    const up = createUpload({ client, file: f.path, bucket, key, stateDir: dir });
    let report: ReconcileReport | undefined;
    up.on('reconcile', (r) => (report = r));
    const r = await up.done();
    assert.deepEqual(report!.parts.map((p) => p.status), ['verified', 'checksum-mismatch', 'verified', 'missing']);
    assert.deepEqual(report!.parts[0]!.basis, ['checksum'], 'verified by checksum, not by ETag');
    assert.deepEqual([...partNumbers].sort(), [2, 4]);
    assert.equal(r.verification.level, 'full-object-checksum');
    assert.equal(sha256(await getObjectBytes(bucket, key)), f.sha256);
  });
});
