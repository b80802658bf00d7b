/**
 * What every phase of an upload works with: the options, the S3 port, the stop signal, a typed
 * emit, the retry loop (with the shared throttle), and the run's counters.
 */
import { setMaxListeners } from 'node:events';
import type { LimitFunction } from 'p-limit';
import type { ErrorContext } from '../core/errors.ts';
import type { Emit } from './events.ts';
import { requestOptions, retryPolicy, type EngineOptions } from './options.ts';
import { engineAttempts, retrying, type RetryPolicy } from '../core/retry.ts';
import type { RequestOptions, S3Port } from '../s3/port.ts';
import { RateLimiter } from '../core/rate-limit.ts';
import { Throttle } from '../core/throttle.ts';

export interface RetryInfo {
  attempt: number;
  delayMs: number;
  error: unknown;
  throttled: boolean;
}

export interface RunStats {
  partsSent: number;
  bytesSent: number;
  retries: number;
  /** the server accepted this run's Complete: whatever fails after, an object is at the key */
  completed?: boolean;
}

export class EngineContext {
  readonly s3: S3Port;
  readonly req: RequestOptions;
  readonly policy: RetryPolicy;
  readonly throttle: Throttle;
  readonly stats: RunStats = { partsSent: 0, bytesSent: 0, retries: 0 };
  /** the bandwidth cap, shared when the caller passed one limiter to several uploads */
  readonly rate: RateLimiter | undefined;
  /**
   * Waits for the cap before a slice goes out. Never rejects: a stop aborts the request itself,
   * and a body that failed after the SDK let go of it would be an unhandled error (a crash).
   */
  readonly pace: ((bytes: number) => Promise<void>) | undefined;

  constructor(
    readonly o: EngineOptions,
    readonly limiter: LimitFunction,
    readonly signal: AbortSignal,
    readonly emit: Emit,
  ) {
    this.s3 = o.s3;
    this.req = requestOptions(o);
    this.policy = retryPolicy(o);
    this.throttle = Throttle.for(limiter, o.now ? { now: o.now } : {});
    this.rate = o.rateLimiter ?? (o.maxBytesPerSecond !== undefined ? new RateLimiter(o.maxBytesPerSecond) : undefined);
    const rate = this.rate;
    this.pace = rate ? (bytes) => rate.take(bytes, signal).catch(() => undefined) : undefined;
  }

  errorContext(extra: ErrorContext = {}): ErrorContext {
    return { bucket: this.o.bucket, key: this.o.key, ...extra };
  }

  /**
   * Runs one S3 call under the retry policy. `replayable`: whether the SDK itself may retry the
   * call (it never retries streamed bodies); only then are the engine's attempts divided by the
   * client's, so the two layers do not multiply.
   */
  async retry<T>(fn: () => Promise<T>, opts: { onRetry?: (i: RetryInfo) => void; replayable?: boolean } = {}): Promise<T> {
    const maxAttempts = opts.replayable === false ? this.policy.maxAttempts : engineAttempts(this.policy.maxAttempts, await this.s3.clientMaxAttempts());
    const loop: Parameters<typeof retrying>[1] = {
      policy: this.policy,
      maxAttempts,
      signal: this.signal,
      onRetry: (i) => {
        if (i.throttled) {
          const lowered = this.throttle.throttled();
          if (lowered !== undefined) this.emit('warning', { code: 'SLOW_DOWN', message: `the server asked to slow down; concurrency lowered to ${lowered}` });
        }
        opts.onRetry?.(i);
      },
    };
    if (this.o.random) loop.random = this.o.random;
    const out = await retrying(fn, loop);
    this.throttle.succeeded();
    return out;
  }
}

/**
 * A run's own stop, which the caller's signal (if any) also triggers, until `unlink` (called when
 * the run settles: a folder job's signal outlives thousands of uploads, and each listener would keep
 * its upload alive). Every request in flight listens on the stop: at high concurrency that is many
 * listeners by design, and Node's "possible leak" warning would land on the host process's stderr.
 */
export function stopFollowing(outer: AbortSignal | undefined): { stop: AbortController; unlink: () => void } {
  const stop = new AbortController();
  setMaxListeners(0, stop.signal);
  const follow = () => stop.abort(outer!.reason);
  if (outer?.aborted) stop.abort(outer.reason);
  else outer?.addEventListener('abort', follow, { once: true });
  return { stop, unlink: () => outer?.removeEventListener('abort', follow) };
}
