/**
 * Jobs, one object from many workers, in one process against the local RGW (the same steps under a
 * real Slurm cluster: jobs.slurm.test.ts): plan, workers, finish without the file; the plan found
 * again, and refused for other bytes; a worker on another version of the file refused, and finish
 * naming it; a receipt that disagrees with the server; a finish killed past Complete; two copies
 * of one worker at once; abort of an abandoned plan.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { createHasher, loadHashers } from '../src/core/checksums.ts';
import { S3RequestError } from '../src/core/errors.ts';
import { planKey, receiptKey } from '../src/core/shared-plan.ts';
import { abandonSharedUpload, finishSharedUpload, planSharedUpload, SharedWorker } from '../src/jobs/shared-upload.ts';
import { SdkS3Port } from '../src/s3/adapter.ts';
import type { S3Port } from '../src/s3/port.ts';
import { wrapPort } from './helpers/ports.ts';
import { countingClient, getObjectBytes, loadS3Env, makeBucket, plainClient, randomFile, sha256, tempDir } from './helpers/s3.ts';

const MiB = 1024 * 1024;

async function keysUnder(bucket: string, prefix: string): Promise<string[]> {
  return ((await plainClient().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))).Contents ?? []).map((o) => o.Key!).sort();
}
async function openUploads(bucket: string): Promise<number> {
  return (await plainClient().send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads?.length ?? 0;
}

async function setup(size = 23 * MiB + 7) {
  loadS3Env();
  const bucket = await makeBucket('pw-shared');
  const dir = await tempDir();
  const f = await randomFile(dir, size);
  const { client, counts } = countingClient();
  return { bucket, dir, f, s3: new SdkS3Port(client), counts };
}

test('plan, three workers, finish without the file: byte-identical, proven by the combined full-object CRC; records removed; each part sent once', async () => {
  const { bucket, f, s3, counts } = await setup();
  const base = { s3, bucket, key: 'db.dump', partSize: 5 * MiB };
  const planned = await planSharedUpload({ ...base, file: f.path, workers: 3 });
  assert.equal(planned.reused, false);
  assert.equal(planned.plan.partCount, 5);
  const again = await planSharedUpload({ ...base, file: f.path, workers: 3 });
  assert.equal(again.reused, true, 'the plan step run again finds its plan');
  assert.equal(again.plan.uploadId, planned.plan.uploadId);
  assert.equal(counts.CreateMultipartUpload, 1);
  let sent = 0;
  for (let i = 0; i < 3; i++) {
    const r = await new SharedWorker({ ...base, file: f.path, worker: i, workers: 3 }).done();
    sent += r.bytesSent;
  }
  assert.equal(sent, f.bytes.length, 'every byte sent once');
  const done = await finishSharedUpload(base);
  assert.equal(done.alreadyComplete, false);
  assert.equal(done.verification.level, 'full-object-checksum');
  assert.equal(sha256(await getObjectBytes(bucket, 'db.dump')), f.sha256);
  const h = await plainClient().send(new HeadObjectCommand({ Bucket: bucket, Key: 'db.dump', ChecksumMode: 'ENABLED' }));
  assert.equal(h.ChecksumCRC32C, done.checksum, 'the checksum the server shows is the one combined from the receipts');
  assert.deepEqual(await keysUnder(bucket, 'db.dump.partwise/'), [], 'plan and receipts removed');
  assert.equal(await openUploads(bucket), 0);
});

test('a worker rerun is a resume: it verifies what the server holds of its range and sends only the rest', async () => {
  const { bucket, f, s3 } = await setup();
  const base = { s3, bucket, key: 'resume.bin', partSize: 5 * MiB };
  await planSharedUpload({ ...base, file: f.path, workers: 1 });
  const ac = new AbortController();
  const first = new SharedWorker({ ...base, file: f.path, worker: 0, concurrency: 1, signal: ac.signal });
  first.on('part-done', () => ac.abort());
  await assert.rejects(first.done());
  const rerun = await new SharedWorker({ ...base, file: f.path, worker: 0 }).done();
  assert.ok(rerun.partsVerified >= 1, `${rerun.partsVerified} parts verified, not sent again`);
  assert.equal(rerun.partsVerified + rerun.partsSent, 5);
  assert.equal((await finishSharedUpload(base)).verification.level, 'full-object-checksum');
});

test('another version of the file: the plan step refuses the plan for other bytes; its worker is refused (PLAN_MISMATCH) and sends nothing; finish names that worker (exit 6 material) and completes nothing', async () => {
  const { bucket, dir, f, s3 } = await setup();
  const base = { s3, bucket, key: 'two.bin', partSize: 5 * MiB };
  await planSharedUpload({ ...base, file: f.path, workers: 2 });
  // Same size and name on "another host": other bytes, another modification time.
  const other = join(dir, 'other.bin');
  await writeFile(other, randomBytes(f.bytes.length));
  await assert.rejects(planSharedUpload({ ...base, file: other, workers: 2 }), (e: { code?: string; message?: string }) => e.code === 'PLAN_MISMATCH' && /other bytes/.test(e.message ?? ''));
  // The same size and modification time: only the samples tell.
  execFileSync('touch', ['-r', f.path, other]);
  const { client, counts } = countingClient();
  await assert.rejects(new SharedWorker({ ...base, s3: new SdkS3Port(client), file: other, worker: 1 }).done(), (e: { code?: string; message?: string }) => e.code === 'PLAN_MISMATCH' && /samples hold other bytes/.test(e.message ?? ''));
  assert.equal(counts.UploadPart ?? 0, 0, 'nothing sent');
  await new SharedWorker({ ...base, file: f.path, worker: 0 }).done();
  await assert.rejects(finishSharedUpload(base), (e: { code?: string; message?: string; missing?: { workers: number[] } }) => {
    assert.equal(e.code, 'PARTS_MISSING');
    assert.deepEqual(e.missing?.workers, [1]);
    assert.match(e.message ?? '', /Run worker 1 again/);
    return true;
  });
  assert.equal(await openUploads(bucket), 1, 'nothing completed');
  await assert.rejects(getObjectBytes(bucket, 'two.bin'));
  // Abandoned: abort takes the upload and the records.
  assert.ok(await abandonSharedUpload(base));
  assert.equal(await openUploads(bucket), 0);
  assert.deepEqual(await keysUnder(bucket, 'two.bin.partwise/'), []);
});

test('a receipt that disagrees with what the server holds (another writer replaced a part) is never completed (RECEIPT_MISMATCH, the worker named)', async () => {
  const { bucket, dir, f, s3 } = await setup(12 * MiB);
  const base = { s3, bucket, key: 'swap.bin', partSize: 5 * MiB };
  const { plan } = await planSharedUpload({ ...base, file: f.path, workers: 2 });
  for (let i = 0; i < 2; i++) await new SharedWorker({ ...base, file: f.path, worker: i }).done();
  // Another writer puts other bytes under part 1 (with the upload's checksum, as a client must).
  const other = join(dir, 'x.bin');
  await writeFile(other, randomBytes(5 * MiB));
  await loadHashers(['CRC32C']);
  const bytes = await readFile(other);
  const h = createHasher('CRC32C');
  h.update(bytes);
  await s3.uploadPart({ bucket, key: 'swap.bin', uploadId: plan.uploadId, partNumber: 1, body: bytes, checksum: { algorithm: 'CRC32C', value: h.digest().toString('base64') } }, {});
  await assert.rejects(finishSharedUpload(base), (e: { code?: string; worker?: number }) => e.code === 'RECEIPT_MISMATCH' && e.worker === 0);
  assert.equal(await openUploads(bucket), 1, 'nothing completed');
  assert.ok(await abandonSharedUpload(base));
  assert.equal(await openUploads(bucket), 0);
  assert.deepEqual(await keysUnder(bucket, 'swap.bin.partwise/'), []);
});

test('finish killed past Complete: run again, it proves the object by the receipts\' CRC and says already complete; --keep-receipts leaves the records', async () => {
  const { bucket, f, s3 } = await setup(11 * MiB);
  const key = 'killed.bin';
  await planSharedUpload({ s3, bucket, key, file: f.path, workers: 2, partSize: 5 * MiB });
  for (let i = 0; i < 2; i++) await new SharedWorker({ s3, bucket, key, file: f.path, worker: i }).done();
  const dying: S3Port = wrapPort(s3, {
    completeMultipartUpload: async (input, req, signal) => {
      await s3.completeMultipartUpload(input, req, signal);
      throw new Error('killed');
    },
    headObject: async () => {
      throw new S3RequestError({ operation: 'HeadObject', s3Code: 'ECONNRESET' });
    },
  });
  await assert.rejects(finishSharedUpload({ s3: dying, bucket, key, retry: { maxAttempts: 1 } }));
  const again = await finishSharedUpload({ s3, bucket, key, keepRecords: true });
  assert.equal(again.alreadyComplete, true);
  assert.equal(again.verification.level, 'full-object-checksum');
  assert.equal(sha256(await getObjectBytes(bucket, key)), f.sha256);
  assert.equal((await keysUnder(bucket, 'killed.bin.partwise/')).length, 3, 'plan and two receipts kept as a proof record');
  const record = JSON.parse(await (await plainClient().send(new GetObjectCommand({ Bucket: bucket, Key: planKey(key) }))).Body!.transformToString());
  assert.equal(record.finished.checksum, again.checksum, 'the plan kept as the finished record');
  assert.deepEqual(JSON.parse((await (await plainClient().send(new GetObjectCommand({ Bucket: bucket, Key: receiptKey(key, 1, 2) }))).Body!.transformToString())).worker, 1);
});

test('two copies of one worker at the same time (a requeued or replaced task): the same parts, the same receipt, one identical object', async () => {
  const { bucket, f, s3 } = await setup(31 * MiB);
  const base = { s3, bucket, key: 'twice.bin', partSize: 5 * MiB };
  await planSharedUpload({ ...base, file: f.path, workers: 2 });
  const [a, b] = await Promise.all([new SharedWorker({ ...base, file: f.path, worker: 0 }).done(), new SharedWorker({ ...base, file: f.path, worker: 0 }).done()]);
  assert.equal(a.first, b.first);
  await new SharedWorker({ ...base, file: f.path, worker: 1 }).done();
  await finishSharedUpload(base);
  assert.equal(sha256(await getObjectBytes(bucket, 'twice.bin')), f.sha256);
});

test('a plan object that is not a plan (another program\'s, or torn) is refused, never used', async () => {
  const { bucket, f, s3 } = await setup(6 * MiB);
  await plainClient().send(new PutObjectCommand({ Bucket: bucket, Key: planKey('x.bin'), Body: '{"format":"something-else"}' }));
  await assert.rejects(planSharedUpload({ s3, bucket, key: 'x.bin', file: f.path, workers: 2 }), (e: { code?: string; message?: string }) => e.code === 'PLAN_MISMATCH' && /not a plan partwise can use/.test(e.message ?? ''));
  await assert.rejects(finishSharedUpload({ s3, bucket, key: 'x.bin' }), (e: { code?: string }) => e.code === 'PLAN_MISMATCH');
});

test('finish never takes an object for the upload\'s on less than its CRC: the upload gone and another object at the key is UPLOAD_GONE; a receipt of another worker put in place is RECEIPT_MISMATCH', async () => {
  const { bucket, f, s3 } = await setup(11 * MiB);
  const base = { s3, bucket, key: 'gone.bin', partSize: 5 * MiB };
  const { plan } = await planSharedUpload({ ...base, file: f.path, workers: 2 });
  for (let i = 0; i < 2; i++) await new SharedWorker({ ...base, file: f.path, worker: i }).done();
  // A receipt copied over another worker's: its range is not that worker's.
  const r0 = await plainClient().send(new GetObjectCommand({ Bucket: bucket, Key: receiptKey('gone.bin', 0, 2) }));
  const r1body = await plainClient().send(new GetObjectCommand({ Bucket: bucket, Key: receiptKey('gone.bin', 1, 2) }));
  const saved = await r1body.Body!.transformToString();
  await plainClient().send(new PutObjectCommand({ Bucket: bucket, Key: receiptKey('gone.bin', 1, 2), Body: await r0.Body!.transformToString() }));
  await assert.rejects(finishSharedUpload(base), (e: { code?: string; worker?: number }) => e.code === 'RECEIPT_MISMATCH' && e.worker === 1);
  await plainClient().send(new PutObjectCommand({ Bucket: bucket, Key: receiptKey('gone.bin', 1, 2), Body: saved }));
  // The upload aborted by someone, and an object of the same size put at the key.
  await s3.abortMultipartUpload({ bucket, key: 'gone.bin', uploadId: plan.uploadId }, {});
  await plainClient().send(new PutObjectCommand({ Bucket: bucket, Key: 'gone.bin', Body: randomBytes(f.bytes.length) }));
  await assert.rejects(finishSharedUpload(base), (e: { code?: string }) => e.code === 'UPLOAD_GONE');
});

test('the plan step run again without --checksum finds a CRC64NVME plan; asked for another checksum, it refuses', async () => {
  const { bucket, f, s3 } = await setup(6 * MiB);
  const base = { s3, bucket, key: 'c64.bin', file: f.path, workers: 2 };
  const first = await planSharedUpload({ ...base, checksumAlgorithm: 'CRC64NVME' });
  assert.equal((await planSharedUpload(base)).plan.uploadId, first.plan.uploadId);
  await assert.rejects(planSharedUpload({ ...base, checksumAlgorithm: 'CRC32C' }), (e: { code?: string; message?: string }) => e.code === 'PLAN_MISMATCH' && /checksum is CRC64NVME/.test(e.message ?? ''));
  assert.ok(await abandonSharedUpload(base));
});

test('the file changed while a worker sent its range: the worker fails SOURCE_CHANGED and writes no receipt; finish names it (PARTS_MISSING), completes nothing', async () => {
  const { bucket, f, s3 } = await setup(16 * MiB);
  const base = { s3, bucket, key: 'moving.bin', partSize: 5 * MiB };
  await planSharedUpload({ ...base, file: f.path, workers: 1 });
  const w = new SharedWorker({ ...base, file: f.path, worker: 0, concurrency: 1 });
  let changed = false;
  w.on('part-done', () => {
    if (changed) return;
    changed = true;
    // Rewritten in place, same size, after part 1 was sent: the range would mix two versions.
    const bytes = Buffer.from(f.bytes);
    bytes.fill(7, 0, 1024);
    execFileSync('dd', ['of=' + f.path, 'conv=notrunc', 'status=none'], { input: bytes.subarray(0, 1024) });
  });
  await assert.rejects(w.done(), (e: { code?: string; message?: string }) => e.code === 'SOURCE_CHANGED' && /partwise abort s3:\/\/.*plan again/.test(e.message ?? '') && !/--fresh/.test(e.message ?? ''));
  assert.deepEqual(await keysUnder(bucket, 'moving.bin.partwise/'), [planKey('moving.bin')], 'no receipt');
  await assert.rejects(finishSharedUpload(base), (e: { code?: string; missing?: { workers: number[] } }) => e.code === 'PARTS_MISSING' && e.missing?.workers[0] === 0);
  assert.equal(await openUploads(bucket), 1, 'nothing completed');
  assert.ok(await abandonSharedUpload(base));
});

test('a finish killed while removing the records, run again, proves the object by the finished record and removes the rest; with the records kept, every step run again proves the object and does nothing: plan (no new upload), a worker (no listing, nothing sent), finish (already complete)', async () => {
  const { bucket, f, s3 } = await setup(11 * MiB);
  const base = { s3, bucket, key: 'again.bin', partSize: 5 * MiB };
  await planSharedUpload({ ...base, file: f.path, workers: 2 });
  for (let i = 0; i < 2; i++) await new SharedWorker({ ...base, file: f.path, worker: i }).done();
  // Killed after the first receipt was removed.
  let deletes = 0;
  const dying = wrapPort(s3, {
    deleteObject: async (input, req, signal) => {
      if (deletes++ >= 1) {
        await new Promise((r) => setTimeout(r, 300)); // the first removal lands before the kill
        throw new Error('killed');
      }
      return s3.deleteObject!(input, req, signal);
    },
  });
  await assert.rejects(finishSharedUpload({ ...base, s3: dying, retry: { maxAttempts: 1 } }), /killed/);
  assert.equal((await keysUnder(bucket, 'again.bin.partwise/')).length, 2, 'the plan (finished) and one receipt left');
  const { client, counts } = countingClient();
  const port = new SdkS3Port(client);
  const again = await finishSharedUpload({ ...base, s3: port, keepRecords: true });
  assert.equal(again.alreadyComplete, true);
  assert.equal(again.verification.level, 'full-object-checksum');
  assert.deepEqual(await keysUnder(bucket, 'again.bin.partwise/'), [planKey('again.bin'), receiptKey('again.bin', 1, 2)], 'kept as asked: the finished plan and the receipt the kill left');
  const w = await new SharedWorker({ ...base, s3: port, file: f.path, worker: 1, workers: 2 }).done();
  assert.equal(w.alreadyFinished, true);
  const p = await planSharedUpload({ ...base, s3: port, file: f.path, workers: 2 });
  assert.equal(p.finished, true);
  assert.equal(counts.ListParts ?? 0, 0);
  assert.equal(counts.UploadPart ?? 0, 0);
  assert.equal(counts.CreateMultipartUpload ?? 0, 0);
  assert.equal(counts.CompleteMultipartUpload ?? 0, 0);
  assert.equal(sha256(await getObjectBytes(bucket, 'again.bin')), f.sha256);
  // Without keeping them, the finish run again removes the records, the plan last.
  assert.equal((await finishSharedUpload({ ...base, s3: port })).alreadyComplete, true);
  assert.deepEqual(await keysUnder(bucket, 'again.bin.partwise/'), []);
});

test('two finish steps at once (a requeued finish job): both succeed on proof, one object, the records removed', async () => {
  const { bucket, f, s3 } = await setup(11 * MiB);
  const base = { s3, bucket, key: 'twin.bin', partSize: 5 * MiB };
  await planSharedUpload({ ...base, file: f.path, workers: 2 });
  for (let i = 0; i < 2; i++) await new SharedWorker({ ...base, file: f.path, worker: i }).done();
  const [a, b] = await Promise.all([finishSharedUpload(base), finishSharedUpload(base)]);
  assert.equal(a.checksum, b.checksum);
  assert.equal(a.verification.level, 'full-object-checksum');
  assert.equal(b.verification.level, 'full-object-checksum');
  assert.equal(sha256(await getObjectBytes(bucket, 'twin.bin')), f.sha256);
  assert.deepEqual(await keysUnder(bucket, 'twin.bin.partwise/'), []);
  assert.equal(await openUploads(bucket), 0);
});

test('a finished record whose object was replaced since: finish and workers refuse (PLAN_MISMATCH), never say done; a plan for a new version of the file replaces the record; abort removes a finished record and leaves the object', async () => {
  const { bucket, dir, f, s3 } = await setup(6 * MiB);
  const base = { s3, bucket, key: 'replaced.bin', partSize: 5 * MiB };
  await planSharedUpload({ ...base, file: f.path, workers: 1 });
  await new SharedWorker({ ...base, file: f.path, worker: 0 }).done();
  const first = await finishSharedUpload({ ...base, keepRecords: true });
  await plainClient().send(new PutObjectCommand({ Bucket: bucket, Key: 'replaced.bin', Body: randomBytes(f.bytes.length) }));
  await assert.rejects(finishSharedUpload(base), (e: { code?: string; message?: string }) => e.code === 'PLAN_MISMATCH' && /not the one finished/.test(e.message ?? '') && /partwise abort/.test(e.message ?? ''));
  await assert.rejects(new SharedWorker({ ...base, file: f.path, worker: 0 }).done(), (e: { code?: string }) => e.code === 'PLAN_MISMATCH');
  // The file's next version: the plan step begins anew.
  const next = join(dir, 'next.bin');
  await writeFile(next, randomBytes(7 * MiB));
  const p = await planSharedUpload({ ...base, file: next, workers: 1 });
  assert.equal(p.finished, false);
  assert.equal(p.reused, false);
  assert.notEqual(p.plan.uploadId, first.uploadId);
  await new SharedWorker({ ...base, file: next, worker: 0 }).done();
  await finishSharedUpload({ ...base, keepRecords: true });
  assert.equal(sha256(await getObjectBytes(bucket, 'replaced.bin')), sha256(await readFile(next)));
  const gone = await abandonSharedUpload(base);
  assert.equal(gone?.finished, true);
  assert.deepEqual(await keysUnder(bucket, 'replaced.bin.partwise/'), []);
  assert.equal(sha256(await getObjectBytes(bucket, 'replaced.bin')), sha256(await readFile(next)), 'the object stays');
  // Finished again, then the object replaced: planning the same file is not "already finished".
  await planSharedUpload({ ...base, file: next, workers: 1 });
  await new SharedWorker({ ...base, file: next, worker: 0 }).done();
  await finishSharedUpload({ ...base, keepRecords: true });
  await plainClient().send(new PutObjectCommand({ Bucket: bucket, Key: 'replaced.bin', Body: randomBytes(7 * MiB) }));
  const anew = await planSharedUpload({ ...base, file: next, workers: 1 });
  assert.equal(anew.finished, false, 'the object is not the file any more');
  assert.equal(anew.reused, false);
  assert.equal((await abandonSharedUpload(base))?.finished, false, 'the new upload aborted');
  assert.equal(await openUploads(bucket), 0);
});

test('what a plan or worker must agree on: the plan step refuses another worker count or part size and an upload gone from the server; a worker started as one of another N, or past N, or on the same bytes modified at another time, is refused and sends nothing', async () => {
  const { bucket, f, s3 } = await setup(11 * MiB);
  const { client, counts } = countingClient();
  const base = { s3: new SdkS3Port(client), bucket, key: 'agree.bin', file: f.path };
  const { plan } = await planSharedUpload({ ...base, workers: 2, partSize: 5 * MiB });
  const refused = (re: RegExp) => (e: { code?: string; message?: string }) => e.code === 'PLAN_MISMATCH' && re.test(e.message ?? '');
  await assert.rejects(planSharedUpload({ ...base, workers: 3 }), refused(/it has 2 workers, this run asks 3/));
  await assert.rejects(planSharedUpload({ ...base, workers: 2, partSize: 6 * MiB }), refused(/its part size is 5242880, this run asks 6291456/));
  assert.equal((await planSharedUpload({ ...base, workers: 2 })).plan.uploadId, plan.uploadId, 'no part size asked: the plan\'s stands');
  await assert.rejects(new SharedWorker({ ...base, worker: 0, workers: 3 }).done(), refused(/this worker was started as one of 3.*--worker I\/2/));
  await assert.rejects(new SharedWorker({ ...base, worker: 2 }).done(), refused(/workers 0 to 1, not 2.*sbatch --array=0-1/));
  // The same bytes, touched: the plan named another modification time, and a worker cannot tell the bytes are the same.
  const stamp = `${f.path}.stamp`;
  execFileSync('touch', ['-r', f.path, stamp]); // the planned time, to the nanosecond
  const later = new Date(Date.now() + 60_000);
  await utimes(f.path, later, later);
  await assert.rejects(new SharedWorker({ ...base, worker: 0 }).done(), refused(/not the planned file: it was modified at/));
  assert.equal(counts.UploadPart ?? 0, 0, 'nothing sent');
  assert.equal(counts.ListParts ?? 0, 1, 'only the plan step looked at the upload');
  execFileSync('touch', ['-r', stamp, f.path]);
  await s3.abortMultipartUpload({ bucket, key: 'agree.bin', uploadId: plan.uploadId }, {});
  await assert.rejects(planSharedUpload({ ...base, workers: 2 }), refused(/gone from the server/));
  assert.ok(await abandonSharedUpload(base));
});

test('finish checks each part as the plan says: a part of another size (another writer) is RECEIPT_MISMATCH naming the sizes; a part past the plan\'s count is REMOTE_PARTS_INCONSISTENT; nothing completed', async () => {
  const { bucket, f, s3 } = await setup(11 * MiB);
  const base = { s3, bucket, key: 'sizes.bin', partSize: 5 * MiB };
  const { plan } = await planSharedUpload({ ...base, file: f.path, workers: 1 });
  await new SharedWorker({ ...base, file: f.path, worker: 0 }).done();
  await loadHashers(['CRC32C']);
  const put = async (partNumber: number, bytes: Buffer) => {
    const h = createHasher('CRC32C');
    h.update(bytes);
    await s3.uploadPart({ bucket, key: 'sizes.bin', uploadId: plan.uploadId, partNumber, body: bytes, checksum: { algorithm: 'CRC32C', value: h.digest().toString('base64') } }, {});
  };
  // Part 3 (1 MiB in the plan) replaced by 2 MiB: caught by its size before any checksum.
  await put(3, randomBytes(2 * MiB));
  await assert.rejects(finishSharedUpload(base), (e: { code?: string; message?: string }) => e.code === 'RECEIPT_MISMATCH' && /part 3 on the server has 2097152 bytes, the plan 1048576/.test(e.message ?? ''));
  await put(4, randomBytes(1000));
  await assert.rejects(finishSharedUpload(base), (e: { code?: string; message?: string }) => e.code === 'REMOTE_PARTS_INCONSISTENT' && /parts 4 .*beyond the plan's 3/.test(e.message ?? '') && /partwise abort s3:\/\/.*plan again/.test(e.message ?? '') && !/--fresh/.test(e.message ?? ''));
  assert.equal(await openUploads(bucket), 1, 'nothing completed');
  assert.ok(await abandonSharedUpload(base));
});

test('the whole pipeline run again after a finish removed its records (a rerun script, a requeued array): plan proves the object from the file and writes a finished record instead of a new upload; the workers then prove it and send nothing; finish proves it and removes the record. A changed file is planned anew', async () => {
  const { bucket, f, s3, counts } = await setup();
  const base = { s3, bucket, key: 'rerun.dump', partSize: 5 * MiB };
  await planSharedUpload({ ...base, file: f.path, workers: 2 });
  for (let i = 0; i < 2; i++) await new SharedWorker({ ...base, file: f.path, worker: i, workers: 2 }).done();
  await finishSharedUpload(base);
  assert.deepEqual(await keysUnder(bucket, 'rerun.dump.partwise/'), [], 'records removed after success');
  const creates = counts.CreateMultipartUpload!;
  const parts = counts.UploadPart;

  const again = await planSharedUpload({ ...base, file: f.path, workers: 2 });
  assert.equal(again.finished, true, 'the object at the key is proven this file');
  assert.equal(counts.CreateMultipartUpload, creates, 'no new upload');
  assert.equal(await openUploads(bucket), 0);
  for (let i = 0; i < 2; i++) {
    const w = await new SharedWorker({ ...base, file: f.path, worker: i, workers: 2 }).done();
    assert.equal(w.bytesSent, 0);
  }
  const fin = await finishSharedUpload(base);
  assert.equal(fin.alreadyComplete, true);
  assert.equal(fin.verification.level, 'full-object-checksum');
  assert.equal(counts.UploadPart, parts, 'nothing sent again');
  assert.deepEqual(await keysUnder(bucket, 'rerun.dump.partwise/'), [], 'the finished record removed again');

  // Another version of the file (same size, other bytes): not proven, so a new plan and upload.
  await writeFile(f.path, randomBytes(f.bytes.length));
  const next = await planSharedUpload({ ...base, file: f.path, workers: 2 });
  assert.equal(next.finished, false);
  assert.equal(counts.CreateMultipartUpload, creates + 1);
  await abandonSharedUpload(base);
});
