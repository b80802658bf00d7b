import assert from 'node:assert/strict';
import { test } from 'node:test';
import { S3RequestError } from '../src/core/errors.ts';
import { DEFAULT_RETRY_POLICY, classifyError, decideRetry, engineAttempts, retrying } from '../src/core/retry.ts';

const err = (s3Code: string, httpStatus?: number) => new S3RequestError({ operation: 'UploadPart', s3Code, ...(httpStatus ? { httpStatus } : {}) });

test('classifyError: table', () => {
  const rows: [unknown, string][] = [
    [err('InternalError', 500), 'transient'],
    [err('Whatever', 502), 'transient'],
    [err('ServiceUnavailable', 503), 'transient'],
    [err('Whatever', 504), 'transient'],
    [err('SlowDown', 503), 'throttle'],
    [err('TooManyRequests', 429), 'throttle'],
    [err('RequestTimeout', 400), 'transient'],
    [err('ECONNRESET'), 'transient'],
    [err('EPIPE'), 'transient'],
    [err('ETIMEDOUT'), 'transient'],
    [err('TimeoutError'), 'transient'],
    [err('BadDigest', 400), 'transient'],
    [err('NoSuchUpload', 404), 'fatal'],
    [err('AccessDenied', 403), 'fatal'],
    [err('InvalidPart', 400), 'fatal'],
    [err('EntityTooSmall', 400), 'fatal'],
    [err('NotImplemented', 501), 'fatal'],
    [new Error('plain error'), 'fatal'],
  ];
  for (const [e, want] of rows) assert.equal(classifyError(e), want, (e as Error).message);
});

test('decideRetry: capped exponential backoff with full jitter', () => {
  const p = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1000, throttleBaseDelayMs: 400 };
  const rows: [number, unknown, number, { retry: boolean; delayMs?: number; throttled?: boolean }][] = [
    // attempt, error, random, expected
    [1, err('InternalError', 500), 0.5, { retry: true, delayMs: 50, throttled: false }],
    [2, err('InternalError', 500), 0.5, { retry: true, delayMs: 100, throttled: false }],
    [3, err('InternalError', 500), 0.999, { retry: true, delayMs: 399, throttled: false }],
    [4, err('InternalError', 500), 1 - 1e-9, { retry: true, delayMs: 799, throttled: false }],
    [1, err('SlowDown', 503), 0.5, { retry: true, delayMs: 200, throttled: true }],
    [4, err('SlowDown', 503), 0.5, { retry: true, delayMs: 500, throttled: true }], // capped at 1000
    [1, err('InternalError', 500), 0, { retry: true, delayMs: 0, throttled: false }],
    [5, err('InternalError', 500), 0.5, { retry: false }],
    [1, err('AccessDenied', 403), 0.5, { retry: false }],
  ];
  for (const [attempt, e, r, want] of rows) {
    const d = decideRetry(p, attempt, e, () => r);
    assert.equal(d.retry, want.retry, `attempt ${attempt} ${(e as Error).message}`);
    if (d.retry) {
      assert.equal(d.delayMs, want.delayMs, `delay at attempt ${attempt}`);
      assert.equal(d.throttled, want.throttled);
    }
  }
});

test('engineAttempts: SDK retries and engine retries do not multiply', () => {
  assert.equal(engineAttempts(6, 1), 6);
  assert.equal(engineAttempts(6, 3), 2);
  assert.equal(engineAttempts(6, 4), 2);
  assert.equal(engineAttempts(6, 10), 1);
  assert.equal(engineAttempts(6, 0), 6);
});

test('retrying: retries transient errors, stops at fatal ones, counts attempts', async () => {
  let calls = 0;
  const out = await retrying(
    async () => {
      calls++;
      if (calls < 3) throw err('InternalError', 500);
      return 'ok';
    },
    { policy: DEFAULT_RETRY_POLICY, maxAttempts: 5, random: () => 0 },
  );
  assert.equal(out, 'ok');
  assert.equal(calls, 3);

  calls = 0;
  await assert.rejects(
    retrying(async () => {
      calls++;
      throw err('AccessDenied', 403);
    }, { policy: DEFAULT_RETRY_POLICY, maxAttempts: 5, random: () => 0 }),
    (e: unknown) => e instanceof S3RequestError && e.s3Code === 'AccessDenied',
  );
  assert.equal(calls, 1);

  calls = 0;
  await assert.rejects(retrying(async () => {
    calls++;
    throw err('InternalError', 500);
  }, { policy: DEFAULT_RETRY_POLICY, maxAttempts: 3, random: () => 0 }));
  assert.equal(calls, 3);
});
