/** Faults on the wire between the client and the real RADOS Gateway, through a TCP fault proxy. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { MiB, PartFailedError, Upload, createUpload } from '../src/index.ts';
import { SdkS3Port, createS3Client } from '../src/s3/adapter.ts';
import { FaultProxy } from './helpers/fault-proxy.ts';
import { getObjectBytes, loadS3Env, makeBucket, randomFile, sha256, tempDir } from './helpers/s3.ts';

describe('through a fault proxy to the real server', () => {
  let bucket: string;
  let proxy: FaultProxy;
  before(async () => {
    loadS3Env();
    bucket = await makeBucket('pw-proxy');
    proxy = await FaultProxy.start(process.env.AWS_ENDPOINT_URL!, { seed: 20261123 });
  });
  after(() => proxy.close());

  test('at a 5% connection-reset rate (per MiB carried) an upload completes byte-identical', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 80 * MiB);
    proxy.resetPerMiB = 0.05;
    const resetsBefore = proxy.resets;
    const up = createUpload({ endpoint: proxy.endpoint, file: f.path, bucket, key: 'proxy/resets.bin', partSize: 5 * MiB, stateDir: dir, retry: { baseDelayMs: 20, maxDelayMs: 200 } });
    const retried = new Set<number>();
    up.on('part-retry', (e) => retried.add(e.partNumber));
    const r = await up.done();
    proxy.resetPerMiB = 0;
    const resets = proxy.resets - resetsBefore;
    assert.ok(resets >= 1, `the proxy reset ${resets} connections`);
    assert.ok(r.retries >= 1 && retried.size >= 1, `${r.retries} retries`);
    assert.equal(r.partsUploaded, 16);
    // read back straight from the server, not through the proxy
    assert.equal(sha256(await getObjectBytes(bucket, 'proxy/resets.bin')), f.sha256);
  });

  test('traffic cut for longer than the retry budget: a resumable error, and a later run completes it', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 40 * MiB);
    const s3 = new SdkS3Port(createS3Client({ endpoint: proxy.endpoint }));
    const first = new Upload({ s3, file: f.path, bucket, key: 'proxy/cut.bin', partSize: 5 * MiB, stateDir: dir, concurrency: 2, retry: { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 50 } });
    let done = 0;
    first.on('part-done', () => {
      if (++done === 3) proxy.cut(60_000);
    });
    await assert.rejects(first.done(), (e: unknown) => e instanceof PartFailedError && e.resumable && e.code === 'PART_FAILED');
    proxy.restore();
    const second = createUpload({ endpoint: proxy.endpoint, file: f.path, bucket, key: 'proxy/cut.bin', stateDir: dir });
    const r = await second.done();
    assert.equal(r.resumed, true);
    assert.ok(r.partsSkipped >= 3, `${r.partsSkipped} parts verified and skipped`);
    assert.equal(r.partsSkipped + r.partsUploaded, 8);
    assert.equal(sha256(await getObjectBytes(bucket, 'proxy/cut.bin')), f.sha256);
  });
});
