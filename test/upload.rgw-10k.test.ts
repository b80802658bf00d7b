/**
 * 10,000 parts on the local RADOS Gateway with its default settings (tiny parts: the test server
 * allows them): paused at 9,950, resumed (10 ListParts pages), completed (a compact Complete body:
 * RGW refuses one over 1 MiB, which 10,000 part checksums exceed) and verified. The journal's cost
 * per part is one appended line.
 */
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { createUpload } from '../src/index.ts';
import { completeBodyBytes, COMPLETE_BODY_LIMIT } from '../src/upload/finish.ts';
import { uploadThenPause } from './helpers/pause.ts';
import { countingClient, getObjectBytes, loadS3Env, makeBucket, randomFile, sha256, tempDir } from './helpers/s3.ts';

test('the Complete body estimate: 10,000 parts with checksums exceed RGW\'s 1 MiB, without them they fit', () => {
  const parts = Array.from({ length: 10_000 }, (_, i) => ({ partNumber: i + 1, size: 1024, etag: 'd41d8cd98f00b204e9800998ecf8427e', md5: '', checksum: 'AAAAAA==' }));
  assert.ok(completeBodyBytes(parts, 'CRC32C') > COMPLETE_BODY_LIMIT);
  assert.ok(completeBodyBytes(parts, null) < COMPLETE_BODY_LIMIT);
  assert.ok(completeBodyBytes(parts.slice(0, 5000), 'CRC32C') < COMPLETE_BODY_LIMIT, 'fewer parts keep their checksums');
});

test('10,000 parts: paused at 9,950, resumed with 10 ListParts pages, completed and verified on RGW defaults', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-10k');
  const dir = await tempDir();
  const f = await randomFile(dir, 10_000 * 1024 - 5);
  const key = 'tenk/file.bin';
  const opts = { file: f.path, bucket, key, partSize: 1024, minPartSize: 1, stateDir: dir, concurrency: 16 };
  // 9,950 acknowledged: whether the parts in flight at the pause land or not, the listing has ten pages.
  const { done } = await uploadThenPause(opts, 9950);
  assert.ok(done.length >= 9950);
  const log = (await readdir(dir)).find((n) => n.endsWith('.json.log'))!;
  const logBytes = (await stat(join(dir, log))).size;
  assert.ok(logBytes < 2 * 1024 * 1024, `the part log holds ${done.length} parts in ${logBytes} bytes`);

  const { client, counts } = countingClient();
  const up = createUpload({ client, ...opts });
  let verified = 0;
  up.on('reconcile', (r) => (verified = r.verified.length));
  const r = await up.done();
  assert.equal(r.partCount, 10_000);
  assert.ok(verified >= 9950, `${verified} parts verified and skipped`);
  assert.equal(counts.ListParts, 10, 'ten pages of 1,000');
  assert.equal(counts.UploadPart, 10_000 - verified);
  assert.equal(counts.CompleteMultipartUpload, 1);
  assert.equal(r.verification.level, 'full-object-checksum');
  assert.match(r.etag, /-10000$/);
  assert.equal(sha256(await getObjectBytes(bucket, key)), f.sha256);
});
