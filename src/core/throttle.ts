/**
 * Concurrency under SlowDown, after rclone's pacer: attack on a throttle (halve the parallelism, at
 * most once per cool-down so one burst of SlowDowns counts once), decay back on success (one more
 * slot after each window of successes), never above the ceiling the caller set. The decisions are
 * pure functions of the state and a clock; `Throttle` applies them to a p-limit limiter.
 */
import type { LimitFunction } from 'p-limit';

export interface ThrottleState {
  /** the caller's concurrency: never exceeded */
  ceiling: number;
  current: number;
  /** when the last decrease happened (ms), or -Infinity */
  lastDecreaseAt: number;
  /** successes since the last change */
  successes: number;
}

export interface ThrottleTuning {
  /** a second SlowDown within this long of a decrease is part of the same burst */
  coolDownMs: number;
  /** successes needed (per current slot) before one slot comes back */
  successesPerStep: number;
}

export const DEFAULT_THROTTLE_TUNING: ThrottleTuning = { coolDownMs: 1000, successesPerStep: 1 };

export function initialThrottle(ceiling: number): ThrottleState {
  return { ceiling, current: ceiling, lastDecreaseAt: -Infinity, successes: 0 };
}

/** SlowDown: halve, unless this is the same burst as the last decrease. */
export function onThrottled(s: ThrottleState, now: number, t: ThrottleTuning = DEFAULT_THROTTLE_TUNING): ThrottleState {
  if (now - s.lastDecreaseAt < t.coolDownMs) return s;
  return { ...s, current: Math.max(1, Math.floor(s.current / 2)), lastDecreaseAt: now, successes: 0 };
}

/** A request succeeded: after `current × successesPerStep` successes, one slot more (additive increase). */
export function onSuccess(s: ThrottleState, now: number, t: ThrottleTuning = DEFAULT_THROTTLE_TUNING): ThrottleState {
  if (s.current >= s.ceiling) return s.successes === 0 ? s : { ...s, successes: 0 };
  if (now - s.lastDecreaseAt < t.coolDownMs) return s; // still inside the burst: don't climb yet
  const successes = s.successes + 1;
  if (successes < s.current * t.successesPerStep) return { ...s, successes };
  return { ...s, current: s.current + 1, successes: 0 };
}

/**
 * One throttle per limiter: uploads that share a limiter share its state, so two uploads hit by
 * the same burst halve it once, and recovery never lifts it past what the caller gave it.
 */
const registry = new WeakMap<LimitFunction, Throttle>();

export class Throttle {
  private state: ThrottleState;

  private constructor(
    private readonly limiter: LimitFunction,
    private readonly now: () => number,
    private readonly tuning: ThrottleTuning,
  ) {
    this.state = initialThrottle(limiter.concurrency);
  }

  static for(limiter: LimitFunction, now: () => number = Date.now, tuning: ThrottleTuning = DEFAULT_THROTTLE_TUNING): Throttle {
    let t = registry.get(limiter);
    if (!t) {
      t = new Throttle(limiter, now, tuning);
      registry.set(limiter, t);
    }
    return t;
  }

  get concurrency(): number {
    return this.state.current;
  }

  /** Returns the new concurrency when it went down, else undefined. */
  throttled(): number | undefined {
    const before = this.state.current;
    this.state = onThrottled(this.state, this.now(), this.tuning);
    this.apply();
    return this.state.current < before ? this.state.current : undefined;
  }

  succeeded(): void {
    const before = this.state.current;
    this.state = onSuccess(this.state, this.now(), this.tuning);
    if (this.state.current !== before) this.apply();
  }

  private apply(): void {
    if (this.limiter.concurrency !== this.state.current) this.limiter.concurrency = this.state.current;
  }
}
