/**
 * Core, one object from many workers: each worker's range, the scheduler's index, shards, and the
 * CRC combining that lets the finish step prove an object without reading it, checked against
 * direct CRCs of the same bytes by independent implementations.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, test } from 'node:test';
import { createHasher, loadHashers } from '../src/core/checksums.ts';
import { combineCrcs, indexFromEnv, parseIndex, planProblems, rangeOf, receiptCrc, receiptProblems, shardOf, workerOf, type CombinableAlgorithm, type Receipt, type SharedPlan } from '../src/core/shared-plan.ts';
import { referenceDigest } from './helpers/reference.ts';

before(() => loadHashers());

test('rangeOf: contiguous ranges covering every part once; workers beyond the parts get none; workerOf agrees', () => {
  const rows: [number, number, [number, number][]][] = [
    [10, 3, [[1, 4], [5, 8], [9, 10]]],
    [10, 1, [[1, 10]]],
    [3, 5, [[1, 1], [2, 2], [3, 3], [4, 3], [5, 3]]],
    [10_000, 8, [[1, 1250], [1251, 2500], [2501, 3750], [3751, 5000], [5001, 6250], [6251, 7500], [7501, 8750], [8751, 10_000]]],
  ];
  for (const [parts, workers, want] of rows) {
    const got = Array.from({ length: workers }, (_, i) => rangeOf(i, workers, parts)).map((r) => [r.first, r.last]);
    assert.deepEqual(got, want, `${parts} parts, ${workers} workers`);
    for (let n = 1; n <= parts; n++) {
      const w = workerOf(n, workers, parts);
      const r = rangeOf(w, workers, parts);
      assert.ok(n >= r.first && n <= r.last, `part ${n} in worker ${w}'s range`);
    }
  }
});

test('parseIndex and indexFromEnv: I/N, Slurm (the task id itself: a rerun of task 5 alone has minimum 5 and count 1), Kubernetes, Batch; wrong or missing ones refused in words', () => {
  assert.deepEqual(parseIndex('3/8', '--worker'), { index: 3, count: 8 });
  for (const bad of ['8/8', '-1/8', '3', 'a/b', '1/0']) assert.throws(() => parseIndex(bad, '--worker'), /--worker/, bad);
  assert.deepEqual(indexFromEnv({ SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_COUNT: '8' }, '--worker'), { index: 5, from: 'SLURM_ARRAY_TASK_ID' });
  assert.deepEqual(indexFromEnv({ SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_MIN: '5', SLURM_ARRAY_TASK_COUNT: '1' }, '--worker'), { index: 5, from: 'SLURM_ARRAY_TASK_ID' });
  assert.deepEqual(indexFromEnv({ JOB_COMPLETION_INDEX: '2' }, '--worker'), { index: 2, from: 'JOB_COMPLETION_INDEX' });
  assert.deepEqual(indexFromEnv({ AWS_BATCH_JOB_ARRAY_INDEX: '0' }, '--worker'), { index: 0, from: 'AWS_BATCH_JOB_ARRAY_INDEX' });
  assert.throws(() => indexFromEnv({}, '--worker'), /no scheduler index/);
  assert.throws(() => indexFromEnv({ JOB_COMPLETION_INDEX: 'x' }, '--worker'), /not a whole number/);
});

test('shardOf: the same on every call and every host (a hash of the path), every path in exactly one of N shards, all shards used', () => {
  const paths = Array.from({ length: 1000 }, (_, i) => `dir${i % 7}/file-${i}.bin`);
  const counts = new Array(4).fill(0);
  for (const p of paths) {
    const s = shardOf(p, 4);
    assert.equal(shardOf(p, 4), s);
    counts[s]++;
  }
  assert.ok(counts.every((c) => c > 150), counts.join());
  assert.equal(shardOf('a/b', 4), 0, 'fixed for a given path: a change here would move files between shards');
});

async function crcOf(alg: CombinableAlgorithm, data: Buffer): Promise<string> {
  return (await referenceDigest(alg, data)).toString('base64');
}

for (const alg of ['CRC32', 'CRC32C', 'CRC64NVME'] as const) {
  test(`combineCrcs (${alg}): parts, and ranges of parts, combine to the direct CRC of the bytes, with a 1-byte last part and at 10,000 parts`, async () => {
    for (const sizes of [[5, 7, 1], [1], [4096, 4096, 4096, 1], Array.from({ length: 10_000 }, (_, i) => (i === 9_999 ? 1 : 3))]) {
      const parts = sizes.map((n) => randomBytes(n));
      const local = (b: Buffer) => {
        const h = createHasher(alg);
        h.update(b);
        return h.digest().toString('base64');
      };
      const pieces = parts.map((b) => ({ crc: local(b), bytes: b.length }));
      const whole = await crcOf(alg, Buffer.concat(parts));
      assert.equal(combineCrcs(alg, pieces), whole, `${sizes.length} parts`);
      // Three workers' ranges, each combined first (a receipt's crc), then the ranges.
      const per = Math.ceil(pieces.length / 3);
      const ranges = [0, 1, 2].map((w) => pieces.slice(w * per, (w + 1) * per)).map((r) => ({ crc: combineCrcs(alg, r), bytes: r.reduce((a, p) => a + p.bytes, 0) }));
      assert.equal(combineCrcs(alg, ranges), whole, `${sizes.length} parts in 3 ranges`);
    }
    assert.equal(combineCrcs(alg, []), '');
  });
}

test('receiptProblems: a receipt is whole only for its worker\'s range, its upload, and a CRC that is its parts\'', () => {
  const plan = { uploadId: 'u', workers: 2, partCount: 3, partSize: 4, size: 9, checksumAlgorithm: 'CRC32C' } as SharedPlan;
  const parts = [
    { partNumber: 1, size: 4, checksum: 'AAAAAQ==' },
    { partNumber: 2, size: 4, checksum: 'AAAAAg==' },
  ];
  const good: Receipt = { format: 'partwise-receipt', version: 1, uploadId: 'u', worker: 0, workers: 2, first: 1, last: 2, parts, bytes: 8, crc: receiptCrc('CRC32C', parts), writtenAt: 'x', host: 'h' };
  assert.deepEqual(receiptProblems(good, plan, 0), []);
  assert.match(receiptProblems({ ...good, uploadId: 'v' }, plan, 0).join(), /upload v/);
  assert.match(receiptProblems(good, plan, 1).join(), /not worker 1/);
  assert.match(receiptProblems({ ...good, crc: 'AAAAAA==' }, plan, 0).join(), /range CRC/);
  assert.match(receiptProblems({ ...good, bytes: 7 }, plan, 0).join(), /its bytes/);
  assert.match(receiptProblems({ ...good, parts: [parts[0]!] }, plan, 0).join(), /lists 1 parts/);
  assert.match(receiptProblems({ format: 'x' }, plan, 0).join(), /not a partwise receipt/);
  // An entry for another part, or of another size, even with the CRC recomputed to match.
  for (const bad of [[parts[0]!, { ...parts[1]!, partNumber: 3 }], [parts[0]!, { ...parts[1]!, size: 5 }]]) {
    assert.match(receiptProblems({ ...good, parts: bad, crc: receiptCrc('CRC32C', bad), bytes: bad.reduce((a, p) => a + p.size, 0) }, plan, 0).join(), /its entry 1 is not part 2 of 4 bytes/);
  }
  // The last part is the remainder: 9 bytes in parts of 4 end with a part of 1.
  const last = [{ partNumber: 3, size: 1, checksum: 'AAAAAw==' }];
  assert.deepEqual(receiptProblems({ ...good, worker: 1, first: 3, last: 3, parts: last, bytes: 1, crc: receiptCrc('CRC32C', last) }, plan, 1), []);
});

test('planProblems: a plan is usable only whole, for this bucket and key, and with a finished record that names a checksum', () => {
  const plan: SharedPlan = { format: 'partwise-plan', version: 1, bucket: 'b', key: 'k', uploadId: 'u', createdAt: 'x', workers: 2, size: 9, partSize: 4, partCount: 3, checksumAlgorithm: 'CRC32C', checksumType: 'FULL_OBJECT', source: { name: 'f', size: 9, mtimeMs: 1, samples: [] }, settings: {} };
  assert.deepEqual(planProblems(plan, 'b', 'k'), []);
  assert.match(planProblems(plan, 'other', 'k').join(), /it is for s3:\/\/b\/k/);
  assert.match(planProblems(plan, 'b', 'k2').join(), /it is for s3:\/\/b\/k/);
  assert.match(planProblems({ ...plan, version: 2 }, 'b', 'k').join(), /plan version 2/);
  assert.match(planProblems({ ...plan, partCount: 0 }, 'b', 'k').join(), /partCount is not valid/);
  assert.match(planProblems({ ...plan, checksumAlgorithm: 'SHA256' }, 'b', 'k').join(), /part values combine/);
  assert.match(planProblems({ ...plan, uploadId: '' }, 'b', 'k').join(), /names no upload/);
  assert.match(planProblems({ ...plan, source: undefined }, 'b', 'k').join(), /no source identity/);
  assert.match(planProblems({ ...plan, finished: { etag: 'e', finishedAt: 't' } }, 'b', 'k').join(), /finished record names no checksum/);
  assert.deepEqual(planProblems({ ...plan, finished: { checksum: 'AAAAAA==', etag: 'e', finishedAt: 't' } }, 'b', 'k'), []);
});
