/**
 * The engine against the S3 emulator: what Amazon S3 does that the local RADOS Gateway cannot show
 * (COMPOSITE CRCs, opaque ETags under SSE, NoSuchUpload, a repeated Complete) and every scripted
 * fault. Each ends in a byte-identical object or a clear typed error, never a corrupt object.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { PartFailedError, PausedError, S3RequestError, SourceChangedError, Upload, UploadGoneError, type EngineOptions, type ReconcileReport } from '../src/index.ts';
import { SdkS3Port, createS3Client } from '../src/s3/adapter.ts';
import { readJournal } from '../src/local/journal.ts';
import { emulatorClient } from './emulator/client.ts';
import { S3Emulator } from './emulator/server.ts';
import { wrapPort } from './helpers/ports.ts';
import { tempDir } from './helpers/s3.ts';

const KiB = 1024;
const partSize = 8 * KiB;
const credentials = { accessKeyId: 'emulator', secretAccessKey: 'emulator-secret' };
const fast = { baseDelayMs: 1, maxDelayMs: 5, throttleBaseDelayMs: 2 };

describe('engine against the S3 emulator', () => {
  let emu: S3Emulator;
  let minio: S3Emulator; // NoSuchUpload on a repeated Complete, as MinIO and mocks answer
  const Bucket = 'eng';

  before(async () => {
    emu = await S3Emulator.start({ minPartSize: partSize });
    minio = await S3Emulator.start({ minPartSize: partSize, repeatCompleteSucceeds: false });
    for (const e of [emu, minio]) await emulatorClient(e.endpoint).send(new CreateBucketCommand({ Bucket }));
  });
  after(async () => {
    await emu.close();
    await minio.close();
  });

  async function file(size = 4 * partSize + 123) {
    const dir = await tempDir();
    const bytes = randomBytes(size);
    const path = join(dir, 'f.bin');
    await writeFile(path, bytes);
    return { dir, path, bytes, sha: createHash('sha256').update(bytes).digest('hex') };
  }

  function upload(e: S3Emulator, f: { dir: string; path: string }, key: string, extra: Partial<EngineOptions> = {}, timeoutMs?: number) {
    const s3 = new SdkS3Port(createS3Client({ endpoint: e.endpoint, region: 'us-east-1', credentials, ...(timeoutMs ? { requestTimeoutMs: timeoutMs } : {}) }));
    return new Upload({ s3, file: f.path, bucket: Bucket, key, partSize, minPartSize: 1, stateDir: f.dir, retry: fast, random: () => 0.5, ...extra });
  }

  async function objectSha(e: S3Emulator, key: string, sseKey?: Buffer): Promise<string> {
    const out = await emulatorClient(e.endpoint).send(
      new GetObjectCommand({ Bucket, Key: key, ...(sseKey ? { SSECustomerAlgorithm: 'AES256', SSECustomerKey: sseKey.toString('base64') } : {}) }),
    );
    return createHash('sha256').update(await out.Body!.transformToByteArray()).digest('hex');
  }

  const rows = [
    { alg: 'CRC32C', type: 'COMPOSITE', level: 'composite-checksum' },
    { alg: 'CRC32C', type: 'FULL_OBJECT', level: 'full-object-checksum' },
    { alg: 'CRC32', type: 'COMPOSITE', level: 'composite-checksum' },
    { alg: 'CRC32', type: 'FULL_OBJECT', level: 'full-object-checksum' },
    { alg: 'CRC64NVME', type: 'FULL_OBJECT', level: 'full-object-checksum' },
    { alg: 'SHA1', type: 'COMPOSITE', level: 'composite-checksum' },
    { alg: 'SHA256', type: 'COMPOSITE', level: 'composite-checksum' },
  ] as const;
  for (const r of rows) {
    test(`${r.alg} ${r.type}: precomputed part checksums as headers, Complete carries them, object verified (${r.level})`, async () => {
      const f = await file();
      const key = `alg/${r.alg}-${r.type}`;
      const from = emu.log.length;
      const res = await upload(emu, f, key, { checksumAlgorithm: r.alg, checksumType: r.type }).done();
      assert.equal(res.verification.level, r.level);
      assert.equal(await objectSha(emu, key), f.sha);
      const parts = emu.log.slice(from).filter((l) => l.op === 'UploadPart');
      assert.equal(parts.length, 5);
      for (const p of parts) {
        assert.deepEqual(p.checksumHeaders, [`x-amz-checksum-${r.alg.toLowerCase()}`], 'exactly one checksum header, the upload algorithm');
        assert.equal(p.chunked, false, 'no aws-chunked trailer');
      }
    });
  }

  test('resume finds a part whose stored bytes rotted, by checksum, and re-uploads it alone', async () => {
    const f = await file();
    const ac = new AbortController();
    const first = upload(emu, f, 'rot/resume', { signal: ac.signal, concurrency: 1, checksumAlgorithm: 'CRC32C', checksumType: 'COMPOSITE' });
    let uploadId = '';
    let n = 0;
    first.on('plan', (e) => (uploadId = e.uploadId));
    first.on('part-done', () => ++n === 5 && ac.abort());
    await assert.rejects(first.done(), PausedError);
    await emu.rotPart(uploadId, 2);
    const from = emu.count('UploadPart');
    const from2 = emu.count('UploadPart', 2);
    const second = upload(emu, f, 'rot/resume');
    let report: ReconcileReport | undefined;
    second.on('reconcile', (r) => (report = r));
    await second.done();
    assert.deepEqual(report!.parts.map((p) => p.status), ['verified', 'checksum-mismatch', 'verified', 'verified', 'verified']);
    assert.equal(emu.count('UploadPart') - from, 1);
    assert.equal(emu.count('UploadPart', 2) - from2, 1);
    assert.equal(await objectSha(emu, 'rot/resume'), f.sha);
  });

  test('a part stored wrong at upload (its ETag is the MD5 of other bytes) is sent again: at once where MD5 is the evidence, by the repair pass where the checksum is', async () => {
    for (const alg of ['CRC32C', 'none'] as const) {
      const f = await file();
      const key = `rot/at-upload-${alg}`;
      emu.faults.push({ op: 'UploadPart', partNumber: 3, action: { type: 'bit-rot' } });
      const up = upload(emu, f, key, { checksumAlgorithm: alg });
      const warnings: string[] = [];
      up.on('warning', (w) => warnings.push(w.code));
      const before3 = emu.count('UploadPart', 3);
      const res = await up.done();
      // With a checksum, part 3 goes without MD5 (the server echoed part 1's checksum): its echo is
      // right (the bytes arrived whole) and the rot is caught at Complete, which one repair pass fixes.
      assert.deepEqual(warnings, alg === 'none' ? [] : ['REPAIR'], 'no downgrade of ETag trust');
      assert.equal(emu.count('UploadPart', 3) - before3, 2, 'part 3 sent twice');
      assert.equal(res.retries, alg === 'none' ? 1 : 0);
      assert.equal(res.verification.level, alg === 'none' ? 'multipart-etag' : 'full-object-checksum');
      assert.equal(await objectSha(emu, key), f.sha);
    }
  });

  for (const [alg, type, code] of [['CRC32C', 'FULL_OBJECT', 'BadDigest'], ['SHA256', 'COMPOSITE', 'InvalidPart']] as const) {
    test(`a part that rots after it was acknowledged (${alg} ${type}): Complete says ${code}, one repair pass resends it`, async () => {
      const f = await file();
      const key = `rot/after-ack-${alg}`;
      const inner = new SdkS3Port(createS3Client({ endpoint: emu.endpoint, region: 'us-east-1', credentials }));
      let rotted = false;
      const s3 = wrapPort(inner, {
        uploadPart: async (input, req, signal) => {
          const out = await inner.uploadPart(input, req, signal);
          if (input.partNumber === 3 && !rotted) {
            rotted = true;
            await emu.rotPart(input.uploadId, 3);
          }
          return out;
        },
      });
      const up = new Upload({ s3, file: f.path, bucket: Bucket, key, partSize, minPartSize: 1, stateDir: f.dir, retry: fast, checksumAlgorithm: alg, checksumType: type });
      const warnings: string[] = [];
      up.on('warning', (w) => warnings.push(w.code));
      const before3 = emu.count('UploadPart', 3);
      const res = await up.done();
      assert.deepEqual(warnings, ['REPAIR']);
      assert.equal(emu.count('UploadPart', 3) - before3, 2, 'part 3 sent twice');
      assert.equal(res.partsUploaded, 6);
      assert.equal(await objectSha(emu, key), f.sha);
    });
  }

  test('SSE-C: ETags are not MD5s, so resume and the object are verified by checksum; the key never reaches the journal', async () => {
    const f = await file();
    const sseKey = randomBytes(32);
    const ac = new AbortController();
    const first = upload(emu, f, 'sse/c', { signal: ac.signal, concurrency: 1, sseCustomerKey: sseKey });
    let n = 0;
    first.on('part-done', () => ++n === 2 && ac.abort());
    await assert.rejects(first.done(), PausedError);
    const journalText = (await readdir(f.dir)).filter((x) => x.endsWith('.json'));
    const read = (name: string) => import('node:fs/promises').then((m) => m.readFile(join(f.dir, name), 'utf8').catch(() => ''));
    const text = (await read(journalText[0]!)) + (await read(`${journalText[0]!}.log`));
    assert.equal(text.includes(sseKey.toString('base64')), false);
    assert.equal(text.includes(sseKey.toString('hex')), false);
    assert.equal((await readJournal(join(f.dir, journalText[0]!)))!.etagIsMd5, false);

    const second = upload(emu, f, 'sse/c', { sseCustomerKey: sseKey });
    let report: ReconcileReport | undefined;
    second.on('reconcile', (r) => (report = r));
    const res = await second.done();
    assert.deepEqual(report!.parts.slice(0, 2).map((p) => p.basis), [['checksum'], ['checksum']]);
    assert.equal(res.verification.level, 'full-object-checksum');
    assert.equal(await objectSha(emu, 'sse/c', sseKey), f.sha);
    // a resume with another key is refused
    const other = await file();
    const ac2 = new AbortController();
    const third = upload(emu, other, 'sse/c2', { signal: ac2.signal, concurrency: 1, sseCustomerKey: sseKey });
    third.on('part-done', () => ac2.abort());
    await assert.rejects(third.done(), PausedError);
    await assert.rejects(upload(emu, other, 'sse/c2', { sseCustomerKey: randomBytes(32) }).done(), (e: Error & { code?: string }) => e.code === 'JOURNAL_MISMATCH');
  });

  test('SSE-KMS: an opaque object ETag is not compared; the checksum is the verdict', async () => {
    const f = await file();
    const res = await upload(emu, f, 'sse/kms', { serverSideEncryption: 'aws:kms' }).done();
    assert.equal(res.verification.level, 'full-object-checksum');
    assert.ok(!res.verification.checks.some((c) => c.startsWith('ETag')));
    assert.equal(await objectSha(emu, 'sse/kms'), f.sha);
  });

  test('500, 503 SlowDown and RequestTimeout are retried; SlowDown lowers the concurrency', async () => {
    const f = await file(8 * partSize);
    emu.faults.push({ op: 'UploadPart', nth: 2, action: { type: 'error', status: 500, code: 'InternalError' } });
    emu.faults.push({ op: 'UploadPart', nth: 3, times: 3, action: { type: 'error', status: 503, code: 'SlowDown' } });
    emu.faults.push({ op: 'UploadPart', nth: 8, action: { type: 'error', status: 400, code: 'RequestTimeout' } });
    const limiter = pLimit(4);
    const up = upload(emu, f, 'faults/errors', { limiter });
    const warnings: string[] = [];
    up.on('warning', (w) => warnings.push(w.code));
    const res = await up.done();
    assert.equal(res.retries, 5);
    assert.ok(warnings.includes('SLOW_DOWN'));
    // Halving and recovery are asserted exactly, under a fake clock, in upload.no-false-success.test.ts.
    assert.ok(limiter.concurrency >= 1 && limiter.concurrency <= 4, `concurrency ${limiter.concurrency}`);
    assert.equal(await objectSha(emu, 'faults/errors'), f.sha);
  });

  test('a connection reset in the middle of a part body: that part alone is sent again, from the file', async () => {
    const f = await file();
    emu.faults.push({ op: 'UploadPart', partNumber: 3, action: { type: 'reset', afterBytes: 3000 } });
    const from = emu.count('UploadPart');
    const res = await upload(emu, f, 'faults/reset').done();
    assert.equal(emu.count('UploadPart') - from, 6);
    assert.equal(res.retries, 1);
    assert.equal(await objectSha(emu, 'faults/reset'), f.sha);
  });

  test('a stalled response times out and is retried', async () => {
    const f = await file(2 * partSize);
    emu.faults.push({ op: 'UploadPart', partNumber: 2, action: { type: 'stall', ms: 5000 } });
    const t = Date.now();
    const res = await upload(emu, f, 'faults/stall', {}, 1000).done();
    assert.equal(res.retries, 1);
    assert.ok(Date.now() - t < 4000, 'did not wait for the stall');
    assert.equal(await objectSha(emu, 'faults/stall'), f.sha);
  });

  test('Complete answered 200 with an <Error> body is retried', async () => {
    const f = await file();
    emu.faults.push({ op: 'CompleteMultipartUpload', action: { type: 'error-in-200' } });
    const from = emu.count('CompleteMultipartUpload');
    await upload(emu, f, 'faults/200err').done();
    assert.equal(emu.count('CompleteMultipartUpload') - from, 2);
    assert.equal(await objectSha(emu, 'faults/200err'), f.sha);
  });

  test('a lost Complete response: the retry succeeds on AWS; on a server that says NoSuchUpload, HeadObject resolves it', async () => {
    for (const e of [emu, minio]) {
      const f = await file();
      e.faults.push({ op: 'CompleteMultipartUpload', action: { type: 'drop-response' } });
      const up = upload(e, f, 'faults/lost-complete');
      const warnings: string[] = [];
      up.on('warning', (w) => warnings.push(w.code));
      const res = await up.done();
      assert.deepEqual(warnings, e === minio ? ['COMPLETE_RECOVERED'] : []);
      assert.equal(res.verification.level, 'full-object-checksum');
      assert.equal(await objectSha(e, 'faults/lost-complete'), f.sha);
    }
  });

  test('an upload that expires part-way: the typed UploadGone error, journal removed', async () => {
    const f = await file();
    emu.faults.push({ op: 'UploadPart', nth: 3, action: { type: 'expire-upload' } });
    await assert.rejects(upload(emu, f, 'faults/expired', { concurrency: 1 }).done(), (e: unknown) => e instanceof UploadGoneError && e.code === 'UPLOAD_GONE');
    assert.deepEqual((await readdir(f.dir)).filter((x) => x.endsWith('.json')), []);
  });

  test('a part that keeps failing: PartFailed (resumable) after the policy attempts; a later run completes', async () => {
    const f = await file();
    const rule = { op: 'UploadPart' as const, partNumber: 4, times: 1000, action: { type: 'error' as const, status: 500, code: 'InternalError' } };
    emu.faults.push(rule);
    const from = emu.count('UploadPart', 4);
    await assert.rejects(upload(emu, f, 'faults/persistent', { retry: { ...fast, maxAttempts: 4 } }).done(), (e: unknown) => e instanceof PartFailedError && e.resumable && e.context.partNumber === 4);
    assert.equal(emu.count('UploadPart', 4) - from, 4);
    emu.faults.splice(emu.faults.indexOf(rule), 1);
    const res = await upload(emu, f, 'faults/persistent').done();
    assert.equal(res.resumed, true);
    assert.ok(res.reconcile!.toUpload.includes(4));
    assert.equal(res.partsUploaded, res.reconcile!.toUpload.length);
    assert.equal(res.partsSkipped + res.partsUploaded, 5);
    assert.equal(await objectSha(emu, 'faults/persistent'), f.sha);
  });

  test('4xx other than throttling are not retried', async () => {
    const f = await file();
    emu.faults.push({ op: 'UploadPart', partNumber: 2, action: { type: 'error', status: 403, code: 'AccessDenied' } });
    const from = emu.count('UploadPart', 2);
    await assert.rejects(upload(emu, f, 'faults/403', { concurrency: 1 }).done(), (e: unknown) => e instanceof PartFailedError && (e.cause as S3RequestError).s3Code === 'AccessDenied');
    assert.equal(emu.count('UploadPart', 2) - from, 1);
  });

  test("a caller's client that retries itself: requests stay near the policy, not multiplied", async () => {
    const f = await file(2 * partSize);
    const rule = { op: 'ListParts' as const, times: 1000, action: { type: 'error' as const, status: 500, code: 'InternalError' } };
    const ac = new AbortController();
    const first = upload(emu, f, 'faults/sdk-retries', { signal: ac.signal, concurrency: 1 });
    first.on('part-done', () => ac.abort());
    await assert.rejects(first.done(), PausedError);
    emu.faults.push(rule);
    const client = emulatorClient(emu.endpoint, { maxAttempts: 3, retryStrategy: undefined });
    const up = new Upload({ s3: new SdkS3Port(client), file: f.path, bucket: Bucket, key: 'faults/sdk-retries', stateDir: f.dir, retry: { ...fast, maxAttempts: 6 } });
    const from = emu.count('ListParts');
    await assert.rejects(up.done());
    assert.equal(emu.count('ListParts') - from, 6, '2 engine attempts × 3 SDK attempts');
    emu.faults.splice(emu.faults.indexOf(rule), 1);
  });

  test('the file changing between a part and its retry is caught at the retry', async () => {
    const f = await file();
    const inner = new SdkS3Port(createS3Client({ endpoint: emu.endpoint, region: 'us-east-1', credentials }));
    let failed = false;
    const s3 = wrapPort(inner, {
      uploadPart: async (input, req, signal) => {
        if (input.partNumber === 2 && !failed) {
          failed = true;
          // The first attempt dies, and meanwhile the file is rewritten in place, same size.
          await writeFile(f.path, randomBytes(f.bytes.length));
          throw new S3RequestError({ operation: 'UploadPart', s3Code: 'ECONNRESET' });
        }
        return inner.uploadPart(input, req, signal);
      },
    });
    const from = emu.count('UploadPart', 2);
    // Caught by the retry's own re-read and re-hash of part 2 (not only by the fingerprint later).
    await assert.rejects(
      new Upload({ s3, file: f.path, bucket: Bucket, key: 'faults/changed', partSize, minPartSize: 1, stateDir: f.dir, retry: fast, concurrency: 1 }).done(),
      (e: unknown) => e instanceof SourceChangedError && /the bytes of part 2 changed during the upload/.test(e.message),
    );
    assert.equal(emu.count('UploadPart', 2) - from, 0, 'the changed bytes were never sent as part 2');
  });

  test('a server whose HeadObject reports no checksum: every part checksum is compared via GetObjectAttributes', async () => {
    const quiet = await S3Emulator.start({ minPartSize: partSize, headChecksums: false });
    try {
      await emulatorClient(quiet.endpoint).send(new CreateBucketCommand({ Bucket }));
      const f = await file();
      const res = await upload(quiet, f, 'attrs/parts', { checksumAlgorithm: 'CRC32C' }).done();
      assert.equal(res.verification.level, 'composite-checksum');
      assert.ok(res.verification.checks.includes('CRC32C of all 5 parts (GetObjectAttributes)'), res.verification.checks.join('; '));
      assert.equal(quiet.count('GetObjectAttributes'), 1);
      assert.equal(await objectSha(quiet, 'attrs/parts'), f.sha);
    } finally {
      await quiet.close();
    }
  });

  test('RequestPayer, ExpectedBucketOwner and SSE-C reach every call that takes them, ListParts included', async () => {
    const f = await file();
    const sseCustomerKey = randomBytes(32);
    const extra = { requestPayer: 'requester' as const, expectedBucketOwner: '111122223333', sseCustomerKey };
    const from = emu.log.length;
    const ac = new AbortController();
    const second = upload(emu, f, 'headers/all', { ...extra, signal: ac.signal, concurrency: 1 });
    second.on('part-done', () => ac.abort());
    await assert.rejects(second.done(), PausedError);
    await upload(emu, f, 'headers/all', extra).done();
    const calls = emu.log.slice(from);
    const ops = new Set(calls.map((c) => c.op));
    for (const op of ['CreateMultipartUpload', 'UploadPart', 'ListParts', 'CompleteMultipartUpload', 'HeadObject'] as const) assert.ok(ops.has(op), `${op} was called`);
    for (const c of calls) {
      assert.equal(c.sent.requestPayer, 'requester', `${c.op} carries x-amz-request-payer`);
      assert.equal(c.sent.expectedBucketOwner, '111122223333', `${c.op} carries x-amz-expected-bucket-owner`);
      assert.equal(c.sent.sseCustomerAlgorithm, 'AES256', `${c.op} carries the SSE-C headers`);
    }
    assert.equal(await objectSha(emu, 'headers/all', sseCustomerKey), f.sha);
  });
});

