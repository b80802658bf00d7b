/**
 * A resume sends the parts the server does not list while it hashes the ones it does: nothing is
 * sent twice, nothing listed is trusted before it is verified, and the journal ends with every part.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createUpload, Upload, type ReconcileReport } from '../src/index.ts';
import { SdkS3Port, createS3Client } from '../src/s3/adapter.ts';
import { wrapPort } from './helpers/ports.ts';
import { uploadThenPause } from './helpers/pause.ts';
import { countingClient, getObjectBytes, loadS3Env, makeBucket, randomFile, sha256, tempDir } from './helpers/s3.ts';

const MiB = 1024 * 1024;

test('resume: unlisted parts go up during verification, each once; listed ones are verified, not sent', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-overlap');
  const dir = await tempDir();
  const f = await randomFile(dir, 40 * MiB + 11);
  const opts = { file: f.path, bucket, key: 'o.bin', stateDir: dir, partSize: 5 * MiB };
  await uploadThenPause(opts, 4);
  const { client, counts, partNumbers } = countingClient();
  const up = createUpload({ client, ...opts, concurrency: 2 });
  const order: string[] = [];
  let maxFraction = 0;
  up.on('part-done', (e) => order.push(`done ${e.partNumber}`));
  up.on('reconcile', () => order.push('reconcile'));
  up.on('progress', (p) => (maxFraction = Math.max(maxFraction, p.fractionDone)));
  const r = await up.done();
  assert.equal(r.partsSkipped, 4);
  assert.equal(r.partsUploaded, 5);
  assert.equal(counts.UploadPart, 5, 'each missing part once');
  assert.deepEqual([...partNumbers].sort((a, b) => a - b), [5, 6, 7, 8, 9]);
  assert.ok(order.indexOf('reconcile') > 0, `a missing part was sent before the listed ones were verified: ${order.join(', ')}`);
  assert.ok(maxFraction <= 1);
  assert.equal(sha256(await getObjectBytes(bucket, 'o.bin')), f.sha256);
});

test('resume: hashing starts on the journal’s parts while ListParts is on its way, and the head start is reported', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-headstart');
  const dir = await tempDir();
  const f = await randomFile(dir, 40 * MiB + 11);
  const opts = { file: f.path, bucket, key: 'o.bin', stateDir: dir, partSize: 5 * MiB };
  await uploadThenPause(opts, 4);
  const inner = new SdkS3Port(createS3Client());
  // A slow listing, as from a distant server: the journal's four parts are hashed before it comes.
  const s3 = wrapPort(inner, {
    listParts: async (input, req, signal) => {
      await new Promise((r) => setTimeout(r, 1500));
      return inner.listParts(input, req, signal);
    },
  });
  const up = new Upload({ s3, ...opts, concurrency: 2 });
  let report: ReconcileReport | undefined;
  let over = 0;
  up.on('reconcile', (r) => (report = r));
  up.on('verify-progress', (v) => (over += v.bytesHashed > v.bytesToHash || v.partsHashed > v.partsToHash ? 1 : 0));
  const r = await up.done();
  assert.equal(r.partsSkipped, 4);
  assert.equal(report?.hashing?.bytes, 20 * MiB);
  assert.equal(report?.hashing?.headStartBytes, 20 * MiB, 'all four listed parts were hashed before the listing came in');
  assert.equal(over, 0, 'progress never past 100%');
  assert.equal(sha256(await getObjectBytes(bucket, 'o.bin')), f.sha256);
});
