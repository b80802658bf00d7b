/**
 * A library prints nothing of its own on the host process: no Node warning on stderr from an
 * upload at high concurrency (each request in flight listens on the upload's stop signal).
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { test } from 'node:test';
import { Readable } from 'node:stream';
import { createStreamUpload, createUpload } from '../src/index.ts';
import { FolderJob } from '../src/jobs/folder-job.ts';
import { SdkS3Port, createS3Client } from '../src/s3/adapter.ts';
import { loadS3Env, makeBucket, randomFile, tempDir } from './helpers/s3.ts';

test('an upload at concurrency 32 raises no process warning (MaxListenersExceeded on its stop signal)', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-warn');
  const dir = await tempDir();
  const f = await randomFile(dir, 64 * 64 * 1024);
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  try {
    const r = await createUpload({ file: f.path, bucket, key: 'many.bin', stateDir: dir, partSize: 64 * 1024, minPartSize: 1, concurrency: 32 }).done();
    assert.equal(r.partCount, 64);
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
  } finally {
    process.off('warning', onWarning);
  }
  assert.deepEqual(warnings.filter((w) => !w.includes('NodeVersionSupportWarning')), []);
});

test("a finished run leaves no listener on its caller's signal, nor a folder job's uploads on the job's", async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-unlink');
  const dir = await tempDir();
  const f = await randomFile(dir, 3 * 64 * 1024);
  const outer = new AbortController();
  await createUpload({ file: f.path, bucket, key: 'one.bin', stateDir: dir, partSize: 64 * 1024, minPartSize: 1, signal: outer.signal }).done();
  assert.equal(getEventListeners(outer.signal, 'abort').length, 0, 'the upload unlinked from the signal it was given');
  await createStreamUpload({ source: Readable.from([f.bytes]), bucket, key: 'stream.bin', partSize: 64 * 1024, minPartSize: 1, signal: outer.signal }).done();
  assert.equal(getEventListeners(outer.signal, 'abort').length, 0, 'the stream upload unlinked from the signal it was given');

  const src = await tempDir();
  for (const name of ['a.bin', 'b.bin', 'c.bin']) await randomFile(src, 3 * 64 * 1024, name);
  const job = new FolderJob({ s3: new SdkS3Port(createS3Client()), dir: src, bucket, stateDir: await tempDir(), partSize: 64 * 1024, minPartSize: 1, signal: outer.signal });
  const summary = await job.done();
  assert.equal(summary.uploaded, 3);
  assert.equal(getEventListeners(outer.signal, 'abort').length, 0, 'the job unlinked from the signal it was given');
  const own = (job as unknown as { stop: AbortController }).stop.signal;
  assert.equal(getEventListeners(own, 'abort').length, 0, "each file's upload unlinked from the job's signal");
});
