/**
 * Streams (`upload -`): read once, every part and the object verified by checksum, memory bounded
 * by concurrency × part size, no orphan on failure, and a stream too long for 10,000 parts refused
 * with its upload aborted. On the local RGW.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { test } from 'node:test';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { StreamUpload } from '../src/index.ts';
import { SdkS3Port, createS3Client, toS3RequestError } from '../src/s3/adapter.ts';
import { S3RequestError } from '../src/core/errors.ts';
import { BIN, cliEnv, jsonLines, runCliPiped } from './helpers/cli.ts';
import { wrapPort } from './helpers/ports.ts';
import type { S3Port } from '../src/s3/port.ts';
import { getObjectBytes, loadS3Env, makeBucket, plainClient, randomFile, sha256, tempDir } from './helpers/s3.ts';

const MiB = 1024 * 1024;

/** Yields `data` in 64 KiB chunks (as a pipe does) and records how far the reader has pulled. */
function piped(data: Buffer): { source: AsyncIterable<Buffer>; pulled: () => number } {
  let pulled = 0;
  return {
    pulled: () => pulled,
    source: (async function* () {
      for (let o = 0; o < data.length; o += 64 * 1024) {
        const c = data.subarray(o, Math.min(data.length, o + 64 * 1024));
        pulled += c.length;
        yield c;
      }
    })(),
  };
}

/** The server, except that part `n` is refused (AccessDenied), and any other calls given. */
function partDenied(inner: S3Port, n: number, more: Partial<S3Port> = {}): S3Port {
  return wrapPort(inner, {
    uploadPart: async (input, req, signal) => {
      if (input.partNumber === n) throw new S3RequestError({ operation: 'UploadPart', s3Code: 'AccessDenied', httpStatus: 403, message: 'denied' });
      return inner.uploadPart(input, req, signal);
    },
    ...more,
  });
}

async function openUploads(bucket: string): Promise<number> {
  return (await plainClient().send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads?.length ?? 0;
}

test('a stream uploads part by part, verified by checksum, never reading more than concurrency parts ahead of the acknowledgements', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-stream');
  const data = randomBytes(23 * MiB + 17);
  const { source, pulled } = piped(data);
  const up = new StreamUpload({ s3: new SdkS3Port(createS3Client()), source, bucket, key: 'dump.bin', partSize: 5 * MiB, concurrency: 2 });
  let acked = 0;
  let maxAhead = 0;
  up.on('part-done', (e) => (acked += e.size));
  up.on('part-start', () => (maxAhead = Math.max(maxAhead, pulled() - acked)));
  const r = await up.done();
  assert.equal(r.size, data.length);
  assert.equal(r.partCount, 5);
  assert.equal(r.bytesSent, data.length);
  assert.equal(r.verification.level, 'full-object-checksum');
  assert.match(r.verification.checks.join(' '), /full-object CRC32C/);
  assert.equal(sha256(await getObjectBytes(bucket, 'dump.bin')), sha256(data));
  // Two buffers in flight plus the chunk the reader holds: never a third part read ahead.
  assert.ok(maxAhead <= 2 * 5 * MiB + 64 * 1024, `read ${(maxAhead / MiB).toFixed(1)} MiB ahead of the acknowledgements`);
});

test('an empty stream is one empty part; a stream ending on a part boundary adds no empty part', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-stream');
  const s3 = new SdkS3Port(createS3Client());
  const empty = await new StreamUpload({ s3, source: piped(Buffer.alloc(0)).source, bucket, key: 'empty', partSize: 5 * MiB }).done();
  assert.equal(empty.size, 0);
  assert.equal(empty.partCount, 1);
  assert.equal((await getObjectBytes(bucket, 'empty')).length, 0);
  const exact = randomBytes(10 * MiB);
  const r = await new StreamUpload({ s3, source: piped(exact).source, bucket, key: 'exact', partSize: 5 * MiB }).done();
  assert.equal(r.partCount, 2);
  assert.equal(sha256(await getObjectBytes(bucket, 'exact')), sha256(exact));
});

test('a failed part aborts the stream\'s upload: no orphan, STREAM_FAILED, not resumable', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-stream');
  const inner = new SdkS3Port(createS3Client());
  const s3 = partDenied(inner, 3);
  const up = new StreamUpload({ s3, source: piped(randomBytes(16 * MiB)).source, bucket, key: 'fails', partSize: 5 * MiB, concurrency: 1 });
  await assert.rejects(up.done(), (e: { code?: string; causeCode?: string; resumable?: boolean; message?: string }) => {
    assert.equal(e.code, 'STREAM_FAILED');
    assert.equal(e.causeCode, 'PART_FAILED');
    assert.equal(e.resumable, false);
    assert.match(e.message!, /was aborted/);
    return true;
  });
  assert.equal(await openUploads(bucket), 0, 'the upload was aborted');
});

test('a stream longer than 10,000 parts of the planned size fails when it gets there, aborted; --expected-size plans a part size that fits', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-stream');
  const s3 = new SdkS3Port(createS3Client());
  const data = randomBytes(5 * MiB + 1);
  // 4 parts stand in for S3's 10,000 (a test hook), 1 MiB parts for 16 MiB ones.
  const tooLong = new StreamUpload({ s3, source: piped(data).source, bucket, key: 'long', partSize: MiB, minPartSize: 1, maxParts: 4 });
  await assert.rejects(tooLong.done(), (e: { code?: string; message?: string }) => e.code === 'STREAM_TOO_LARGE' && /expected-size/.test(e.message ?? ''));
  assert.equal(await openUploads(bucket), 0);
  const planned = new StreamUpload({ s3, source: piped(data).source, bucket, key: 'long', partSize: MiB, minPartSize: 1, maxParts: 4, expectedSize: data.length });
  const r = await planned.done();
  assert.ok(r.partCount <= 4, `${r.partCount} parts`);
  assert.equal(sha256(await getObjectBytes(bucket, 'long')), sha256(data));
});

test('CLI: `cat file | partwise upload - s3://…` uploads standard input and verifies it; --fresh is refused for a stream', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-stream-cli');
  const dir = await tempDir();
  const f = await randomFile(dir, 12 * MiB + 3);
  const env = cliEnv(dir);
  const run = (args: string[]) => runCliPiped(args, env, createReadStream(f.path));
  const r = await run(['upload', '-', `s3://${bucket}/piped.bin`, '--part-size', '5MiB', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const done = jsonLines(r.stdout).at(-1)!;
  assert.equal(done.event, 'complete');
  assert.equal(done.size, f.bytes.length);
  assert.equal(done.verificationLevel, 'full-object-checksum');
  assert.equal(sha256(await getObjectBytes(bucket, 'piped.bin')), f.sha256);
  const bad = await run(['upload', '-', `s3://${bucket}/x`, '--fresh']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /cannot be used with a stream/);
});

test('a part whose checksum echo disagrees with what was sent fails the stream (aborted), even when the object would complete', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-stream');
  const inner = new SdkS3Port(createS3Client());
  const s3 = wrapPort(inner, {
    uploadPart: async (input, req, signal) => {
      const out = await inner.uploadPart(input, req, signal);
      return input.partNumber === 2 ? { ...out, checksum: 'AAAAAA==' } : out;
    },
  });
  const up = new StreamUpload({ s3, source: piped(randomBytes(11 * MiB)).source, bucket, key: 'echo', partSize: 5 * MiB, retry: { maxAttempts: 2, baseDelayMs: 1 } });
  await assert.rejects(up.done(), (e: { code?: string; causeCode?: string }) => e.code === 'STREAM_FAILED' && e.causeCode === 'PART_FAILED');
  assert.equal(await openUploads(bucket), 0);
});

test('a stop while the producer is idle ends the stream at once, its upload aborted; a source that fails aborts it too, with nothing landing after', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-stream');
  const s3 = new SdkS3Port(createS3Client());
  const ac = new AbortController();
  const idle = (async function* () {
    yield randomBytes(6 * MiB);
    await new Promise(() => undefined); // a pipe with nothing more to say
  })();
  const up = new StreamUpload({ s3, source: idle, bucket, key: 'idle', partSize: 5 * MiB, signal: ac.signal });
  up.on('part-done', () => ac.abort(new Error('stop')));
  const t0 = Date.now();
  await assert.rejects(up.done(), (e: { code?: string; causeCode?: string }) => e.code === 'STREAM_FAILED' && e.causeCode === 'PAUSED');
  assert.ok(Date.now() - t0 < 5000);
  assert.equal(await openUploads(bucket), 0);

  let calls = 0;
  const inner = new SdkS3Port(createS3Client());
  const counting = wrapPort(inner, {
    uploadPart: async (input, req, signal) => {
      calls++;
      return inner.uploadPart(input, req, signal);
    },
  });
  const failing = (async function* () {
    for (let i = 0; i < 4; i++) yield randomBytes(5 * MiB);
    throw new Error('tar: read error');
  })();
  const up2 = new StreamUpload({ s3: counting, source: failing, bucket, key: 'broken', partSize: 5 * MiB, concurrency: 4 });
  await assert.rejects(up2.done(), (e: { code?: string; causeCode?: string; message?: string }) => e.code === 'STREAM_FAILED' && e.causeCode === 'SOURCE_UNREADABLE' && /tar: read error/.test(e.message ?? ''));
  const after = calls;
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(calls, after);
  assert.equal(await openUploads(bucket), 0, 'aborted, and no part landed after');
});

test('a stop while a part is on its way (the producer faster than the network) is a stop: PAUSED cause, not PART_FAILED; a part failing on its own stays PART_FAILED', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-stream');
  const inner = new SdkS3Port(createS3Client());
  const ac = new AbortController();
  const s3 = wrapPort(inner, {
    // The user stops while this part is on the wire: its request ends as the SDK's AbortError.
    uploadPart: async () => {
      ac.abort(new Error('stop'));
      throw toS3RequestError('UploadPart', Object.assign(new Error('The operation was aborted'), { name: 'AbortError' }));
    },
  });
  const source = (async function* () {
    for (let i = 0; i < 4; i++) yield randomBytes(5 * MiB);
  })();
  const up = new StreamUpload({ s3, source, bucket, key: 'inflight', partSize: 5 * MiB, signal: ac.signal });
  await assert.rejects(up.done(), (e: { code?: string; causeCode?: string; message?: string }) => e.code === 'STREAM_FAILED' && e.causeCode === 'PAUSED' && /stopped before it finished/.test(e.message ?? ''));
  assert.equal(await openUploads(bucket), 0);
  // No stop: the same AbortError-free failure of a part is the part's.
  const failing = wrapPort(inner, { uploadPart: async () => Promise.reject(toS3RequestError('UploadPart', Object.assign(new Error('boom'), { name: 'InternalError', $metadata: { httpStatusCode: 400 } }))) });
  const src2 = (async function* () {
    yield randomBytes(6 * MiB);
  })();
  await assert.rejects(new StreamUpload({ s3: failing, source: src2, bucket, key: 'inflight2', partSize: 5 * MiB, retry: { maxAttempts: 1 } }).done(), (e: { code?: string; causeCode?: string }) => e.code === 'STREAM_FAILED' && e.causeCode === 'PART_FAILED');
});

test('a stream cut short (or longer than said) with an expected size fails, its upload aborted, and the good object at the key is untouched; --max-size is a bound a shorter stream may stay under', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-stream');
  const s3 = new SdkS3Port(createS3Client());
  const good = randomBytes(3 * MiB);
  await new StreamUpload({ s3, source: piped(good).source, bucket, key: 'nightly.dump', partSize: MiB, minPartSize: 1 }).done();
  const cut = randomBytes(MiB); // the producer died after 1 MB of a 20 MiB dump
  for (const [data, expectedSize] of [
    [cut, 20 * MiB],
    [randomBytes(3 * MiB + 5), 2 * MiB], // more than said: another stream than the one expected
  ] as const) {
    await assert.rejects(new StreamUpload({ s3, source: piped(data).source, bucket, key: 'nightly.dump', partSize: MiB, minPartSize: 1, expectedSize }).done(), (e: { code?: string; causeCode?: string; message?: string }) => {
      assert.equal(e.code, 'STREAM_FAILED');
      assert.equal(e.causeCode, 'STREAM_SIZE_MISMATCH');
      assert.match(e.message ?? '', /max-size/);
      return true;
    });
    assert.equal(await openUploads(bucket), 0, 'aborted');
    assert.equal(sha256(await getObjectBytes(bucket, 'nightly.dump')), sha256(good), 'the good object is still there');
  }
  const r = await new StreamUpload({ s3, source: piped(cut).source, bucket, key: 'bounded', partSize: MiB, minPartSize: 1, maxSize: 20 * MiB }).done();
  assert.equal(r.size, cut.length);
  assert.equal(sha256(await getObjectBytes(bucket, 'bounded')), sha256(cut));
});

test('CLI: a stream shorter than --expected-size exits 1 and replaces nothing; `upload - s3://bucket/folder/` is refused (a stream has no name), a file to such a URL goes under its own name', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-stream-cli');
  const dir = await tempDir();
  const f = await randomFile(dir, 2 * MiB, 'report.csv');
  const env = cliEnv(dir);
  const run = (args: string[], input: Buffer) => runCliPiped(args, env, input);
  const ok = await run(['upload', '-', `s3://${bucket}/db.dump`], f.bytes);
  assert.equal(ok.code, 0, ok.stderr);
  const short = await run(['upload', '-', `s3://${bucket}/db.dump`, '--expected-size', '20MiB'], f.bytes.subarray(0, MiB));
  assert.equal(short.code, 1, short.stderr);
  assert.match(short.stderr, /STREAM_FAILED.*STREAM_SIZE_MISMATCH/);
  assert.equal(sha256(await getObjectBytes(bucket, 'db.dump')), f.sha256, 'the good object stays');
  const folder = await run(['upload', '-', `s3://${bucket}/backups/`], f.bytes);
  assert.equal(folder.code, 2, folder.stderr);
  const file = await new Promise<number | null>((resolve) => spawn(process.execPath, [BIN, 'upload', f.path, `s3://${bucket}/backups/`], { env, stdio: 'ignore' }).on('exit', resolve));
  assert.equal(file, 0);
  assert.equal(sha256(await getObjectBytes(bucket, 'backups/report.csv')), f.sha256, 'aws s3 cp\'s rule: the file\'s name appended');
  await assert.rejects(getObjectBytes(bucket, 'backups/'), 'no object named "backups/"');
});

test('a stream that goes on past its expected size is stopped there: an endless producer is not read to the end', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-stream');
  let pulled = 0;
  const endless = (async function* () {
    for (;;) {
      pulled += 64 * 1024;
      yield Buffer.alloc(64 * 1024, 7);
    }
  })();
  await assert.rejects(new StreamUpload({ s3: new SdkS3Port(createS3Client()), source: endless, bucket, key: 'endless', partSize: MiB, minPartSize: 1, expectedSize: 2 * MiB }).done(), (e: { causeCode?: string }) => e.causeCode === 'STREAM_SIZE_MISMATCH');
  assert.ok(pulled <= 4 * MiB, `read ${pulled} bytes of a stream announced as 2 MiB`);
  assert.equal(await openUploads(bucket), 0);
});

test('a failed stream says what became of its upload: not "was aborted" when the abort failed (the warning\'s command instead), nor when Complete had landed and an object stays at the key (issue 26, defect 7)', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-stream');
  const inner = new SdkS3Port(createS3Client());
  // A part fails, and so does every abort.
  const stuck = partDenied(inner, 2, {
    abortMultipartUpload: async () => {
      throw new S3RequestError({ operation: 'AbortMultipartUpload', s3Code: 'ECONNRESET' });
    },
  });
  const up = new StreamUpload({ s3: stuck, source: piped(randomBytes(11 * MiB)).source, bucket, key: 'stuck', partSize: 5 * MiB, concurrency: 1 });
  const warnings: string[] = [];
  up.on('warning', (w) => warnings.push(w.code));
  await assert.rejects(up.done(), (e: { code?: string; message?: string; uploadId?: string }) => {
    assert.equal(e.code, 'STREAM_FAILED');
    assert.doesNotMatch(e.message!, /was aborted/);
    assert.match(e.message!, /could not be aborted: remove it with partwise abort s3:\/\/.*--upload-id/);
    assert.doesNotMatch(e.message!, /journal|run the same upload again/, 'a stream has no journal and no resume');
    return true;
  });
  assert.deepEqual(warnings, ['ABORT_FAILED']);
  assert.equal(await openUploads(bucket), 1, 'the upload is indeed still open');
  const ids = (await plainClient().send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads!.map((u) => u.UploadId!);
  for (const id of ids) await inner.abortMultipartUpload({ bucket, key: 'stuck', uploadId: id }, {});
  // Complete lands, then the object cannot be proven (HeadObject shows another checksum): it stays at the key.
  const landed = wrapPort(inner, {
    headObject: async (input, req, signal) => {
      const h = await inner.headObject(input, req, signal);
      return h && { ...h, checksums: { CRC32C: 'AAAAAA==' } };
    },
  });
  const up2 = new StreamUpload({ s3: landed, source: piped(randomBytes(11 * MiB)).source, bucket, key: 'landed', partSize: 5 * MiB });
  await assert.rejects(up2.done(), (e: { code?: string; message?: string }) => {
    assert.equal(e.code, 'STREAM_FAILED');
    assert.doesNotMatch(e.message!, /was aborted/);
    assert.match(e.message!, /was completed: an object stays at s3:\/\/.*landed/);
    return true;
  });
  await getObjectBytes(bucket, 'landed'); // it does
  assert.equal(await openUploads(bucket), 0);
});

test('a stream holds its parts, so with no concurrency given its level is a fixed 4, not searched', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-stream');
  const inner = new SdkS3Port(createS3Client());
  let now = 0;
  let max = 0;
  const s3 = wrapPort(inner, {
    uploadPart: async (input, req, signal) => {
      max = Math.max(max, ++now);
      try {
        await new Promise((r) => setTimeout(r, 30));
        return await inner.uploadPart(input, req, signal);
      } finally {
        now--;
      }
    },
  });
  const data = randomBytes(12 * 5 * MiB + 1);
  const r = await new StreamUpload({ s3, source: piped(data).source, bucket, key: 'held-level', partSize: 5 * MiB }).done();
  assert.equal(r.size, data.length);
  assert.equal(max, 4, 'four parts of the stream in memory at most');
  assert.equal(sha256(await getObjectBytes(bucket, 'held-level')), sha256(data));
});
