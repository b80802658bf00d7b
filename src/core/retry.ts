import { S3RequestError } from './errors.ts';

export interface RetryPolicy {
  /** total attempts per request, the first included */
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** base delay after SlowDown / throttling: the server asked us to back off harder */
  throttleBaseDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 6, baseDelayMs: 200, maxDelayMs: 20_000, throttleBaseDelayMs: 1_000 };

export type ErrorClass = 'throttle' | 'transient' | 'fatal';

const THROTTLE_CODES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'TooManyRequests', 'TooManyRequestsException', 'RequestLimitExceeded']);
const TRANSIENT_CODES = new Set([
  'InternalError',
  'ServiceUnavailable',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  // The server saw other bytes than we hashed: corruption in transit, worth resending.
  'BadDigest',
  'PartChecksumMismatch',
  'PartETagMismatch',
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'NetworkingError',
  'socket hang up',
  'UND_ERR_SOCKET',
]);
const TRANSIENT_STATUS = new Set([500, 502, 503, 504]);

/** Which errors are worth another attempt: throttling, 5xx, timeouts and broken connections; not other 4xx. */
export function classifyError(err: unknown): ErrorClass {
  if (!(err instanceof S3RequestError)) return 'fatal';
  if (THROTTLE_CODES.has(err.s3Code) || err.httpStatus === 429) return 'throttle';
  // BadDigest on an upload means bytes corrupted in transit (resend); on Complete, bad data at rest.
  if (err.s3Code === 'BadDigest' && err.operation !== 'UploadPart') return 'fatal';
  if (TRANSIENT_CODES.has(err.s3Code)) return 'transient';
  if (err.httpStatus !== undefined && TRANSIENT_STATUS.has(err.httpStatus)) return 'transient';
  return 'fatal';
}

export type RetryDecision = { retry: true; delayMs: number; throttled: boolean } | { retry: false; reason: 'fatal' | 'attempts-exhausted' };

/**
 * (attempts made so far, error) → wait and retry, or stop. Capped exponential backoff with full
 * jitter: delay = random × min(cap, base × 2^(attempt−1)), so concurrent retries spread out.
 */
export function decideRetry(policy: RetryPolicy, attempt: number, err: unknown, random: () => number = Math.random): RetryDecision {
  const cls = classifyError(err);
  if (cls === 'fatal') return { retry: false, reason: 'fatal' };
  if (attempt >= policy.maxAttempts) return { retry: false, reason: 'attempts-exhausted' };
  const base = cls === 'throttle' ? policy.throttleBaseDelayMs : policy.baseDelayMs;
  const ceiling = Math.min(policy.maxDelayMs, base * 2 ** (attempt - 1));
  return { retry: true, delayMs: Math.floor(random() * ceiling), throttled: cls === 'throttle' };
}

/**
 * When the SDK client itself retries (a caller's client with maxAttempts > 1), shrink the engine's
 * outer attempts so the total number of requests stays near the policy's, instead of multiplying.
 */
export function engineAttempts(policyAttempts: number, sdkAttempts: number): number {
  return Math.max(1, Math.ceil(policyAttempts / Math.max(1, sdkAttempts)));
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RetryLoopOptions {
  policy: RetryPolicy;
  /** attempts allowed for this loop (engineAttempts(...) of the policy) */
  maxAttempts: number;
  signal?: AbortSignal;
  random?: () => number;
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown; throttled: boolean }) => void;
}

/** Runs `fn` until it succeeds, the policy says stop, or the signal aborts. */
export async function retrying<T>(fn: (attempt: number) => Promise<T>, opts: RetryLoopOptions): Promise<T> {
  const policy = { ...opts.policy, maxAttempts: opts.maxAttempts };
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      const d = decideRetry(policy, attempt, err, opts.random);
      if (!d.retry) throw err;
      opts.onRetry?.({ attempt, delayMs: d.delayMs, error: err, throttled: d.throttled });
      await sleep(d.delayMs, opts.signal);
    }
  }
}
