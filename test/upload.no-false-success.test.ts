/**
 * The defects of the engine issue ("No false success, anywhere"), one test each, on the S3
 * emulator (what RGW cannot do on demand: refuse HeadObject, keep storing a part wrong, SSE-KMS
 * with opaque ETags). Each test failed on the engine before the rebuild.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { PartwiseError, PausedError, S3RequestError, Upload, type EngineOptions } from '../src/index.ts';
import { listIncompleteUploads, verifyObject } from '../src/upload/inspect.ts';
import { SdkS3Port, createS3Client } from '../src/s3/adapter.ts';
import type { S3Port } from '../src/s3/port.ts';
import { emulatorClient } from './emulator/client.ts';
import { S3Emulator, type FaultRule } from './emulator/server.ts';
import { runCli } from './helpers/cli.ts';
import { uploadThenPause } from './helpers/pause.ts';
import { wrapPort } from './helpers/ports.ts';
import { tempDir } from './helpers/s3.ts';

const KiB = 1024;
const partSize = 8 * KiB;
const credentials = { accessKeyId: 'emulator', secretAccessKey: 'emulator-secret' };
const fast = { baseDelayMs: 1, maxDelayMs: 5, throttleBaseDelayMs: 2 };
const Bucket = 'nfs';

describe('no false success (engine issue defects, on the emulator)', () => {
  let emu: S3Emulator;
  before(async () => {
    emu = await S3Emulator.start({ minPartSize: partSize });
    await emulatorClient(emu.endpoint).send(new CreateBucketCommand({ Bucket }));
  });
  after(() => emu.close());

  async function file(size = 4 * partSize + 123) {
    const dir = await tempDir();
    const bytes = randomBytes(size);
    const path = join(dir, 'f.bin');
    await writeFile(path, bytes);
    return { dir, path, bytes, sha: createHash('sha256').update(bytes).digest('hex') };
  }
  const port = () => new SdkS3Port(createS3Client({ endpoint: emu.endpoint, region: 'us-east-1', credentials }));
  function upload(f: { dir: string; path: string }, key: string, extra: Partial<EngineOptions> = {}) {
    return new Upload({ s3: port(), file: f.path, bucket: Bucket, key, partSize, minPartSize: 1, stateDir: f.dir, retry: fast, random: () => 0.5, ...extra });
  }
  async function objectSha(key: string): Promise<string> {
    const out = await emulatorClient(emu.endpoint).send(new GetObjectCommand({ Bucket, Key: key }));
    return createHash('sha256').update(await out.Body!.transformToByteArray()).digest('hex');
  }
  /** A port that records the limiter's concurrency at every UploadPart. */
  function concurrencySeen(limiter: ReturnType<typeof pLimit>) {
    const seen: number[] = [];
    const inner = port();
    const s3 = wrapPort(inner, {
      uploadPart: (input, req, signal) => {
        seen.push(limiter.concurrency);
        return inner.uploadPart(input, req, signal);
      },
    });
    return { s3, seen };
  }
  const pauseAfterOnePart = (f: { dir: string; path: string }, key: string) =>
    uploadThenPause({ s3: port(), file: f.path, bucket: Bucket, key, partSize, minPartSize: 1, stateDir: f.dir, retry: fast }, 1);
  const withFault = <T>(rule: FaultRule, fn: () => Promise<T>, e: S3Emulator = emu) => e.withFault(rule, fn);
  const journals = async (dir: string) => (await readdir(dir)).filter((n) => n.endsWith('.json'));
  const warningsOf = (up: Upload) => {
    const w: string[] = [];
    up.on('warning', (e) => w.push(e.code));
    return w;
  };

  test('defect 1: after a failed Complete, an older object of the same size is not reported as this upload (SSE-KMS, no checksum of ours on it)', async () => {
    const f = await file();
    const key = 'd1/stale-object';
    // Someone's older object at the key, same size, other bytes, stored without a CRC32C.
    await emulatorClient(emu.endpoint).send(new PutObjectCommand({ Bucket, Key: key, Body: randomBytes(f.bytes.length) }));
    const up = upload(f, key, { serverSideEncryption: 'aws:kms', retry: { ...fast, maxAttempts: 3 } });
    const warnings = warningsOf(up);
    await withFault({ op: 'CompleteMultipartUpload', times: 1000, action: { type: 'error', status: 500, code: 'InternalError' } }, () =>
      assert.rejects(up.done(), (e: unknown) => e instanceof PartwiseError && e.code === 'COMPLETE_FAILED' && e.resumable),
    );
    assert.ok(!warnings.includes('COMPLETE_RECOVERED'), `warnings: ${warnings.join(', ')}`);
    assert.equal((await journals(f.dir)).length, 1, 'the journal is kept, so the next run can finish');
    // The next run completes it for real.
    const res = await upload(f, key, { serverSideEncryption: 'aws:kms' }).done();
    assert.equal(res.verification.level, 'full-object-checksum');
    assert.equal(await objectSha(key), f.sha);
  });

  test('defect 1: after a failed Complete, the right object is still recognised by its checksum (lost response)', async () => {
    const f = await file();
    const key = 'd1/lost-response';
    const minio = await S3Emulator.start({ minPartSize: partSize, repeatCompleteSucceeds: false });
    try {
      await emulatorClient(minio.endpoint).send(new CreateBucketCommand({ Bucket }));
      minio.faults.push({ op: 'CompleteMultipartUpload', action: { type: 'drop-response' } });
      const up = new Upload({ s3: new SdkS3Port(createS3Client({ endpoint: minio.endpoint, region: 'us-east-1', credentials })), file: f.path, bucket: Bucket, key, partSize, minPartSize: 1, stateDir: f.dir, retry: fast, serverSideEncryption: 'aws:kms' });
      const warnings = warningsOf(up);
      const res = await up.done();
      assert.deepEqual(warnings, ['COMPLETE_RECOVERED']);
      assert.equal(res.verification.level, 'full-object-checksum');
    } finally {
      await minio.close();
    }
  });

  test('defect 4: with --checksum none, a part the server keeps storing wrong fails the upload (resumable), never passes at level size', async () => {
    const f = await file();
    const key = 'd4/keeps-rotting';
    const up = upload(f, key, { checksumAlgorithm: 'none', retry: { ...fast, maxAttempts: 3 } });
    const warnings = warningsOf(up);
    const from = emu.count('UploadPart', 3);
    await withFault({ op: 'UploadPart', partNumber: 3, times: 1000, action: { type: 'bit-rot' } }, () =>
      assert.rejects(up.done(), (e: unknown) => e instanceof PartwiseError && e.code === 'PART_FAILED' && e.resumable && e.context.partNumber === 3),
    );
    assert.equal(emu.count('UploadPart', 3) - from, 3, 'part 3 sent maxAttempts times');
    assert.ok(!warnings.includes('ETAG_NOT_MD5'), 'trust in ETags is not withdrawn because a part kept mismatching');
    const res = await upload(f, key, { checksumAlgorithm: 'none' }).done();
    assert.equal(res.verification.level, 'multipart-etag');
    assert.equal(await objectSha(key), f.sha);
  });

  test('defect 5: a run stopped after Complete landed: the next run proves the object and exits "already complete", sending nothing', async () => {
    const f = await file();
    const key = 'd5/after-complete';
    const ac = new AbortController();
    const inner = port();
    const s3: S3Port = wrapPort(inner, {
      completeMultipartUpload: async (input, req, signal) => {
        await inner.completeMultipartUpload(input, req, signal);
        ac.abort(); // Ctrl-C lands right after the server completed, before the answer is used
        throw new S3RequestError({ operation: 'CompleteMultipartUpload', s3Code: 'ECONNRESET' });
      },
    });
    await assert.rejects(new Upload({ s3, file: f.path, bucket: Bucket, key, partSize, minPartSize: 1, stateDir: f.dir, retry: fast, signal: ac.signal }).done(), PausedError);
    assert.equal((await journals(f.dir)).length, 1);
    const parts = emu.count('UploadPart');
    const completes = emu.count('CompleteMultipartUpload');
    const again = upload(f, key);
    const warnings = warningsOf(again);
    const res = await again.done();
    assert.equal(res.alreadyComplete, true);
    assert.equal(res.partsUploaded, 0);
    assert.equal(emu.count('UploadPart') - parts, 0, 'no part sent');
    assert.equal(emu.count('CompleteMultipartUpload') - completes, 0, 'no Complete sent');
    assert.ok(warnings.includes('ALREADY_COMPLETE'));
    assert.equal(res.verification.level, 'full-object-checksum');
    assert.deepEqual(await journals(f.dir), [], 'journal forgotten');
    assert.equal(await objectSha(key), f.sha);
  });

  for (const kms of [false, true]) {
    test(`defect 5: the upload gone and another object of the same size at the key${kms ? ' (SSE-KMS: nothing differs, nothing identifies)' : ''}: UPLOAD_GONE, never "already complete"`, async () => {
      const f = await file();
      const key = `d5/gone-other-object-${kms}`;
      const extra = kms ? { serverSideEncryption: 'aws:kms' as const } : {};
      const ac = new AbortController();
      const first = upload(f, key, { ...extra, signal: ac.signal, concurrency: 1 });
      let uploadId = '';
      first.on('plan', (e) => (uploadId = e.uploadId));
      first.on('part-done', () => ac.abort());
      await assert.rejects(first.done(), PausedError);
      emu.expireUpload(uploadId);
      await emulatorClient(emu.endpoint).send(new PutObjectCommand({ Bucket, Key: key, Body: randomBytes(f.bytes.length) }));
      assert.equal((await upload(f, key, extra).status()).alreadyComplete, false);
      await assert.rejects(upload(f, key, extra).done(), (e: unknown) => e instanceof PartwiseError && e.code === 'UPLOAD_GONE' && /not proven/.test(e.message));
      assert.deepEqual(await journals(f.dir), []);
    });
  }

  test('defect 5: write-only credentials (HeadObject 403): Complete\'s own checksum is judged, the level reported, the upload not failed', async () => {
    const f = await file();
    const key = 'd5/write-only';
    await withFault({ op: 'HeadObject', times: 1000, action: { type: 'error', status: 403, code: 'AccessDenied' } }, async () => {
      const up = upload(f, key);
      const warnings = warningsOf(up);
      const res = await up.done();
      assert.ok(warnings.includes('NO_READ_ACCESS'), warnings.join(','));
      assert.equal(res.verification.level, 'full-object-checksum');
      assert.ok(res.verification.checks.some((c) => c.includes("Complete's response")), res.verification.checks.join('; '));
    });
    assert.equal(await objectSha(key), f.sha);
  });

  test('defect 6: a rewrite in place that keeps size and mtime, during the upload, is caught (never a mixed object reported as the file)', async () => {
    const f = await file();
    const key = 'd6/rewrite-keep-mtime';
    const inner = port();
    // `touch -r` copies times to the nanosecond: keep the file's own in a reference file.
    const ref = join(f.dir, 'times.ref');
    await writeFile(ref, '');
    execFileSync('touch', ['-r', f.path, ref]);
    const before = await stat(f.path, { bigint: true });
    let rewritten = false;
    const s3 = wrapPort(inner, {
      uploadPart: async (input, req, signal) => {
        if (input.partNumber === 3 && !rewritten) {
          rewritten = true;
          await writeFile(f.path, randomBytes(f.bytes.length)); // same size, other bytes
          execFileSync('touch', ['-r', ref, f.path]); // modification time put back
          const now = await stat(f.path, { bigint: true });
          assert.equal(now.mtimeNs, before.mtimeNs, 'mtime restored exactly');
          assert.equal(now.size, before.size);
          assert.equal(now.ino, before.ino);
        }
        return inner.uploadPart(input, req, signal);
      },
    });
    const from = emu.count('CompleteMultipartUpload');
    await assert.rejects(new Upload({ s3, file: f.path, bucket: Bucket, key, partSize, minPartSize: 1, stateDir: f.dir, retry: fast, concurrency: 1 }).done(), (e: unknown) => e instanceof PartwiseError && e.code === 'SOURCE_CHANGED');
    assert.equal(emu.count('CompleteMultipartUpload') - from, 0, 'no Complete of a mixed object');
  });

  for (const [name, text] of [
    ['corrupt', '{"schema":2,"bucket":'],
    ['future-schema', JSON.stringify({ schema: 99, bucket: Bucket })],
  ] as const) {
    test(`defect 7: a ${name} journal is set aside by --fresh (kept for inspection), and the upload starts over`, async () => {
      const f = await file();
      const key = `d7/${name}`;
      await pauseAfterOnePart(f, key);
      const [jf] = await journals(f.dir);
      await writeFile(join(f.dir, jf!), text);
      await assert.rejects(upload(f, key).done(), (e: unknown) => e instanceof PartwiseError && e.code === 'JOURNAL_CORRUPT' && /fresh/.test(e.message));
      const fresh = upload(f, key, { fresh: true });
      const warnings = warningsOf(fresh);
      const res = await fresh.done();
      assert.deepEqual(warnings, ['JOURNAL_SET_ASIDE']);
      assert.equal(await objectSha(key), f.sha);
      assert.equal(res.resumed, false);
      const aside = (await readdir(f.dir)).filter((n) => n.includes('.unreadable-') && !n.endsWith('.log'));
      assert.equal(aside.length, 1, 'the bad journal is kept');
      assert.equal(await readFile(join(f.dir, aside[0]!), 'utf8'), text);
    });
  }

  test('defect 8: SlowDown halves the concurrency once per burst, and it grows back to the caller\'s as calls succeed', async () => {
    const f = await file(16 * partSize);
    emu.faults.push({ op: 'UploadPart', nth: 2, times: 2, action: { type: 'error', status: 503, code: 'SlowDown' } });
    const limiter = pLimit(4);
    let t = 0;
    const { s3, seen } = concurrencySeen(limiter);
    // A clock that moves 400 ms per reading: the two SlowDowns fall in one burst, recovery follows.
    const up = new Upload({ s3, file: f.path, bucket: Bucket, key: 'd8/slowdown', partSize, minPartSize: 1, stateDir: f.dir, retry: fast, limiter, now: () => (t += 400) });
    const warnings = warningsOf(up);
    await up.done();
    assert.equal(warnings.filter((w) => w === 'SLOW_DOWN').length, 1, 'one burst, one decrease');
    assert.equal(Math.min(...seen), 2, 'halved, not quartered');
    assert.equal(limiter.concurrency, 4, 'back to what the caller gave');
    assert.ok(Math.max(...seen) <= 4, 'never above it');
    assert.equal(await objectSha('d8/slowdown'), f.sha);
  });

  test('defect 8: uploads sharing one limiter share its throttle: one burst halves it once, recovery stops at the caller\'s concurrency', async () => {
    const a = await file(12 * partSize);
    const b = await file(12 * partSize);
    emu.faults.push({ op: 'UploadPart', nth: 2, times: 2, action: { type: 'error', status: 503, code: 'SlowDown' } });
    const limiter = pLimit(6);
    let t = 0;
    const { s3, seen } = concurrencySeen(limiter);
    const now = () => (t += 100);
    const mk = (f: typeof a, key: string) => new Upload({ s3, file: f.path, bucket: Bucket, key, partSize, minPartSize: 1, stateDir: f.dir, retry: fast, limiter, now });
    await Promise.all([mk(a, 'd8/shared-a').done(), mk(b, 'd8/shared-b').done()]);
    assert.equal(Math.min(...seen), 3, 'two uploads in one burst: halved once');
    assert.ok(Math.max(...seen) <= 6);
    assert.equal(limiter.concurrency, 6);
  });

  test('defect 8: `ls` reports a ListParts it may not do as such, never as "0 parts"', async () => {
    const f = await file();
    await pauseAfterOnePart(f, 'd8/ls-denied');
    await withFault({ op: 'ListParts', times: 1000, action: { type: 'error', status: 403, code: 'AccessDenied' } }, async () => {
      const rows = (await listIncompleteUploads(port(), Bucket, 'd8/ls-denied', f.dir)).filter((r) => r.key === 'd8/ls-denied');
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.parts, undefined, 'no part count claimed');
      assert.match(rows[0]!.partsError ?? '', /AccessDenied/);
    });
  });

  test('defect 8: `verify` of a multipart object whose part 1 cannot be read is not "OK at level size"', async () => {
    const f = await file();
    // A server that reports no checksums: only the multipart ETag, which needs the part layout.
    const quiet = await S3Emulator.start({ minPartSize: partSize, headChecksums: false });
    try {
      await emulatorClient(quiet.endpoint).send(new CreateBucketCommand({ Bucket }));
      const quietPort = new SdkS3Port(createS3Client({ endpoint: quiet.endpoint, region: 'us-east-1', credentials }));
      await new Upload({ s3: quietPort, file: f.path, bucket: Bucket, key: 'd8/verify-no-layout', partSize, minPartSize: 1, stateDir: f.dir, checksumAlgorithm: 'none' }).done();
      quiet.faults.push({ op: 'HeadObject', partNumber: 1, times: 1000, action: { type: 'error', status: 403, code: 'AccessDenied' } });
      const r = await verifyObject(quietPort, { file: f.path, bucket: Bucket, key: 'd8/verify-no-layout' });
      assert.deepEqual(r.mismatches, []);
      assert.equal(r.proven, false, `level ${r.level}, checks ${r.checks.join('; ')}`);
      assert.match(r.why ?? '', /part layout could not be learned/);
      // The command says so: exit 4, OBJECT_UNVERIFIED, and no "OK".
      const env = { ...process.env, AWS_ACCESS_KEY_ID: 'emulator', AWS_SECRET_ACCESS_KEY: 'emulator-secret', PARTWISE_STATE_DIR: f.dir };
      const cli = await runCli(['verify', f.path, `s3://${Bucket}/d8/verify-no-layout`, '--endpoint', quiet.endpoint, '--region', 'us-east-1'], env);
      assert.equal(cli.code, 4, cli.stderr);
      assert.match(cli.stderr, /OBJECT_UNVERIFIED/);
      assert.doesNotMatch(cli.stdout, /OK/);
    } finally {
      await quiet.close();
    }
    // With a full-object CRC the layout is not needed: the object is still proven.
    await upload(f, 'd8/verify-no-layout-crc', { checksumAlgorithm: 'CRC32C' }).done();
    await upload(f, 'd8/verify-no-layout-sha', { checksumAlgorithm: 'SHA256' }).done();
    // Neither a part list nor the parts themselves can be read: the layout stays unknown.
    const noLayout = <T>(fn: () => Promise<T>) =>
      withFault({ op: 'GetObjectAttributes', times: 1000, action: { type: 'error', status: 403, code: 'AccessDenied' } }, () => withFault({ op: 'HeadObject', partNumber: 1, times: 1000, action: { type: 'error', status: 403, code: 'AccessDenied' } }, fn));
    await noLayout(async () => {
      const r = await verifyObject(port(), { file: f.path, bucket: Bucket, key: 'd8/verify-no-layout-crc' });
      assert.equal(r.proven, true);
      assert.equal(r.level, 'full-object-checksum');
      // A composite value depends on the layout: unknown layout → not proven, and no false mismatch.
      const sha = await verifyObject(port(), { file: f.path, bucket: Bucket, key: 'd8/verify-no-layout-sha' });
      assert.deepEqual(sha.mismatches, []);
      assert.equal(sha.proven, false);
    });
    // Part 1 answers, but with a size that cannot make the object's part count: no layout either.
    const inner = port();
    const liar = wrapPort(inner, {
      headObject: async (input, req, signal) => (input.partNumber ? { size: 1, etag: '', checksums: {} } : inner.headObject(input, req, signal)),
      getObjectAttributes: async () => ({ checksums: {}, parts: [], isTruncated: false }),
    });
    const sha = await verifyObject(liar, { file: f.path, bucket: Bucket, key: 'd8/verify-no-layout-sha' });
    assert.deepEqual(sha.mismatches, []);
    assert.equal(sha.proven, false);
    assert.match(sha.why ?? '', /do not make 5 parts/);
  });

  test('defect 8: parts the server holds beyond the plan are REMOTE_PARTS_INCONSISTENT (typed, with what to do)', async () => {
    const f = await file();
    const key = 'd8/extra-parts';
    const { uploadId } = await pauseAfterOnePart(f, key);
    // Another writer adds part 9 to the same upload.
    await port().uploadPart({ bucket: Bucket, key, uploadId, partNumber: 9, body: Buffer.from('x'), contentMd5: createHash('md5').update('x').digest('base64') }, {});
    await assert.rejects(upload(f, key).done(), (e: unknown) => e instanceof PartwiseError && e.code === 'REMOTE_PARTS_INCONSISTENT' && /9/.test(e.message) && /fresh/.test(e.message));
  });

  test('defect 8: a failure that is not a part\'s is not labelled PART_FAILED', async () => {
    const f = await file();
    const inner = port();
    const s3 = wrapPort(inner, {
      describeEndpoint: async () => {
        throw new TypeError('something no one planned for');
      },
    });
    await assert.rejects(new Upload({ s3, file: f.path, bucket: Bucket, key: 'd8/unexpected', stateDir: f.dir }).done(), (e: unknown) => e instanceof PartwiseError && e.code === 'UNEXPECTED' && /no one planned/.test(e.message));
  });

  test('an abort whose reason is not an Error (a string, null) still pauses: the journal is kept, nothing reported as done', async () => {
    for (const reason of ['user cancelled', null]) {
      const f = await file();
      const key = `review/abort-reason-${String(reason)}`;
      await pauseAfterOnePart(f, key);
      const ac = new AbortController();
      const up = upload(f, key, { signal: ac.signal, retry: { ...fast, baseDelayMs: 2000, maxDelayMs: 2000 } });
      let completes = 0;
      up.on('complete', () => completes++);
      await withFault({ op: 'ListParts', times: 1000, action: { type: 'error', status: 500, code: 'InternalError' } }, async () => {
        setTimeout(() => ac.abort(reason), 300);
        await assert.rejects(up.done(), (e: unknown) => e instanceof PausedError);
      });
      assert.equal(completes, 0);
      assert.equal((await journals(f.dir)).length, 1, 'journal kept');
    }
  });

  test('nothing could verify: --checksum none with SSE-KMS or SSE-C is refused up front; a server with non-MD5 ETags and no checksum stops the upload', async () => {
    const f = await file();
    assert.throws(() => upload(f, 'review/none-kms', { checksumAlgorithm: 'none', serverSideEncryption: 'aws:kms' }), (e: unknown) => e instanceof PartwiseError && e.code === 'INVALID_OPTIONS');
    assert.throws(() => upload(f, 'review/none-ssec', { checksumAlgorithm: 'none', sseCustomerKey: randomBytes(32) }), (e: unknown) => e instanceof PartwiseError && e.code === 'INVALID_OPTIONS');
    const inner = port();
    const opaque = wrapPort(inner, { uploadPart: async (input, req, signal) => ({ ...(await inner.uploadPart(input, req, signal)), etag: '"opaque-etag-1"' }) });
    await assert.rejects(
      new Upload({ s3: opaque, file: f.path, bucket: Bucket, key: 'review/none-opaque', partSize, minPartSize: 1, stateDir: f.dir, retry: fast, checksumAlgorithm: 'none' }).done(),
      (e: unknown) => e instanceof PartwiseError && e.code === 'UNVERIFIABLE' && /--checksum/.test(e.message),
    );
  });

  test('after Complete: HeadObject shows nothing that identifies the object → Complete\'s own checksum may prove it; if it cannot, OBJECT_UNVERIFIED (never a quiet success)', async () => {
    for (const completeSaysChecksum of [true, false]) {
      const f = await file();
      const key = `review/head-unidentifying-${completeSaysChecksum}`;
      const inner = port();
      const s3 = wrapPort(inner, {
        // What HeadObject shows: opaque ETag, no checksum (as some servers under SSE-KMS).
        headObject: async (input, req, signal) => {
          const h = await inner.headObject(input, req, signal);
          return h && { size: h.size, etag: '"opaque"', checksums: {} };
        },
        getObjectAttributes: async () => ({ checksums: {}, parts: [], isTruncated: false }),
        completeMultipartUpload: async (input, req, signal) => {
          const out = await inner.completeMultipartUpload(input, req, signal);
          return completeSaysChecksum ? out : { etag: '"opaque"' };
        },
      });
      const up = new Upload({ s3, file: f.path, bucket: Bucket, key, partSize, minPartSize: 1, stateDir: f.dir, retry: fast, serverSideEncryption: 'aws:kms' });
      if (completeSaysChecksum) {
        const res = await up.done();
        assert.equal(res.verification.level, 'full-object-checksum');
        assert.ok(res.verification.checks.some((c) => c.includes("Complete's response")));
      } else {
        await assert.rejects(up.done(), (e: unknown) => e instanceof PartwiseError && e.code === 'OBJECT_UNVERIFIED');
        assert.deepEqual(await journals(f.dir), [], 'the upload is complete: nothing to resume');
      }
    }
  });

  test('after Complete: HeadObject shows another checksum → OBJECT_VERIFICATION_FAILED and the journal forgotten', async () => {
    const f = await file();
    const inner = port();
    const s3 = wrapPort(inner, {
      headObject: async (input, req, signal) => {
        const h = await inner.headObject(input, req, signal);
        return h && { ...h, checksums: { CRC32C: 'AAAAAA==' } };
      },
    });
    await assert.rejects(
      new Upload({ s3, file: f.path, bucket: Bucket, key: 'review/head-differs', partSize, minPartSize: 1, stateDir: f.dir, retry: fast }).done(),
      (e: unknown) => e instanceof PartwiseError && e.code === 'OBJECT_VERIFICATION_FAILED' && /CRC32C/.test(e.message),
    );
    assert.deepEqual(await journals(f.dir), []);
  });

  test('a recovered Complete (the same file already at the key) closes the multipart upload it leaves open', async () => {
    const f = await file();
    const key = 'review/recovered-closes';
    await upload(f, key).done();
    let uploadId = '';
    const again = upload(await (async () => ({ ...f, dir: (await tempDir()) }))(), key);
    again.on('plan', (e) => (uploadId = e.uploadId));
    const warnings = warningsOf(again);
    await withFault({ op: 'CompleteMultipartUpload', times: 1000, action: { type: 'error', status: 500, code: 'InternalError' } }, () => again.done());
    assert.deepEqual(warnings, ['COMPLETE_RECOVERED']);
    assert.ok(uploadId);
    assert.ok(!emu.uploadIds().includes(uploadId), 'the open upload was aborted');
  });

  test('Complete failed and the object could not be looked at: a resumable COMPLETE_FAILED with the journal kept (never UPLOAD_GONE); the rerun proves it', async () => {
    const f = await file();
    const key = 'review/could-not-look';
    const minio = await S3Emulator.start({ minPartSize: partSize, repeatCompleteSucceeds: false });
    try {
      await emulatorClient(minio.endpoint).send(new CreateBucketCommand({ Bucket }));
      const mk = () => new Upload({ s3: new SdkS3Port(createS3Client({ endpoint: minio.endpoint, region: 'us-east-1', credentials })), file: f.path, bucket: Bucket, key, partSize, minPartSize: 1, stateDir: f.dir, retry: { ...fast, maxAttempts: 2 } });
      minio.faults.push({ op: 'CompleteMultipartUpload', action: { type: 'drop-response' } });
      await withFault(
        { op: 'HeadObject', times: 1000, action: { type: 'error', status: 503, code: 'ServiceUnavailable' } },
        () => assert.rejects(mk().done(), (e: unknown) => e instanceof PartwiseError && e.code === 'COMPLETE_FAILED' && e.resumable),
        minio,
      );
      assert.equal((await journals(f.dir)).length, 1, 'journal kept');
      const parts = minio.count('UploadPart');
      const res = await mk().done();
      assert.equal(res.alreadyComplete, true);
      assert.equal(minio.count('UploadPart') - parts, 0);
    } finally {
      await minio.close();
    }
  });

  test('a run killed after Complete, rerun without read access: UPLOAD_GONE saying why (the object cannot be read), journal removed', async () => {
    const f = await file();
    const key = 'review/gone-unreadable';
    const ac = new AbortController();
    const inner = port();
    const s3 = wrapPort(inner, {
      completeMultipartUpload: async (input, req, signal) => {
        await inner.completeMultipartUpload(input, req, signal);
        ac.abort();
        throw new S3RequestError({ operation: 'CompleteMultipartUpload', s3Code: 'ECONNRESET' });
      },
    });
    await assert.rejects(new Upload({ s3, file: f.path, bucket: Bucket, key, partSize, minPartSize: 1, stateDir: f.dir, retry: fast, signal: ac.signal }).done(), PausedError);
    const status = await upload(f, key).status();
    assert.equal(status.alreadyComplete, true, 'status sees the finished object');
    await withFault({ op: 'HeadObject', times: 1000, action: { type: 'error', status: 403, code: 'AccessDenied' } }, async () => {
      assert.equal((await upload(f, key).status()).alreadyComplete, false);
      await assert.rejects(upload(f, key).done(), (e: unknown) => e instanceof PartwiseError && e.code === 'UPLOAD_GONE' && /cannot be read/.test(e.message));
    });
    assert.deepEqual(await journals(f.dir), []);
  });

  test('Complete says NoSuchUpload and the object is not this file: UPLOAD_GONE, journal removed', async () => {
    const f = await file();
    await withFault({ op: 'CompleteMultipartUpload', times: 1000, action: { type: 'error', status: 404, code: 'NoSuchUpload' } }, () =>
      assert.rejects(upload(f, 'review/complete-gone').done(), (e: unknown) => e instanceof PartwiseError && e.code === 'UPLOAD_GONE' && /not proven/.test(e.message)),
    );
    assert.deepEqual(await journals(f.dir), []);
  });

  test('write-only credentials and a Complete response that identifies nothing: OBJECT_UNVERIFIED, not success', async () => {
    const f = await file();
    const inner = port();
    const s3 = wrapPort(inner, {
      completeMultipartUpload: async (input, req, signal) => {
        await inner.completeMultipartUpload(input, req, signal);
        return { etag: '"opaque"' };
      },
    });
    await withFault({ op: 'HeadObject', times: 1000, action: { type: 'error', status: 403, code: 'AccessDenied' } }, () =>
      assert.rejects(
        new Upload({ s3, file: f.path, bucket: Bucket, key: 'review/write-only-unproven', partSize, minPartSize: 1, stateDir: f.dir, retry: fast, serverSideEncryption: 'aws:kms' }).done(),
        (e: unknown) => e instanceof PartwiseError && e.code === 'OBJECT_UNVERIFIED' && /cannot be read/.test(e.message),
      ),
    );
  });
});
