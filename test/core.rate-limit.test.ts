/**
 * The bandwidth cap: the token bucket's decisions as a table on a fake clock, the limiter shared by
 * concurrent senders, and a real upload to the local RGW measured against the cap.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createUpload, RateLimiter } from '../src/index.ts';
import { TokenBucket, type Clock } from '../src/core/rate-limit.ts';
import { getObjectBytes, loadS3Env, makeBucket, randomFile, sha256, tempDir } from './helpers/s3.ts';

const MiB = 1024 * 1024;

test('TokenBucket: how long each slice waits (rate 1,000 B/s, burst 500 B, starts empty)', () => {
  const b = new TokenBucket(1000, 500, 0);
  const rows: [now: number, bytes: number, waitMs: number][] = [
    [0, 100, 100], // empty at start: 100 bytes cost 100 ms
    [0, 100, 200], // the debt queues the next caller behind the first
    [200, 0, 0], // 200 ms later the debt is paid: no wait
    [2200, 600, 100], // two idle seconds refill only to the burst (500), so 600 bytes wait 100 ms
    [2300, 1000, 1000],
  ];
  for (const [now, bytes, wait] of rows) assert.equal(Math.round(b.reserve(bytes, now)), wait, `reserve(${bytes}) at ${now} ms`);
});

test('TokenBucket refuses a rate that is not a positive number', () => {
  for (const r of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) assert.throws(() => new TokenBucket(r, 1, 0), RangeError);
});

function fakeClock(): Clock & { t: number } {
  const c = {
    t: 0,
    now: () => c.t,
    sleep: async (ms: number) => {
      c.t += ms;
    },
  };
  return c;
}

test('RateLimiter: 10 MiB through 4 concurrent senders at 1 MiB/s takes 10 s of (fake) time', async () => {
  const clock = fakeClock();
  const rl = new RateLimiter(MiB, clock);
  let sent = 0;
  const sender = async () => {
    for (let i = 0; i < 40; i++) {
      await rl.take(64 * 1024);
      sent += 64 * 1024;
    }
  };
  await Promise.all([sender(), sender(), sender(), sender()]);
  assert.equal(sent, 10 * MiB);
  // The bucket starts empty and each slice pays before it goes: exactly size / rate.
  assert.ok(Math.abs(clock.t - 10_000) < 1, `took ${clock.t} ms`);
});

test('maxBytesPerSecond below one 64 KiB slice per second is refused up front', () => {
  assert.throws(
    () => createUpload({ file: '/nonexistent', bucket: 'b', key: 'k', maxBytesPerSecond: 1000, region: 'us-east-1' }),
    (e: { code?: string; message?: string }) => e.code === 'INVALID_OPTIONS' && /at least 65536/.test(e.message ?? ''),
  );
});

// A cap is a ceiling: the upload is never faster than it, however idle or busy the machine (a busy
// one only makes it slower, which proves nothing here). That the cap is reached is the fake-clock
// tests' to show above, and the benchmark's to measure on the real server.
test('a 100 MiB upload capped at 20 MiB/s on RGW never goes faster than the cap: not in total, not at any moment, not in the progress rate', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-rate');
  const dir = await tempDir();
  const f = await randomFile(dir, 100 * MiB);
  const up = createUpload({ file: f.path, bucket, key: 'capped.bin', stateDir: dir, partSize: 8 * MiB, concurrency: 4, maxBytesPerSecond: 20 * MiB });
  let maxRate = 0;
  let maxSentAhead = 0;
  up.on('progress', (p) => {
    if (p.phase === 'upload' && p.elapsedMs > 1000) maxRate = Math.max(maxRate, p.bytesPerSecond);
    maxSentAhead = Math.max(maxSentAhead, p.bytesSent - (p.elapsedMs / 1000) * 20 * MiB);
  });
  const t0 = performance.now();
  const r = await up.done();
  const s = (performance.now() - t0) / 1000;
  // 100 MiB at 20 MiB/s, less the bucket (at most 1 MiB, 50 ms of the rate) that may go at once.
  assert.ok(s >= (100 - 1) / 20, `took ${s.toFixed(2)} s: faster than the cap`);
  assert.equal(r.bytesSent, 100 * MiB);
  assert.equal(sha256(await getObjectBytes(bucket, 'capped.bin')), f.sha256);
  // Smooth, not bursts: never more than the bucket (1 MiB at this rate) plus the slices in flight ahead of the cap.
  assert.ok(maxSentAhead <= 1.5 * MiB, `sent ${(maxSentAhead / MiB).toFixed(2)} MiB ahead of the cap at some point`);
  assert.ok(maxRate <= 20 * MiB * 1.05, `progress said ${(maxRate / MiB).toFixed(1)} MiB/s`);
});

test('a paced part that takes longer than the request timeout still completes: the timeout is for a silent socket, not a deadline', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-rate');
  const dir = await tempDir();
  const f = await randomFile(dir, 6 * MiB);
  // 5 MiB at 1 MiB/s: ~5 s for the first part, against a 3 s timeout.
  const up = createUpload({ file: f.path, bucket, key: 'slow.bin', stateDir: dir, partSize: 5 * MiB, concurrency: 1, maxBytesPerSecond: MiB, requestTimeoutMs: 3000 });
  const r = await up.done();
  assert.equal(r.retries, 0);
  assert.equal(sha256(await getObjectBytes(bucket, 'slow.bin')), f.sha256);
});

test('stopping an upload while it waits for the cap pauses it cleanly (no unhandled error)', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-rate');
  const dir = await tempDir();
  const f = await randomFile(dir, 6 * MiB);
  const crashes: unknown[] = [];
  const onCrash = (e: unknown) => crashes.push(e);
  process.on('uncaughtException', onCrash);
  try {
    const ac = new AbortController();
    const up = createUpload({ file: f.path, bucket, key: 'stopped.bin', stateDir: dir, partSize: 5 * MiB, maxBytesPerSecond: 64 * 1024, signal: ac.signal });
    setTimeout(() => ac.abort(new Error('stop')), 1500);
    await assert.rejects(up.done(), (e: { code?: string }) => e.code === 'PAUSED');
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    process.off('uncaughtException', onCrash);
  }
  assert.deepEqual(crashes, []);
});
