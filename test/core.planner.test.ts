import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FileTooLargeError, InvalidOptionsError } from '../src/core/errors.ts';
import { GiB, KiB, MiB, S3_MAX_OBJECT_SIZE, allParts, partAt, planParts } from '../src/core/planner.ts';

test('planParts: table at the boundaries', () => {
  const rows: { size: number; opts?: Parameters<typeof planParts>[1]; partSize: number; partCount: number; adjustedFrom?: number }[] = [
    { size: 0, partSize: 16 * MiB, partCount: 1 },
    { size: 1, partSize: 16 * MiB, partCount: 1 },
    { size: 16 * MiB, partSize: 16 * MiB, partCount: 1 },
    { size: 16 * MiB + 1, partSize: 16 * MiB, partCount: 2 },
    { size: 5 * MiB, opts: { partSize: 5 * MiB }, partSize: 5 * MiB, partCount: 1 },
    { size: 5 * MiB + 1, opts: { partSize: 5 * MiB }, partSize: 5 * MiB, partCount: 2 },
    // 10,000 parts exactly at the requested size
    { size: 10_000 * 16 * MiB, partSize: 16 * MiB, partCount: 10_000 },
    // one byte more forces a bigger part, rounded up to a whole MiB
    { size: 10_000 * 16 * MiB + 1, partSize: 17 * MiB, partCount: 9_412, adjustedFrom: 16 * MiB },
    // the largest object: 10,000 parts of 5 GiB
    { size: S3_MAX_OBJECT_SIZE, partSize: 5 * GiB, partCount: 10_000, adjustedFrom: 16 * MiB },
    { size: S3_MAX_OBJECT_SIZE - 1, partSize: 5 * GiB, partCount: 10_000, adjustedFrom: 16 * MiB },
    // 48.8 TiB, AWS's documented maximum
    { size: Math.floor(48.8 * 1024 * GiB), partSize: 5118 * MiB, partCount: 9_999, adjustedFrom: 16 * MiB },
    { size: 5 * GiB, opts: { partSize: 5 * GiB }, partSize: 5 * GiB, partCount: 1 },
    // servers configured for small parts
    { size: 1200 * KiB, opts: { partSize: KiB, minPartSize: 1 }, partSize: KiB, partCount: 1200 },
  ];
  for (const r of rows) {
    const p = planParts(r.size, r.opts);
    assert.equal(p.partSize, r.partSize, `partSize for ${r.size}`);
    assert.equal(p.partCount, r.partCount, `partCount for ${r.size}`);
    assert.equal(p.adjustedFrom, r.adjustedFrom, `adjustedFrom for ${r.size}`);
    assert.ok(p.partCount <= 10_000);
    assert.ok(p.partSize <= 5 * GiB);
    assert.ok(p.partCount * p.partSize >= r.size);
  }
});

test('planParts: rejects what S3 cannot take', () => {
  assert.throws(() => planParts(S3_MAX_OBJECT_SIZE + 1), FileTooLargeError);
  assert.throws(() => planParts(10, { partSize: 5 * GiB + 1 }), InvalidOptionsError);
  assert.throws(() => planParts(10, { partSize: 5 * MiB - 1 }), InvalidOptionsError);
  assert.throws(() => planParts(-1), InvalidOptionsError);
  assert.throws(() => planParts(10, { partSize: 0, minPartSize: 1 }), InvalidOptionsError);
});

test('partAt / allParts cover the file exactly, last part short, empty file one empty part', () => {
  const plan = planParts(12 * MiB + 5, { partSize: 5 * MiB });
  const parts = allParts(plan);
  assert.deepEqual(parts.map((p) => p.size), [5 * MiB, 5 * MiB, 2 * MiB + 5]);
  assert.deepEqual(parts.map((p) => p.offset), [0, 5 * MiB, 10 * MiB]);
  assert.deepEqual(allParts(planParts(0)), [{ partNumber: 1, offset: 0, size: 0 }]);
  assert.throws(() => partAt(plan, 4), RangeError);
  assert.throws(() => partAt(plan, 0), RangeError);
});
