import assert from 'node:assert/strict';
import { test } from 'node:test';
import pLimit from 'p-limit';
import { DEFAULT_THROTTLE_TUNING, Throttle, initialSearch, initialThrottle, onSent, onSuccess, onThrottled, type ConcurrencyChange, type SearchTuning, type ThrottleState } from '../src/core/throttle.ts';

test('throttle decisions: one row per situation', () => {
  const t = DEFAULT_THROTTLE_TUNING;
  const s = (current: number, lastDecreaseAt = -Infinity, successes = 0, ceiling = 8): ThrottleState => ({ ceiling, current, lastDecreaseAt, successes });
  const rows: { name: string; got: ThrottleState; want: Pick<ThrottleState, 'current' | 'successes'> }[] = [
    { name: 'first SlowDown halves', got: onThrottled(s(8), 5000, t), want: { current: 4, successes: 0 } },
    { name: 'a SlowDown in the same burst changes nothing', got: onThrottled(s(4, 5000), 5500, t), want: { current: 4, successes: 0 } },
    { name: 'a SlowDown after the cool-down halves again', got: onThrottled(s(4, 5000), 6000, t), want: { current: 2, successes: 0 } },
    { name: 'never below 1', got: onThrottled(s(1), 9000, t), want: { current: 1, successes: 0 } },
    { name: 'odd halves down', got: onThrottled(s(5), 9000, t), want: { current: 2, successes: 0 } },
    { name: 'success inside the burst does not climb', got: onSuccess(s(2, 5000, 1), 5100, t), want: { current: 2, successes: 1 } },
    { name: 'successes count toward a step', got: onSuccess(s(2, 5000, 0), 7000, t), want: { current: 2, successes: 1 } },
    { name: 'a full window of successes: one slot back', got: onSuccess(s(2, 5000, 1), 7000, t), want: { current: 3, successes: 0 } },
    { name: 'at the ceiling: stays', got: onSuccess(s(8, 5000, 0), 7000, t), want: { current: 8, successes: 0 } },
  ];
  for (const r of rows) assert.deepEqual({ current: r.got.current, successes: r.got.successes }, r.want, r.name);
});

test('throttle: from a SlowDown back to the ceiling, additively, under a fake clock', () => {
  let now = 0;
  let st = initialThrottle(8);
  st = onThrottled(st, (now += 10));
  assert.equal(st.current, 4);
  const path: number[] = [];
  for (let i = 0; i < 40 && st.current < 8; i++) {
    st = onSuccess(st, (now += 500));
    path.push(st.current);
  }
  assert.equal(st.current, 8);
  // 4 → 5 needs 4 successes (after the cool-down), 5 → 6 five more, …: additive, not a jump.
  assert.deepEqual([...new Set(path)], [4, 5, 6, 7, 8]);
});

test('Throttle: one per limiter, applied to it, shared by whoever holds the limiter', () => {
  const limiter = pLimit(6);
  let now = 1000;
  const a = Throttle.for(limiter, { now: () => now });
  const b = Throttle.for(limiter, { now: () => now });
  assert.equal(a, b);
  assert.equal(a.throttled(), 3);
  assert.equal(limiter.concurrency, 3);
  assert.equal(b.throttled(), undefined, 'same burst');
  now += 2000;
  for (let i = 0; i < 50; i++) b.succeeded();
  assert.equal(limiter.concurrency, 6, 'back to the ceiling, not beyond');
});

test('concurrency search: doubles while the rate rises by a tenth, settles at the best level after two flat windows, ignores the warm-up after each change; re-probes later', () => {
  const t: SearchTuning = { windowMs: 500, minGain: 0.1, flatWindows: 2, reprobeMs: 20_000, warmupMs: 250 };
  let s = initialSearch(4, 32);
  let now = 1000;
  const levels: number[] = [];
  // A link where each level gives min(level × 8, 100) bytes/ms, and every change first sends a burst (buffers filling).
  const rateAt = (level: number) => Math.min(level * 8, 100);
  const run = (ms: number) => {
    for (let i = 0; i < ms / 10; i++) {
      now += 10;
      const before = s.current;
      s = onSent(s, rateAt(s.current) * 10, now, t);
      if (s.current !== before) {
        levels.push(s.current);
        // the burst of new requests filling their buffers: inside the warm-up, so not judged
        s = onSent(s, 5_000_000, now + 1, t);
      }
    }
  };
  assert.equal(s.current, 4);
  assert.ok(Number.isNaN(s.search!.windowStart), 'nothing judged before the first bytes');
  // The first bytes start the warm-up; the first requests' buffers fill inside it.
  s = onSent(s, 80, (now += 10), t);
  s = onSent(s, 5_000_000, (now += 1), t);
  run(6000);
  // 4 → 8 → 16 (+100%, +56%); 16 → 32 gives 100 vs 100: flat twice, back to 16.
  assert.deepEqual(levels, [8, 16, 32, 16]);
  assert.equal(s.current, 16);
  assert.ok(s.search!.settledAt !== undefined);
  run(10_000);
  assert.equal(s.current, 16, 'settled: no probing before reprobeMs');
  run(12_000);
  assert.deepEqual(levels.slice(4), [32, 16], 'a re-probe one level up, and back');
});

test('concurrency search: a SlowDown halves and settles it there; the fixed mode never searches', () => {
  const t: SearchTuning = { windowMs: 500, minGain: 0.1, flatWindows: 2, reprobeMs: 20_000, warmupMs: 250 };
  let s = initialSearch(16, 32);
  s = onSent(s, 1, 0, t);
  s = onThrottled(s, 100);
  assert.equal(s.current, 8);
  assert.equal(s.search!.settledAt, 100);
  for (let now = 200; now < 5000; now += 10) s = onSent(s, 1_000_000, now, t);
  assert.equal(s.current, 8, 'no climbing on rate after a SlowDown until a re-probe');
  let after = s;
  for (let i = 0; i < 100; i++) after = onSuccess(after, 9000 + i);
  assert.equal(after.current, 8, 'successes do not climb a search');
  const fixed = initialThrottle(4);
  assert.equal(onSent(fixed, 1e9, 1000, t), fixed);
});

test('Throttle: the level a searching limiter starts at, each change told to followers with its reason, applied to the limiter', () => {
  const limiter = pLimit(4);
  let now = 0;
  const th = Throttle.for(limiter, { now: () => now, search: { max: 32 }, searchTuning: { windowMs: 500, minGain: 0.1, flatWindows: 2, reprobeMs: 20_000, warmupMs: 0 } });
  const seen: ConcurrencyChange[] = [];
  const off = th.follow((e) => seen.push(e));
  th.sent(1);
  now = 600;
  th.sent(1_000_000);
  assert.equal(limiter.concurrency, 8);
  assert.deepEqual(seen.map((e) => [e.concurrency, e.reason, e.searching]), [
    [4, 'start', true],
    [8, 'rate-rising', true],
  ]);
  assert.equal(seen[1]!.bytesPerSecond, Math.round((1_000_000 / 600) * 1000), "the first bytes start the window");
  off();
  now = 5000;
  th.throttled();
  assert.equal(limiter.concurrency, 4);
  assert.equal(seen.length, 2, 'unfollowed');
});
