/**
 * The hash pool behind resume verification: parts hashed once however often asked for, parts no
 * longer wanted dropped before they are read, and a stop or a read failure reported, never a
 * digest of the wrong bytes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadHashers } from '../src/core/checksums.ts';
import { allParts, partsOfPlan, planParts, planWithPartSize } from '../src/core/planner.ts';
import { needsMd5 } from '../src/core/reconcile.ts';
import type { Worker } from 'node:worker_threads';
import { HashPool, hashPartsInWorkers, partHashing, startHashThread } from '../src/local/verify-pool.ts';
import pLimit from 'p-limit';
import { EngineContext } from '../src/upload/context.ts';
import { fingerprint } from '../src/local/file-source.ts';
import type { JournalData } from '../src/local/journal.ts';
import type { S3Port } from '../src/s3/port.ts';
import { verifyListed } from '../src/upload/session.ts';
import { referenceDigest } from './helpers/reference.ts';
import { randomFile, tempDir } from './helpers/s3.ts';

const MiB = 1024 * 1024;

async function fixture() {
  await loadHashers();
  const dir = await tempDir();
  const f = await randomFile(dir, 8 * MiB + 5);
  const plan = planParts(f.bytes.length, { partSize: MiB, minPartSize: 1 });
  return { f, plan, parts: allParts(plan) };
}

test('pool: parts prefetched and then asked for are hashed once, with the right digests', async () => {
  const { f, plan, parts } = await fixture();
  const seen: number[] = [];
  const pool = new HashPool(f.path, 'CRC32C', { md5: true, onPart: (n) => seen.push(n) });
  pool.prefetch(parts.slice(0, 6));
  const got = await pool.hash([parts[1]!, parts[4]!, parts[8]!]);
  const all = await pool.hash(parts);
  pool.close();
  assert.deepEqual([...seen].sort((a, b) => a - b), parts.map((p) => p.partNumber), 'every part hashed exactly once');
  assert.deepEqual([...got.keys()], [2, 5, 9]);
  for (const p of allParts(plan)) {
    const bytes = f.bytes.subarray(p.offset, p.offset + p.size);
    const d = all.get(p.partNumber)!;
    assert.deepEqual(d.checksum, await referenceDigest('CRC32C', bytes), `part ${p.partNumber} checksum`);
    assert.equal(d.md5Hex, (await referenceDigest('MD5', bytes)).toString('hex'), `part ${p.partNumber} MD5`);
  }
});

test('pool: queued parts no longer wanted are never read; close lets nothing else start', async () => {
  const { f, parts } = await fixture();
  const seen: number[] = [];
  const pool = new HashPool(f.path, 'CRC32C', { workers: 1, md5: false, onPart: (n) => seen.push(n) });
  pool.prefetch(parts); // the one thread takes part 1 at once; the rest wait in the queue
  pool.retain(new Set([1, 7]));
  const got = await pool.hash([parts[6]!]);
  pool.close();
  assert.equal(got.get(7)?.md5Hex, undefined, 'MD5 not computed when not asked for');
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(seen, [1, 7]);
  await assert.rejects(pool.hash([parts[2]!]), /closed/);
});

test('pool: a stop rejects what is asked; a part past the end of the file is an error, not a digest', async () => {
  const { f, plan, parts } = await fixture();
  const ac = new AbortController();
  const pool = new HashPool(f.path, 'CRC32C', { signal: ac.signal });
  const asked = pool.hash(parts);
  ac.abort(new Error('stop now'));
  await assert.rejects(asked, /stop now/);
  const beyond = { partNumber: plan.partCount + 1, offset: f.bytes.length, size: MiB };
  await assert.rejects(hashPartsInWorkers(f.path, [beyond], 'CRC32C'), /hashing part 10: unexpected end of file/);
});

test('pool: a thread that dies, busy or idle, fails what is asked instead of leaving it waiting', { timeout: 20_000 }, async () => {
  const { f, parts } = await fixture();
  const threads: Worker[] = [];
  const startThread = () => {
    const w = startHashThread();
    threads.push(w);
    return w;
  };
  const busy = new HashPool(f.path, 'CRC32C', { workers: 1, startThread });
  const idle = new HashPool(f.path, 'CRC32C', { workers: 1, startThread });
  try {
    const asked = busy.hash(parts);
    await threads[0]!.terminate(); // before it has hashed a byte: part 1 is in its hands
    await assert.rejects(asked, /hash worker exited while hashing part 1/);
    await idle.hash([parts[0]!]);
    await threads[1]!.terminate(); // idle now, waiting for the next part
    await assert.rejects(idle.hash([parts[1]!]), /exited unexpectedly/);
  } finally {
    for (const t of threads) await t.terminate();
  }
});

test('pool: retain never drops a part someone waits for; one part number stands for one byte range', { timeout: 20_000 }, async () => {
  const { f, parts } = await fixture();
  const pool = new HashPool(f.path, 'CRC32C', { workers: 1 });
  try {
    const asked = pool.hash(parts.slice(0, 3));
    pool.retain(new Set([1]));
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('a part waited for was dropped: still waiting after 5 s')), 5000).unref());
    assert.deepEqual([...((await Promise.race([asked, timeout])) as Map<number, unknown>).keys()], [1, 2, 3]);
    assert.throws(() => pool.prefetch([{ partNumber: 2, offset: 8 * MiB, size: 5 }]), /part 2 asked for as bytes 8388608\+5, already as 1048576\+1048576/);
  } finally {
    pool.close();
  }
});

test('partsOfPlan and needsMd5: one row per case', () => {
  const plan = planWithPartSize(25, 10); // 10, 10, 5
  const rows: [string, { partNumber: number; size: number }[], number[]][] = [
    ['all fit', [{ partNumber: 1, size: 10 }, { partNumber: 3, size: 5 }], [1, 3]],
    ['wrong size left out', [{ partNumber: 2, size: 9 }], []],
    ['beyond the plan left out', [{ partNumber: 4, size: 10 }, { partNumber: 0, size: 10 }], []],
    ['last part at full size left out', [{ partNumber: 3, size: 10 }], []],
  ];
  for (const [name, claimed, want] of rows) assert.deepEqual(partsOfPlan(plan, claimed).map((p) => p.partNumber), want, name);
  assert.deepEqual(planWithPartSize(0, 10), { fileSize: 0, partSize: 10, partCount: 1 });
  const md5Rows: [string, Parameters<typeof needsMd5>[0], Parameters<typeof needsMd5>[1], boolean][] = [
    ['server stores checksums, every part listed with one', { checksumAlgorithm: 'CRC32C', serverChecksums: true }, [{ checksum: 'x' }], false],
    ['before the listing: what the journal learnt', { checksumAlgorithm: 'CRC32C', serverChecksums: true }, undefined, false],
    ['a part listed without its checksum', { checksumAlgorithm: 'CRC32C', serverChecksums: true }, [{ checksum: 'x' }, {}], true],
    ['server never seen to store checksums', { checksumAlgorithm: 'CRC32C' }, [{ checksum: 'x' }], true],
    ['--checksum none', { checksumAlgorithm: null, serverChecksums: true }, [], true],
  ];
  for (const [name, j, listed, want] of md5Rows) assert.equal(needsMd5(j, listed), want, name);
});

test('verifyListed: parts hashed for the journal but not listed by the server never count in the progress, in flight or done', async () => {
  const { f, plan, parts } = await fixture();
  const events: { bytesHashed: number; bytesToHash: number; partsHashed: number; partsToHash: number }[] = [];
  const emit = ((name: string, e: never) => (name === 'verify-progress' ? events.push(e) : undefined)) as unknown as EngineContext['emit'];
  const cx = new EngineContext({ file: f.path, bucket: 'b', key: 'k', s3: {} as S3Port, hashWorkers: 1 }, pLimit(1), new AbortController().signal, emit);
  const j = { checksumAlgorithm: 'CRC32C', serverChecksums: true, parts: [], etagIsMd5: true } as unknown as JournalData;
  const fp = await fingerprint(f.path);
  // Done before the listing: part 9. In the thread's hands when it comes: part 8. Queued: part 6.
  const early = partHashing(f.path, 'CRC32C', false, { workers: 1 });
  await early.pool.hash([parts[8]!]);
  early.pool.prefetch([parts[7]!, parts[5]!]);
  const listed = { parts: [1, 2, 3].map((n) => ({ partNumber: n, size: MiB, etag: 'e', checksum: 'AAAAAA==' })), pages: 1, stoppedEarly: false };
  const v = await verifyListed(cx, j, plan, fp, listed, early);
  await new Promise((r) => setTimeout(r, 50)); // part 8 finishes after the listing's parts
  assert.deepEqual([...v.local.keys()].sort(), [1, 2, 3]);
  assert.ok(events.length > 0);
  for (const e of events) {
    assert.equal(e.bytesToHash, 3 * MiB);
    assert.ok(e.bytesHashed <= e.bytesToHash && e.partsHashed <= e.partsToHash, `progress past 100%: ${JSON.stringify(e)}`);
  }
  assert.deepEqual(events.at(-1), { bytesHashed: 3 * MiB, bytesToHash: 3 * MiB, partsHashed: 3, partsToHash: 3 });
  assert.equal(early.hashedParts.has(6), false, 'a queued part nobody wants is not read');
  assert.equal(v.report.hashing?.headStartBytes, 0);
});
