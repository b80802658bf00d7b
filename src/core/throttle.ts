/**
 * How many parts are in flight: the one place that decides it. Under SlowDown, after rclone's
 * pacer: attack on a throttle (halve the parallelism, at most once per cool-down so one burst of
 * SlowDowns counts once), decay back on success (one more slot after each window of successes),
 * never above the ceiling. With no concurrency given, the ceiling is a bound and the level is
 * found: measured over windows of sent bytes, the parallelism doubles while the aggregate rate
 * rises by a tenth or more, and settles at the best level once two windows bring no gain (a long,
 * slow pipe fills itself; loopback stays where it started). A SlowDown settles it where it halved
 * to. The decisions are pure functions of the state and a clock; `Throttle` applies them to a
 * p-limit limiter.
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
  /** with no concurrency given: the search for the level that fills the pipe */
  search?: SearchState;
}

export interface SearchState {
  /** NaN until the first bytes go: a search does not judge the time before sending begins */
  windowStart: number;
  windowBytes: number;
  /** the best aggregate rate seen (bytes/ms) and the level that gave it */
  bestRate: number;
  bestLevel: number;
  /** windows in a row without a gain */
  flat: number;
  /** settled at this time (no growth until a re-probe), or undefined while searching */
  settledAt?: number;
}

export interface ThrottleTuning {
  /** a second SlowDown within this long of a decrease is part of the same burst */
  coolDownMs: number;
  /** successes needed (per current slot) before one slot comes back */
  successesPerStep: number;
}

export const DEFAULT_THROTTLE_TUNING: ThrottleTuning = { coolDownMs: 1000, successesPerStep: 1 };

export interface SearchTuning {
  /** the rate is judged over windows this long: several round trips of a slow link */
  windowMs: number;
  /** a gain smaller than this fraction is no gain */
  minGain: number;
  /** windows in a row without a gain before it settles */
  flatWindows: number;
  /** settled this long, it tries one level up again (links change) */
  reprobeMs: number;
  /**
   * after a change, bytes sent this long are not judged: new requests first fill their sockets'
   * buffers (megabytes each), which would look like a gain the link never gave
   */
  warmupMs: number;
}

export const DEFAULT_SEARCH_TUNING: SearchTuning = { windowMs: 300, minGain: 0.1, flatWindows: 2, reprobeMs: 20_000, warmupMs: 200 };

/** With no concurrency given: where the search starts, and the bound it never passes (1 MiB of part arena each). */
export const ADAPTIVE_START = 8;
export const ADAPTIVE_MAX = 32;

export function initialThrottle(ceiling: number): ThrottleState {
  return { ceiling, current: ceiling, lastDecreaseAt: -Infinity, successes: 0 };
}

export function initialSearch(start: number, max: number): ThrottleState {
  return { ceiling: max, current: Math.min(start, max), lastDecreaseAt: -Infinity, successes: 0, search: { windowStart: NaN, windowBytes: 0, bestRate: 0, bestLevel: Math.min(start, max), flat: 0 } };
}

/** SlowDown: halve, unless this is the same burst as the last decrease. A search settles there. */
export function onThrottled(s: ThrottleState, now: number, t: ThrottleTuning = DEFAULT_THROTTLE_TUNING): ThrottleState {
  if (now - s.lastDecreaseAt < t.coolDownMs) return s;
  const current = Math.max(1, Math.floor(s.current / 2));
  const search = s.search && { ...s.search, windowStart: now, windowBytes: 0, bestRate: 0, bestLevel: current, flat: 0, settledAt: now };
  return { ...s, current, lastDecreaseAt: now, successes: 0, ...(search ? { search } : {}) };
}

/**
 * Body bytes went out. At the end of each window, a search compares the window's rate with the
 * best so far: a gain doubles the level (up to the bound); no gain twice settles at the best level.
 * A settled search probes one doubling again after `reprobeMs`, from the rate it has now.
 */
export function onSent(s: ThrottleState, bytes: number, now: number, t: SearchTuning = DEFAULT_SEARCH_TUNING): ThrottleState {
  const q = s.search;
  if (!q) return s;
  if (Number.isNaN(q.windowStart)) return { ...s, search: { ...q, windowStart: now + t.warmupMs } };
  if (now < q.windowStart) return s;
  const windowBytes = q.windowBytes + bytes;
  if (now - q.windowStart < t.windowMs) return { ...s, search: { ...q, windowBytes } };
  const rate = windowBytes / (now - q.windowStart);
  const next: SearchState = { ...q, windowStart: now, windowBytes: 0 };
  // A window after a change of level starts once the new requests have filled their buffers.
  const warm = now + t.warmupMs;
  const up = Math.min(s.ceiling, s.current * 2);
  if (q.settledAt !== undefined) {
    if (now - q.settledAt < t.reprobeMs || up === s.current) return { ...s, search: next };
    const { settledAt: _, ...searching } = next;
    return { ...s, current: up, search: { ...searching, windowStart: warm, bestRate: rate, bestLevel: s.current, flat: 0 } };
  }
  if (rate > q.bestRate * (1 + t.minGain)) {
    // At the bound there is nothing to try: settled there.
    if (up === s.current) return { ...s, search: { ...next, bestRate: rate, bestLevel: s.current, flat: 0, settledAt: now } };
    return { ...s, current: up, search: { ...next, windowStart: warm, bestRate: rate, bestLevel: s.current, flat: 0 } };
  }
  const flat = q.flat + 1;
  if (flat < t.flatWindows) return { ...s, search: { ...next, flat } };
  return { ...s, current: q.bestLevel, search: { ...next, windowStart: q.bestLevel === s.current ? now : warm, flat: 0, settledAt: now } };
}

/** A request succeeded: after `current × successesPerStep` successes, one slot more (additive increase). */
export function onSuccess(s: ThrottleState, now: number, t: ThrottleTuning = DEFAULT_THROTTLE_TUNING): ThrottleState {
  // A search climbs on measured rate, not on successes.
  if (s.search) return s;
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

/** A change of the parts in flight: the rate search going up or settling, a SlowDown, or the recovery after one. */
export interface ConcurrencyChange {
  concurrency: number;
  from: number;
  /** `start`: the level an upload begins at; `searching` says whether it will move by rate */
  reason: 'start' | 'rate-rising' | 'rate-flat' | 'slow-down' | 'recovered';
  searching: boolean;
  /** the best aggregate rate the search has measured, bytes/s */
  bytesPerSecond?: number;
}

export class Throttle {
  private state: ThrottleState;

  private readonly listeners = new Set<(e: ConcurrencyChange) => void>();

  private constructor(
    private readonly limiter: LimitFunction,
    private readonly now: () => number,
    private readonly tuning: ThrottleTuning,
    private readonly searchTuning: SearchTuning,
    search: { max: number } | undefined,
  ) {
    this.state = search ? initialSearch(limiter.concurrency, search.max) : initialThrottle(limiter.concurrency);
    this.apply();
  }

  /**
   * The limiter's throttle; the first caller decides whether it searches (`search`: no concurrency
   * was given, so the limiter's own is only where the search starts).
   */
  static for(limiter: LimitFunction, opts: { now?: () => number; tuning?: ThrottleTuning; searchTuning?: SearchTuning; search?: { max: number } } = {}): Throttle {
    let t = registry.get(limiter);
    if (!t) {
      t = new Throttle(limiter, opts.now ?? Date.now, opts.tuning ?? DEFAULT_THROTTLE_TUNING, opts.searchTuning ?? DEFAULT_SEARCH_TUNING, opts.search);
      registry.set(limiter, t);
    }
    return t;
  }

  /** Told the level now (`start`), then of every change of it and why, for progress events; returns the unsubscribe. */
  follow(fn: (e: ConcurrencyChange) => void): () => void {
    fn({ concurrency: this.state.current, from: this.state.current, reason: 'start', searching: this.state.search !== undefined });
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** How many follow: a limiter outlives many uploads (a folder job's thousands), and none may stay. */
  get followers(): number {
    return this.listeners.size;
  }

  /** Body bytes handed to the network, for the search's rate. */
  sent(bytes: number): void {
    if (!this.state.search) return;
    const before = this.state.current;
    this.state = onSent(this.state, bytes, this.now(), this.searchTuning);
    if (this.state.current !== before) this.changed(before, this.state.current > before ? 'rate-rising' : 'rate-flat');
  }

  get concurrency(): number {
    return this.state.current;
  }

  /** Returns the new concurrency when it went down, else undefined. */
  throttled(): number | undefined {
    const before = this.state.current;
    this.state = onThrottled(this.state, this.now(), this.tuning);
    if (this.state.current === before) return undefined;
    this.changed(before, 'slow-down');
    return this.state.current;
  }

  succeeded(): void {
    const before = this.state.current;
    this.state = onSuccess(this.state, this.now(), this.tuning);
    if (this.state.current !== before) this.changed(before, 'recovered');
  }

  private changed(from: number, reason: ConcurrencyChange['reason']): void {
    this.apply();
    const q = this.state.search;
    const e: ConcurrencyChange = { concurrency: this.state.current, from, reason, searching: q !== undefined, ...(q && q.bestRate > 0 ? { bytesPerSecond: Math.round(q.bestRate * 1000) } : {}) };
    for (const fn of this.listeners) fn(e);
  }

  private apply(): void {
    if (this.limiter.concurrency !== this.state.current) this.limiter.concurrency = this.state.current;
  }
}
