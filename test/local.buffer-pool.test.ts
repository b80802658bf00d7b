import assert from 'node:assert/strict';
import { test } from 'node:test';
import pLimit from 'p-limit';
import { BufferPool, poolFor } from '../src/local/buffer-pool.ts';

test('buffer pool: acknowledged part buffers are read into again; a last part takes a view of a full one; never more than the concurrency kept', () => {
  const MiB = 1024 * 1024;
  let capacity = 2;
  const pool = new BufferPool(() => capacity);
  const a = pool.take(5 * MiB, 5 * MiB);
  const b = pool.take(3 * MiB, 5 * MiB); // a last part: allocated at the full part size
  assert.equal(a.length, 5 * MiB);
  assert.equal(b.length, 3 * MiB);
  assert.equal(b.buffer.byteLength, 5 * MiB, 'backed by a full-size buffer');
  pool.give(a);
  pool.give(b);
  assert.equal(pool.size, 2);
  const c = pool.take(5 * MiB, 5 * MiB);
  assert.ok(c.buffer === a.buffer || c.buffer === b.buffer, 'recycled, not allocated');
  const d = pool.take(5 * MiB, 5 * MiB);
  assert.notEqual(d.buffer, c.buffer);
  assert.ok(d.buffer === a.buffer || d.buffer === b.buffer);
  capacity = 1;
  pool.give(c);
  pool.give(d);
  assert.equal(pool.size, 1, 'beyond the concurrency, buffers are let go');
  pool.give(c);
  assert.equal(pool.size, 1, 'a buffer is never pooled twice');
  const small = pool.take(1000);
  pool.give(small);
  assert.equal(pool.size, 1, 'slab-sized buffers are not pooled');
  const limiter = pLimit(3);
  assert.equal(poolFor(limiter), poolFor(limiter), 'one pool per limiter');
});
