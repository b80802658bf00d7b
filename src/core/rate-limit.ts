/**
 * The bandwidth cap: a token bucket shared by everything one process sends (all parts of all
 * uploads given the same limiter). Bytes are paid for in small slices just before they are handed
 * to the network, so the rate is smooth rather than a burst per part, and progress (counted as
 * slices go out) stays honest.
 *
 * The decision is pure (`TokenBucket.reserve`: how long must this slice wait); `RateLimiter` adds
 * the waiting, with a clock and a sleep that tests replace.
 */

import { sleep } from './retry.ts';

export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const realClock: Clock = { now: () => performance.now(), sleep };

/**
 * Tokens are bytes; they accrue at `rate` per second up to `burst`. A reservation may take the
 * balance below zero (a slice larger than the balance is never split), and the caller waits until
 * the debt is paid off: the next reservation sees the debt, so concurrent senders queue fairly.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
    now: number,
  ) {
    if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError(`rate must be a positive number of bytes per second; got ${rate}`);
    this.tokens = 0; // start empty: the first second is capped too
    this.last = now;
  }

  /** Takes `bytes` and says how many milliseconds from `now` the caller must wait before sending them. */
  reserve(bytes: number, now: number): number {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : (-this.tokens / this.rate) * 1000;
  }
}

/** Slices handed to the network under a cap: small enough to keep the rate smooth at low caps. */
export const PACED_SLICE = 64 * 1024;

export class RateLimiter {
  private readonly bucket: TokenBucket;

  /** `bytesPerSecond` for the whole process; the bucket holds at most 50 ms of it (at least one slice). */
  constructor(
    readonly bytesPerSecond: number,
    private readonly clock: Clock = realClock,
  ) {
    this.bucket = new TokenBucket(bytesPerSecond, Math.max(PACED_SLICE, bytesPerSecond / 20), clock.now());
  }

  /** Resolves when `bytes` may be sent. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    const wait = this.bucket.reserve(bytes, this.clock.now());
    if (wait > 0) await this.clock.sleep(wait, signal);
  }
}
