import assert from 'node:assert/strict';
import { appendFile, readdir, utimes } from 'node:fs/promises';
import { before, describe, test } from 'node:test';
import { AbortMultipartUploadCommand } from '@aws-sdk/client-s3';
import { MiB, SourceChangedError, Upload, UploadGoneError, UploadLockedError, createUpload } from '../src/index.ts';
import { SdkS3Port, createS3Client } from '../src/s3/adapter.ts';
import { uploadThenPause } from './helpers/pause.ts';
import { slowParts } from './helpers/ports.ts';
import { countingClient, loadS3Env, makeBucket, plainClient, randomFile, tempDir } from './helpers/s3.ts';

async function pause(bucket: string, key: string, dir: string, file: string): Promise<string> {
  return (await uploadThenPause({ file, bucket, key, partSize: 5 * MiB, stateDir: dir }, 1)).uploadId;
}

describe('typed errors', () => {
  let bucket: string;
  before(async () => {
    loadS3Env();
    bucket = await makeBucket('pw-errors');
  });

  test('the source file changed between runs → SourceChanged, nothing sent', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 11 * MiB);
    await pause(bucket, 'changed', dir, f.path);
    await appendFile(f.path, 'x');
    const { client, counts } = countingClient();
    await assert.rejects(createUpload({ client, file: f.path, bucket, key: 'changed', stateDir: dir }).done(), (e: unknown) => {
      assert.ok(e instanceof SourceChangedError);
      assert.equal(e.code, 'SOURCE_CHANGED');
      assert.match(e.message, /fresh/);
      return true;
    });
    assert.equal(counts.UploadPart, undefined, 'no part sent');
    assert.equal(counts.CompleteMultipartUpload, undefined);
  });

  test('same size, new mtime also counts as changed', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 11 * MiB);
    await pause(bucket, 'touched', dir, f.path);
    await utimes(f.path, new Date(), new Date(Date.now() + 5000));
    // utimes moves ctime too: the mtime is what this names (not "rewritten with its modification time kept").
    await assert.rejects(createUpload({ client: plainClient(), file: f.path, bucket, key: 'touched', stateDir: dir }).done(), (e: unknown) => e instanceof SourceChangedError && /^modified /.test(e.differences[0] ?? '') && e.differences.length === 1);
  });

  test('--fresh after a change starts over and succeeds', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 11 * MiB);
    const oldId = await pause(bucket, 'refresh', dir, f.path);
    await appendFile(f.path, 'more');
    const { client, counts } = countingClient();
    const r = await createUpload({ client, file: f.path, bucket, key: 'refresh', stateDir: dir, fresh: true }).done();
    assert.notEqual(r.uploadId, oldId);
    assert.equal(counts.AbortMultipartUpload, 1, 'the old upload was aborted');
    assert.equal(r.size, 11 * MiB + 4);
  });

  test('the upload was deleted on the server → UploadGone, and the journal is removed', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 11 * MiB);
    const id = await pause(bucket, 'gone', dir, f.path);
    await plainClient().send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'gone', UploadId: id }));
    await assert.rejects(createUpload({ client: plainClient(), file: f.path, bucket, key: 'gone', stateDir: dir }).done(), (e: unknown) => {
      assert.ok(e instanceof UploadGoneError);
      assert.equal(e.code, 'UPLOAD_GONE');
      assert.equal(e.context.uploadId, id);
      return true;
    });
    assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.json')), []);
    // and a plain re-run now starts a new upload
    const r = await createUpload({ client: plainClient(), file: f.path, bucket, key: 'gone', stateDir: dir }).done();
    assert.notEqual(r.uploadId, id);
  });

  test('a second process on the same upload is refused while the first runs', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 16 * MiB);
    const first = new Upload({ s3: slowParts(new SdkS3Port(createS3Client()), 200), file: f.path, bucket, key: 'locked', partSize: 5 * MiB, stateDir: dir, concurrency: 1 });
    const started = new Promise((r) => first.once('part-start', r));
    const running = first.done();
    await started;
    await assert.rejects(createUpload({ client: plainClient(), file: f.path, bucket, key: 'locked', stateDir: dir }).done(), (e: unknown) => e instanceof UploadLockedError && e.code === 'UPLOAD_LOCKED');
    await running;
  });
});
