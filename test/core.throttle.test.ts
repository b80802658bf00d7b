import assert from 'node:assert/strict';
import { test } from 'node:test';
import pLimit from 'p-limit';
import { DEFAULT_THROTTLE_TUNING, Throttle, initialThrottle, onSuccess, onThrottled, type ThrottleState } from '../src/core/throttle.ts';

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
  const a = Throttle.for(limiter, () => now);
  const b = Throttle.for(limiter, () => now);
  assert.equal(a, b);
  assert.equal(a.throttled(), 3);
  assert.equal(limiter.concurrency, 3);
  assert.equal(b.throttled(), undefined, 'same burst');
  now += 2000;
  for (let i = 0; i < 50; i++) b.succeeded();
  assert.equal(limiter.concurrency, 6, 'back to the ceiling, not beyond');
});
