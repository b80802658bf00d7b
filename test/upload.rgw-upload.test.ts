import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { ListPartsCommand } from '@aws-sdk/client-s3';
import { AwsCrc32c } from '@aws-crypto/crc32c';
import pLimit from 'p-limit';
import { MiB, PausedError, S3RequestError, Upload, createUpload, type PartwiseError, type ProgressSnapshot } from '../src/index.ts';
import { SdkS3Port, createS3Client } from '../src/s3/adapter.ts';
import { readJournal } from '../src/local/journal.ts';
import { ARENA_BYTES } from '../src/local/file-source.ts';
import { Throttle } from '../src/core/throttle.ts';
import type { PartBody } from '../src/s3/port.ts';
import { uploadThenPause } from './helpers/pause.ts';
import { concurrencyProbe, slowParts, wrapPort } from './helpers/ports.ts';
import { countingClient, getObjectBytes, loadS3Env, makeBucket, plainClient, randomFile, sha256, tempDir } from './helpers/s3.ts';

describe('uploads against the local RADOS Gateway', () => {
  let bucket: string;
  before(async () => {
    loadS3Env();
    bucket = await makeBucket('pw-upload');
  });

  test('parts above streamPartsAbove are streamed from the file (hashed first, then sent): RGW checks them and the object is identical', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 12 * MiB + 99);
    const { client, counts } = countingClient();
    const sent: number[] = [];
    const up = createUpload({ client, file: f.path, bucket, key: 'stream/file.bin', partSize: 5 * MiB, stateDir: dir, streamPartsAbove: 1 * MiB });
    up.on('part-sent', (e) => sent.push(e.bytes));
    const r = await up.done();
    assert.equal(sha256(await getObjectBytes(bucket, 'stream/file.bin')), f.sha256);
    assert.equal(counts.UploadPart, 3);
    assert.equal(r.verification.level, 'full-object-checksum');
    assert.ok(Math.max(...sent) <= 1 * MiB, 'sent in slices of at most 1 MiB');
    assert.equal(sent.reduce((a, b) => a + b, 0), f.bytes.length);
  });

  /** Wraps a part body so the test sees every slice the adapter reads from it (and may fail a request midway). */
  function watchedBody(body: PartBody, seen: (slice: Buffer) => void): PartBody {
    if (Buffer.isBuffer(body)) return body;
    return {
      length: body.length,
      async *chunks() {
        for await (const c of body.chunks()) {
          seen(c);
          yield c;
        }
      },
    };
  }

  test('parts are not held: by default every part streams from the file through one 1 MiB arena per request in flight, arenas are recycled, and the object is identical', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 6 * 5 * MiB + 2 * MiB + 13);
    const inner = new SdkS3Port(createS3Client());
    const arenas = new Set<ArrayBufferLike>();
    let held = 0;
    let largest = 0;
    const s3 = wrapPort(inner, {
      uploadPart: (input, req, signal) => {
        if (Buffer.isBuffer(input.body)) held++;
        const mine = new Set<ArrayBufferLike>();
        const body = watchedBody(input.body, (c) => {
          mine.add(c.buffer);
          arenas.add(c.buffer);
          largest = Math.max(largest, c.length);
          assert.equal(c.buffer.byteLength, ARENA_BYTES, 'a slice of an arena, not a fresh buffer');
        });
        return inner.uploadPart({ ...input, body }, req, signal).finally(() => assert.equal(mine.size, 1, 'one arena per request'));
      },
    });
    const r = await new Upload({ s3, file: f.path, bucket, key: 'stream/arena.bin', partSize: 5 * MiB, stateDir: dir, concurrency: 2 }).done();
    assert.equal(held, 0, 'no part held in memory');
    assert.equal(r.partsUploaded, 7);
    assert.ok(arenas.size <= 3, `arenas are taken from the pool again: ${arenas.size} for 7 parts at concurrency 2`);
    assert.equal(largest, ARENA_BYTES / 4, 'slices of a quarter arena');
    assert.equal(sha256(await getObjectBytes(bucket, 'stream/arena.bin')), f.sha256);
  });

  test('a retried part reads into a fresh arena (a failed request may still be reading into its own), and the object is identical', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 3 * 5 * MiB + 7);
    const inner = new SdkS3Port(createS3Client());
    const byAttempt: Set<ArrayBufferLike>[] = [];
    const s3 = wrapPort(inner, {
      uploadPart: async (input, req, signal) => {
        if (input.partNumber !== 2) return inner.uploadPart(input, req, signal);
        const mine = new Set<ArrayBufferLike>();
        byAttempt.push(mine);
        if (byAttempt.length === 1) {
          // The first request reads two slices and its connection dies.
          const it = (input.body as Exclude<PartBody, Buffer>).chunks()[Symbol.asyncIterator]();
          for (let i = 0; i < 2; i++) mine.add((await it.next()).value.buffer);
          throw new S3RequestError({ operation: 'UploadPart', s3Code: 'ECONNRESET' });
        }
        return inner.uploadPart({ ...input, body: watchedBody(input.body, (c) => mine.add(c.buffer)) }, req, signal);
      },
    });
    const r = await new Upload({ s3, file: f.path, bucket, key: 'stream/retry-arena.bin', partSize: 5 * MiB, stateDir: dir, concurrency: 1, retry: { baseDelayMs: 1, maxDelayMs: 2 } }).done();
    assert.equal(byAttempt.length, 2, 'part 2 sent twice');
    const [first, second] = byAttempt.map((s) => [...s]);
    assert.equal(second!.length, 1);
    assert.ok(!first!.includes(second![0]!), 'the retry did not read into the failed request\'s arena');
    assert.equal(r.partsUploaded, 4);
    assert.equal(sha256(await getObjectBytes(bucket, 'stream/retry-arena.bin')), f.sha256);
  });

  test('the file rewritten between the hash pass and the send pass: RGW refuses the part (its checksum was taken first), nothing of it is stored, and the run stops SOURCE_CHANGED', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 3 * 5 * MiB + 7);
    const inner = new SdkS3Port(createS3Client());
    const answers: string[] = [];
    let uploadId = '';
    const s3 = wrapPort(inner, {
      uploadPart: async (input, req, signal) => {
        uploadId = input.uploadId;
        if (input.partNumber === 2 && answers.length === 0) {
          // Hashed already; the bytes change in place (same size) before they are streamed.
          const fh = await open(f.path, 'r+');
          await fh.write(randomBytes(5 * MiB), 0, 5 * MiB, 5 * MiB);
          await fh.close();
        }
        try {
          const out = await inner.uploadPart(input, req, signal);
          if (input.partNumber === 2) answers.push('stored');
          return out;
        } catch (err) {
          if (input.partNumber === 2) answers.push((err as PartwiseError).message);
          throw err;
        }
      },
    });
    await assert.rejects(
      new Upload({ s3, file: f.path, bucket, key: 'stream/changed.bin', partSize: 5 * MiB, stateDir: dir, concurrency: 1, retry: { baseDelayMs: 1, maxDelayMs: 2 } }).done(),
      (e: PartwiseError) => e.code === 'SOURCE_CHANGED',
    );
    assert.equal(answers.length, 1, `one request for part 2, refused: ${answers.join('; ')}`);
    assert.notEqual(answers[0], 'stored');
    const listed = await plainClient().send(new ListPartsCommand({ Bucket: bucket, Key: 'stream/changed.bin', UploadId: uploadId }));
    assert.deepEqual((listed.Parts ?? []).map((p) => p.PartNumber), [1], 'part 2 is not on the server');
  });

  test('the level of parts in flight is told: searched by default (from 8), fixed by concurrency, and in every progress snapshot', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 2 * 5 * MiB + 3);
    for (const concurrency of [undefined, 3]) {
      // A clock that runs 100 ms per reading: the search judges windows within this small upload.
      let clock = 0;
      const up = createUpload({ file: f.path, bucket, key: `level/${concurrency ?? 'auto'}`, partSize: 5 * MiB, stateDir: dir, now: () => (clock += 100), ...(concurrency ? { concurrency } : {}) });
      const told: { concurrency: number; reason: string; searching: boolean }[] = [];
      const snaps: number[] = [];
      up.on('concurrency', (e) => told.push({ concurrency: e.concurrency, reason: e.reason, searching: e.searching }));
      up.on('progress', (p) => p.phase === 'upload' && snaps.push(p.concurrency));
      await up.done();
      assert.deepEqual(told[0], concurrency ? { concurrency: 3, reason: 'start', searching: false } : { concurrency: 8, reason: 'start', searching: true });
      // Fed by the bytes parts send: the first judged window is a gain over nothing.
      if (!concurrency) assert.deepEqual(told[1], { concurrency: 16, reason: 'rate-rising', searching: true });
      else assert.equal(told.length, 1, 'a fixed level does not move without a SlowDown');
      assert.ok(snaps.length > 0 && snaps.at(-1) === told.at(-1)!.concurrency, `snapshots carry the level: ${snaps.join(',')}`);
    }
    // A limiter shared by many uploads: each stops following its level when it ends.
    const limiter = pLimit(2);
    for (const n of [1, 2]) await createUpload({ file: f.path, bucket, key: `level/shared-${n}`, partSize: 5 * MiB, stateDir: dir, limiter }).done();
    assert.equal(Throttle.for(limiter).followers, 0);
  });

  test('the checksum probe: other parts wait for its answer (and skip MD5) on a fast pipe, but not while it crawls over a slow one: they go with MD5 instead of idling', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 6 * 5 * MiB + 3);
    for (const slow of [false, true]) {
      const inner = new SdkS3Port(createS3Client());
      const started = new Map<number, number>();
      const md5 = new Map<number, boolean>();
      const t0 = Date.now();
      const s3 = wrapPort(inner, {
        uploadPart: async (input, req, signal) => {
          started.set(input.partNumber, Date.now() - t0);
          md5.set(input.partNumber, input.contentMd5 !== undefined);
          if (!(slow && input.partNumber === 1)) return inner.uploadPart(input, req, signal);
          // A probe on a slow pipe: its slices go out at ~4 MB/s.
          const body = input.body as Exclude<PartBody, Buffer>;
          const slowBody: PartBody = {
            length: body.length,
            async *chunks() {
              for await (const c of body.chunks()) {
                await new Promise((r) => setTimeout(r, 60));
                yield c;
              }
            },
          };
          return inner.uploadPart({ ...input, body: slowBody }, req, signal);
        },
      });
      await new Upload({ s3, file: f.path, bucket, key: `probe/${slow}`, partSize: 5 * MiB, stateDir: dir, concurrency: 4 }).done();
      if (!slow) {
        // Under a bandwidth cap the probe is as slow as the cap, not the pipe: the others still wait (no MD5).
        md5.clear();
        await new Upload({ s3, file: f.path, bucket, key: 'probe/capped', partSize: 5 * MiB, stateDir: dir, concurrency: 4, maxBytesPerSecond: 10 * MiB }).done();
        assert.deepEqual([2, 3, 4].map((n) => md5.get(n)), [false, false, false], 'capped: the others waited for the probe');
      }
      assert.equal(md5.get(1), true, 'the probe carries Content-MD5');
      if (!slow) assert.deepEqual([2, 3, 4].map((n) => md5.get(n)), [false, false, false], 'a quick probe: the others waited, no MD5');
      else {
        assert.ok(started.get(2)! - started.get(1)! < 1000, `part 2 went ${started.get(2)! - started.get(1)!} ms after the probe, not after its answer`);
        assert.deepEqual([2, 3, 4].map((n) => md5.get(n)), [true, true, true], 'without the answer, MD5 is the evidence');
      }
    }
  });

  test('streamed parts hashed by WASM (CRC64NVME) at concurrency 8: a hasher held across reads is taken on demand, not from a fixed four', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 8 * 5 * MiB + 5);
    const up = createUpload({ file: f.path, bucket, key: 'stream/crc64.bin', partSize: 5 * MiB, stateDir: dir, streamPartsAbove: 1 * MiB, concurrency: 8, checksumAlgorithm: 'CRC64NVME' });
    const r = await up.done();
    assert.equal(r.partsUploaded, 9);
    assert.equal(r.verification.level, 'full-object-checksum');
    assert.equal(sha256(await getObjectBytes(bucket, 'stream/crc64.bin')), f.sha256);
  });

  test('cheapest sufficient evidence: once RGW echoes part checksums, MD5 is not computed (no Content-MD5), and a resume verifies by checksum alone; with --checksum none MD5 stays', async () => {
    for (const alg of ['CRC32C', 'none'] as const) {
      const dir = await tempDir();
      const f = await randomFile(dir, 4 * 5 * MiB + 77);
      const key = `evidence/${alg}`;
      const inner = new SdkS3Port(createS3Client());
      const md5Sent: boolean[] = [];
      const s3 = wrapPort(inner, {
        uploadPart: (input, req, signal) => {
          md5Sent.push(input.contentMd5 !== undefined);
          return inner.uploadPart(input, req, signal);
        },
      });
      const base = { s3, file: f.path, bucket, key, partSize: 5 * MiB, stateDir: dir, concurrency: 1, checksumAlgorithm: alg };
      await uploadThenPause(base, 3);
      if (alg === 'CRC32C') assert.deepEqual(md5Sent, [true, false, false], 'the first part learns that the server checks checksums');
      else assert.deepEqual(md5Sent, [true, true, true]);
      const up = new Upload(base);
      let report: { hashing?: { md5: boolean }; verified: number[]; parts: { basis: string[] }[] } | undefined;
      up.on('reconcile', (r) => (report = r));
      const r = await up.done();
      assert.deepEqual(report!.verified, [1, 2, 3]);
      assert.equal(report!.hashing!.md5, alg === 'none', alg === 'none' ? 'MD5 is the only evidence' : 'checksums alone');
      assert.deepEqual(report!.parts[1]!.basis, alg === 'none' ? ['etag'] : ['checksum']);
      assert.equal(r.verification.level, alg === 'none' ? 'multipart-etag' : 'full-object-checksum');
      assert.equal(sha256(await getObjectBytes(bucket, key)), f.sha256);
    }
  });

  test('a failure forgetting the intent after Create is the upload\'s: plan named it, the error is resumable with its id, and the rerun resumes it', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 2 * 5 * MiB + 3);
    const key = 'intent/remove-fails';
    const inner = new SdkS3Port(createS3Client());
    let created = '';
    const s3 = wrapPort(inner, {
      createMultipartUpload: async (input, req, signal) => {
        const out = await inner.createMultipartUpload(input, req, signal);
        created = out.uploadId;
        // The intent written before Create becomes a folder with something in it: removing it fails.
        const intent = (await readdir(dir)).find((n) => n.endsWith('.intent'))!;
        await rm(join(dir, intent));
        await mkdir(join(dir, intent, 'x'), { recursive: true });
        return out;
      },
    });
    const base = { s3, file: f.path, bucket, key, partSize: 5 * MiB, stateDir: dir };
    const up = new Upload(base);
    const planned: string[] = [];
    up.on('plan', (e) => planned.push(e.uploadId));
    up.on('error', () => {});
    const err = await up.done().then(
      () => assert.fail('removing the intent failed, yet the upload succeeded'),
      (e: PartwiseError) => e,
    );
    assert.ok(created, 'Create ran');
    assert.deepEqual(planned, [created], 'plan named the upload before the intent was forgotten');
    assert.equal(err.code, 'UNEXPECTED');
    assert.equal(err.resumable, true, err.message);
    assert.equal(err.context.uploadId, created);
    assert.match(err.message, /journal is kept/);
    const journal = (await readdir(dir)).find((n) => n.endsWith('.json'))!;
    assert.equal((await readJournal(join(dir, journal)))?.uploadId, created, 'the journal names the upload');
    await rm(join(dir, (await readdir(dir)).find((n) => n.endsWith('.intent'))!), { recursive: true });
    const r = await new Upload({ ...base, s3: inner }).done();
    assert.equal(r.uploadId, created, 'the rerun resumed the same upload');
    assert.equal(sha256(await getObjectBytes(bucket, key)), f.sha256);
  });

  test('cheapest evidence at concurrency: the other parts wait for the first part\'s answer, so only part 1 carries Content-MD5', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 6 * 5 * MiB);
    const inner = new SdkS3Port(createS3Client());
    const md5Sent = new Map<number, boolean>();
    const s3 = wrapPort(inner, {
      uploadPart: (input, req, signal) => {
        md5Sent.set(input.partNumber, input.contentMd5 !== undefined);
        return inner.uploadPart(input, req, signal);
      },
    });
    const r = await new Upload({ s3, file: f.path, bucket, key: 'evidence/concurrent', partSize: 5 * MiB, stateDir: dir, concurrency: 6 }).done();
    assert.equal(r.partCount, 6);
    assert.deepEqual([...md5Sent].sort((a, b) => a[0] - b[0]).map(([, m]) => m), [true, false, false, false, false, false]);
    assert.equal(sha256(await getObjectBytes(bucket, 'evidence/concurrent')), f.sha256);
  });

  test('a fresh upload of several parts: byte-identical object, exact request counts, full-object checksum verified', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 17 * MiB + 4321);
    const { client, counts, partNumbers } = countingClient();
    const up = createUpload({ client, file: f.path, bucket, key: 'fresh/file.bin', partSize: 5 * MiB, stateDir: dir, concurrency: 3 });
    const snaps: ProgressSnapshot[] = [];
    let completes = 0;
    const done: number[] = [];
    up.on('progress', (s) => snaps.push(s));
    up.on('complete', () => completes++);
    up.on('part-done', (e) => done.push(e.partNumber));
    const r = await up.done();

    assert.equal(sha256(await getObjectBytes(bucket, 'fresh/file.bin')), f.sha256, 'object bytes equal the file');
    assert.deepEqual(counts, { CreateMultipartUpload: 1, UploadPart: 4, CompleteMultipartUpload: 1, HeadObject: 1 });
    assert.deepEqual([...partNumbers].sort((a, b) => a - b), [1, 2, 3, 4]);
    assert.deepEqual(done.sort((a, b) => a - b), [1, 2, 3, 4]);
    assert.equal(r.partsUploaded, 4);
    assert.equal(r.partsSkipped, 0);
    assert.equal(r.bytesSent, f.bytes.length);
    assert.equal(r.size, f.bytes.length);
    assert.match(r.etag, /^[0-9a-f]{32}-4$/);
    // The default algorithm is CRC32C; the server's value must equal an independent CRC of the file.
    const ref = new AwsCrc32c();
    ref.update(f.bytes);
    assert.equal(r.checksumAlgorithm, 'CRC32C');
    assert.equal(r.checksum, Buffer.from(await ref.digest()).toString('base64'));
    assert.equal(r.verification.level, 'full-object-checksum');
    assert.equal(completes, 1, 'complete fires exactly once');
    assert.ok(snaps.length > 0);
    for (const s of snaps) assert.ok(s.fractionDone <= 1 && s.bytesSent <= s.totalBytes, 'never above 100%');
    assert.equal(snaps.at(-1)!.fractionDone, 1);
    assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.json')), [], 'journal removed after success');
  });

  test('a 0-byte file becomes a 0-byte object', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 0);
    const r = await createUpload({ client: plainClient(), file: f.path, bucket, key: 'empty', stateDir: dir }).done();
    assert.equal(r.size, 0);
    assert.equal(r.partCount, 1);
    assert.equal((await getObjectBytes(bucket, 'empty')).length, 0);
  });

  test('checksums off: verified by Content-MD5 and the multipart ETag', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 11 * MiB);
    const r = await createUpload({ client: plainClient(), file: f.path, bucket, key: 'md5-only', partSize: 5 * MiB, stateDir: dir, checksumAlgorithm: 'none' }).done();
    assert.equal(r.verification.level, 'multipart-etag');
    assert.equal(r.checksumAlgorithm, null);
    assert.equal(sha256(await getObjectBytes(bucket, 'md5-only')), f.sha256);
  });

  test('one shared limiter bounds the parts in flight across several uploads', async () => {
    const dir = await tempDir();
    const a = await randomFile(dir, 12 * MiB, 'a.bin');
    const b = await randomFile(dir, 12 * MiB, 'b.bin');
    const probe = concurrencyProbe(new SdkS3Port(createS3Client()));
    const limiter = pLimit(2);
    const common = { s3: probe.port, bucket, partSize: 5 * MiB, minPartSize: 5 * MiB, stateDir: dir, limiter, concurrency: 16 };
    const [ra, rb] = await Promise.all([new Upload({ ...common, file: a.path, key: 'shared/a' }).done(), new Upload({ ...common, file: b.path, key: 'shared/b' }).done()]);
    assert.equal(probe.max(), 2, 'at most 2 parts in flight across both uploads');
    assert.equal(ra.partsUploaded + rb.partsUploaded, 6);
    assert.equal(sha256(await getObjectBytes(bucket, 'shared/a')), a.sha256);
    assert.equal(sha256(await getObjectBytes(bucket, 'shared/b')), b.sha256);
  });

  test('pause with an AbortSignal leaves a resumable upload; the resume sends only the rest', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 26 * MiB);
    const ac = new AbortController();
    const first = new Upload({ s3: slowParts(new SdkS3Port(createS3Client()), 50), file: f.path, bucket, key: 'paused', partSize: 5 * MiB, stateDir: dir, concurrency: 1, signal: ac.signal });
    const firstDone: number[] = [];
    first.on('part-done', (e) => {
      firstDone.push(e.partNumber);
      if (firstDone.length === 2) ac.abort();
    });
    await assert.rejects(first.done(), (e: unknown) => e instanceof PausedError && e.code === 'PAUSED' && e.resumable);
    assert.deepEqual(firstDone, [1, 2]);
    const journalFile = (await readdir(dir)).find((n) => n.endsWith('.json'))!;
    // The journal as partwise reads it back: the file, plus its append-only part log.
    const journal = (await readJournal(`${dir}/${journalFile}`))!;
    const onDisk = (await readFile(`${dir}/${journalFile}`, 'utf8')) + (await readFile(`${dir}/${journalFile}.log`, 'utf8'));
    assert.deepEqual(journal.parts.map((p: { partNumber: number }) => p.partNumber), [1, 2], 'journal holds the finished parts');
    assert.equal(onDisk.includes(process.env.AWS_SECRET_ACCESS_KEY!), false, 'no secret in the journal');

    const { client, counts, partNumbers } = countingClient();
    const second = createUpload({ client, file: f.path, bucket, key: 'paused', stateDir: dir });
    const skipped: number[] = [];
    second.on('part-skip', (e) => skipped.push(e.partNumber));
    const r = await second.done();
    assert.deepEqual(skipped, [1, 2]);
    assert.deepEqual([...partNumbers].sort((a, b) => a - b), [3, 4, 5, 6]);
    assert.equal(counts.CreateMultipartUpload, undefined, 'no new upload was created');
    assert.equal(counts.ListParts, 1);
    assert.equal(r.resumed, true);
    assert.equal(r.partsSkipped, 2);
    assert.equal(r.uploadId, journal.uploadId);
    assert.equal(sha256(await getObjectBytes(bucket, 'paused')), f.sha256);
  });

  test('an explicit abort calls AbortMultipartUpload and deletes the journal', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 11 * MiB);
    await uploadThenPause({ file: f.path, bucket, key: 'to-abort', partSize: 5 * MiB, stateDir: dir }, 1);
    const { client, counts } = countingClient();
    const uploadId = await createUpload({ client, file: f.path, bucket, key: 'to-abort', stateDir: dir }).abort();
    assert.ok(uploadId);
    assert.equal(counts.AbortMultipartUpload, 1);
    assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.json')), []);
    // RGW says NoSuchKey (AWS: NoSuchUpload) for an upload it no longer has.
    await assert.rejects(plainClient().send(new ListPartsCommand({ Bucket: bucket, Key: 'to-abort', UploadId: uploadId })), (e: Error) => ['NoSuchKey', 'NoSuchUpload'].includes(e.name));
  });
});
