import assert from 'node:assert/strict';
import { test } from 'node:test';
import pLimit from 'p-limit';
import { open } from 'node:fs/promises';
import { BufferPool, poolFor } from '../src/local/buffer-pool.ts';
import { ARENA_BYTES, preparePart } from '../src/local/file-source.ts';
import { digestBuffer } from '../src/core/hashing.ts';
import { loadHashers } from '../src/core/checksums.ts';
import { randomFile, tempDir } from './helpers/s3.ts';

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

test('a streamed part: hashed and read through its arena in quarter slices; a second read of the body (a retried request) takes a fresh arena, and both give the file\'s bytes', async () => {
  const dir = await tempDir();
  const MiB = 1024 * 1024;
  await loadHashers(['CRC32C', 'MD5']);
  const f = await randomFile(dir, 3 * MiB + 5);
  const fh = await open(f.path, 'r');
  try {
    const arena = Buffer.alloc(ARENA_BYTES);
    const part = { partNumber: 1, offset: 0, size: f.bytes.length };
    const p = await preparePart(fh, part, 'CRC32C', ARENA_BYTES, { arena: () => arena, md5: true });
    assert.ok(!Buffer.isBuffer(p.body), 'not held');
    assert.deepEqual(p.digest, digestBuffer(f.bytes, 'CRC32C', true));
    for (const round of [0, 1]) {
      const got: Buffer[] = [];
      const backing = new Set<ArrayBufferLike>();
      for await (const c of (p.body as Exclude<typeof p.body, Buffer>).chunks()) {
        backing.add(c.buffer);
        assert.ok(c.length <= ARENA_BYTES / 4);
        got.push(Buffer.from(c));
      }
      assert.ok(Buffer.concat(got).equals(f.bytes), `round ${round}: the file's bytes`);
      assert.equal(backing.size, 1, 'one arena per read of the body');
      assert.equal(backing.has(arena.buffer), round === 0, round === 0 ? 'the first read uses the arena given' : 'a second read does not');
    }
  } finally {
    await fh.close();
  }
});
