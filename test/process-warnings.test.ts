/**
 * A library prints nothing of its own on the host process: no Node warning on stderr from an
 * upload at high concurrency (each request in flight listens on the upload's stop signal).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createUpload } from '../src/index.ts';
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
