/**
 * Resume with no local state (the discovery issue), on the local RADOS Gateway: an upload already on
 * the server is found, proven to hold this file part by part, and adopted; uploads of other bytes
 * are reported as stale and never adopted. Lifecycle abort dates are shown on the emulator (RGW
 * does not report them).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { KiB, MiB, PartwiseError, Upload, createUpload, type EngineOptions } from '../src/index.ts';
import type { DiscoveryReport } from '../src/upload/events.ts';
import { inferLayout } from '../src/upload/discover.ts';
import { SdkS3Port, createS3Client } from '../src/s3/adapter.ts';
import { emulatorClient } from './emulator/client.ts';
import { S3Emulator } from './emulator/server.ts';
import { cliEnv, jsonLines, runCli } from './helpers/cli.ts';
import { uploadThenPause } from './helpers/pause.ts';
import { countingClient, getObjectBytes, loadS3Env, makeBucket, plainClient, randomFile, sha256, tempDir } from './helpers/s3.ts';

const partSize = 5 * MiB;

test('inferLayout: the part size an upload was made with, or why its parts cannot be this file', () => {
  const F = 23 * MiB; // 5 parts of 5 MiB: 5,5,5,5,3
  const p = (n: number, size: number) => ({ partNumber: n, size });
  const rows: { name: string; parts: ReturnType<typeof p>[]; want: { partSize: number; partCount: number } | RegExp }[] = [
    { name: 'first parts', parts: [p(1, 5 * MiB), p(2, 5 * MiB)], want: { partSize: 5 * MiB, partCount: 5 } },
    { name: 'with the last part', parts: [p(1, 5 * MiB), p(5, 3 * MiB)], want: { partSize: 5 * MiB, partCount: 5 } },
    { name: 'another part size', parts: [p(1, 8 * MiB), p(2, 8 * MiB)], want: { partSize: 8 * MiB, partCount: 3 } },
    { name: 'no parts', parts: [], want: /no parts/ },
    { name: 'a part beyond the file', parts: [p(1, 5 * MiB), p(7, 5 * MiB)], want: /beyond/ },
    { name: 'a middle part of the wrong size', parts: [p(1, 5 * MiB), p(2, 4 * MiB)], want: /part 2 has/ },
    { name: 'a last part of the wrong size', parts: [p(1, 5 * MiB), p(5, 2 * MiB)], want: /part 5 has/ },
  ];
  for (const r of rows) {
    const got = inferLayout(r.parts, F);
    if (r.want instanceof RegExp) assert.match('why' in got ? got.why : 'no refusal', r.want, r.name);
    else assert.deepEqual(got, r.want, r.name);
  }
});

describe('discovery against the local RADOS Gateway', () => {
  let bucket: string;
  before(async () => {
    loadS3Env();
    bucket = await makeBucket('pw-discover');
  });

  const opts = (f: { path: string }, dir: string, key: string, extra: Partial<EngineOptions> = {}) => ({ file: f.path, bucket, key, partSize, stateDir: dir, ...extra });
  const dropJournals = async (dir: string) => {
    for (const n of await readdir(dir)) if (n.endsWith('.json')) await rm(join(dir, n));
  };
  const openUploads = async (key: string) => ((await plainClient().send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }))).Uploads ?? []).filter((u) => u.Key === key).map((u) => u.UploadId!);

  for (const otherPartSize of [undefined, 8 * MiB]) {
    test(`the journal lost after a stop mid-upload: the next run adopts the upload and sends only the missing parts${otherPartSize ? ' (its part size wins over --part-size, with a notice)' : ''}`, async () => {
      const dir = await tempDir();
      const f = await randomFile(dir, 4 * partSize + 1234); // 5 parts
      const key = `adopt/lost-journal-${otherPartSize ?? 'same'}`;
      const { uploadId, done } = await uploadThenPause(opts(f, dir, key), 3);
      await dropJournals(dir);
      const { client, counts, partNumbers } = countingClient();
      const up = createUpload({ client, ...opts(f, dir, key, { discover: true, ...(otherPartSize ? { partSize: otherPartSize } : {}) }) });
      let report: DiscoveryReport | undefined;
      const warnings: string[] = [];
      up.on('discover', (d) => (report = d));
      up.on('warning', (w) => warnings.push(w.code));
      const r = await up.done();
      assert.equal(r.uploadId, uploadId, 'adopted, not started anew');
      assert.equal(report!.chosen, uploadId);
      assert.match(report!.why, /all 3 of its parts match this file/);
      assert.equal(counts.CreateMultipartUpload, undefined, 'no CreateMultipartUpload');
      assert.deepEqual([...partNumbers].sort(), [1, 2, 3, 4, 5].filter((n) => !done.includes(n)), 'only the missing parts sent');
      assert.equal(r.partsSkipped, 3);
      if (otherPartSize) assert.ok(warnings.includes('PART_SIZE_KEPT'), warnings.join(','));
      assert.equal(sha256(await getObjectBytes(bucket, key)), f.sha256);
      assert.deepEqual(await openUploads(key), []);
    });
  }

  test('two uploads of the key, one of other bytes: the matching one is adopted, the other reported stale with the command that aborts it', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 3 * partSize + 5, 'mine.bin');
    const other = await randomFile(dir, 3 * partSize + 5, 'other.bin'); // same size, other bytes
    const key = 'adopt/two-candidates';
    const theirs = await uploadThenPause(opts(other, dir, key), 2);
    const mine = await uploadThenPause(opts(f, dir, key), 2);
    await dropJournals(dir);
    const env = cliEnv(dir);
    const status = await runCli(['status', f.path, `s3://${bucket}/${key}`], env);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`An upload would adopt upload ${mine.uploadId}`));
    assert.ok(status.stdout.includes(`partwise abort s3://${bucket}/${key} --upload-id ${theirs.uploadId}`), status.stdout);
    const r = await runCli(['upload', f.path, `s3://${bucket}/${key}`, '--part-size', '5MiB', '--json'], env);
    assert.equal(r.code, 0, r.stderr);
    const events = jsonLines(r.stdout);
    const d = events.find((e) => e.event === 'discover') as unknown as DiscoveryReport;
    assert.equal(d.chosen, mine.uploadId);
    const stale = d.candidates.find((c) => c.uploadId === theirs.uploadId)!;
    assert.equal(stale.status, 'stale');
    assert.match(stale.why, /part 1: (checksum|etag)-mismatch/);
    assert.equal((events.at(-1) as { uploadId?: string }).uploadId, mine.uploadId);
    assert.equal(sha256(await getObjectBytes(bucket, key)), f.sha256);
    assert.deepEqual(await openUploads(key), [theirs.uploadId], 'the stale upload is left for its owner (or abort)');
  });

  test('only an upload of other bytes: a new upload, and the stale one reported (never adopted)', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 2 * partSize + 5, 'mine.bin');
    const other = await randomFile(dir, 2 * partSize + 5, 'other.bin');
    const key = 'adopt/only-stale';
    const theirs = await uploadThenPause(opts(other, dir, key), 1);
    await dropJournals(dir);
    const { client, counts } = countingClient();
    const up = createUpload({ client, ...opts(f, dir, key, { discover: true }) });
    let report: DiscoveryReport | undefined;
    up.on('discover', (d) => (report = d));
    const r = await up.done();
    assert.notEqual(r.uploadId, theirs.uploadId);
    assert.equal(counts.CreateMultipartUpload, 1);
    assert.equal(report!.chosen, undefined);
    assert.match(report!.why, /none of the 1 open upload/);
    assert.equal(report!.candidates[0]!.status, 'stale');
    assert.equal(sha256(await getObjectBytes(bucket, key)), f.sha256);
  });

  test('--upload-id adopts a named upload with the same proof, and refuses one of other bytes', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 2 * partSize + 5, 'mine.bin');
    const other = await randomFile(dir, 2 * partSize + 5, 'other.bin');
    const key = 'adopt/explicit';
    const theirs = await uploadThenPause(opts(other, dir, key), 1);
    const mine = await uploadThenPause(opts(f, dir, key), 1);
    await dropJournals(dir);
    await assert.rejects(createUpload(opts(f, dir, key, { uploadId: theirs.uploadId })).done(), (e: unknown) => e instanceof PartwiseError && e.code === 'UPLOAD_NOT_ADOPTABLE' && e.message.includes(`--upload-id ${theirs.uploadId}`));
    const r = await createUpload(opts(f, dir, key, { uploadId: mine.uploadId })).done();
    assert.equal(r.uploadId, mine.uploadId);
    assert.equal(sha256(await getObjectBytes(bucket, key)), f.sha256);
  });

  test('the library does not look unless asked (discover: false is its default)', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 2 * partSize + 5);
    const key = 'adopt/library-default';
    const first = await uploadThenPause(opts(f, dir, key), 1);
    await dropJournals(dir);
    const { client, counts } = countingClient();
    const r = await createUpload({ client, ...opts(f, dir, key) }).done();
    assert.notEqual(r.uploadId, first.uploadId);
    assert.equal(counts.ListMultipartUploads, undefined);
    assert.deepEqual(await openUploads(key), [first.uploadId], 'left for `partwise ls` / abort');
  });

  test('no journal, no upload to adopt, and the object at the key already is this file: "already complete", nothing sent (--fresh sends it anyway)', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 2 * partSize + 5);
    const key = 'adopt/already-there';
    const env = cliEnv(dir);
    const first = await runCli(['upload', f.path, `s3://${bucket}/${key}`, '--part-size', '5MiB', '--json'], env);
    assert.equal(first.code, 0, first.stderr);
    const again = await runCli(['upload', f.path, `s3://${bucket}/${key}`, '--json'], env);
    assert.equal(again.code, 0, again.stderr);
    const last = jsonLines(again.stdout).at(-1)!;
    assert.equal(last.event, 'complete');
    assert.equal(last.alreadyComplete, true);
    assert.equal(last.bytesSent, 0);
    assert.equal(last.verificationLevel, 'full-object-checksum');
    assert.equal(jsonLines(again.stdout).filter((e) => e.event === 'part-start').length, 0);
    // Another file of the same size at that key is not "already there".
    const other = await randomFile(dir, 2 * partSize + 5, 'other.bin');
    const o = await runCli(['upload', other.path, `s3://${bucket}/${key}`, '--json'], env);
    assert.equal(o.code, 0, o.stderr);
    assert.equal(jsonLines(o.stdout).at(-1)!.alreadyComplete, false);
    assert.equal(sha256(await getObjectBytes(bucket, key)), other.sha256);
    const fresh = await runCli(['upload', other.path, `s3://${bucket}/${key}`, '--fresh', '--json'], env);
    assert.equal(jsonLines(fresh.stdout).at(-1)!.alreadyComplete, false, '--fresh uploads anyway');
  });

  test('abort --older-than: a dry run first, then only the old uploads under the prefix go; young ones stay', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, partSize + 5);
    const old = await uploadThenPause(opts(f, dir, 'sweep/old.bin'), 1);
    // Ages far apart: the young one must stay under the limit through three command runs on a loaded machine.
    await new Promise((r) => setTimeout(r, 7500));
    const young = await uploadThenPause(opts(f, dir, 'sweep/young.bin'), 1);
    const env = cliEnv(dir);
    const dry = await runCli(['abort', `s3://${bucket}/sweep/`, '--older-than', '6s', '--dry-run'], env);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`Would abort upload ${old.uploadId}`));
    assert.ok(!dry.stdout.includes(young.uploadId));
    assert.deepEqual(await openUploads('sweep/old.bin'), [old.uploadId], 'the dry run changed nothing');
    const ls = await runCli(['ls', `s3://${bucket}/sweep/`], env);
    assert.match(ls.stdout, /AGE/);
    const real = await runCli(['abort', `s3://${bucket}/sweep/`, '--older-than', '6s'], env);
    assert.equal(real.code, 0, real.stderr);
    assert.match(real.stdout, /Aborted 1 upload\(s\) older than 6s .* 1 younger/);
    assert.deepEqual(await openUploads('sweep/old.bin'), []);
    assert.deepEqual(await openUploads('sweep/young.bin'), [young.uploadId]);
    const bad = await runCli(['abort', `s3://${bucket}/sweep/`, '--older-than', 'soon'], env);
    assert.equal(bad.code, 2);
  });
});

describe('discovery and lifecycle abort dates (emulator: RGW reports none)', () => {
  let emu: S3Emulator;
  const Bucket = 'life';
  const credentials = { accessKeyId: 'emulator', secretAccessKey: 'emulator-secret' };
  before(async () => {
    emu = await S3Emulator.start({ minPartSize: 1024, abortAfterMs: 7 * 86_400_000 });
    await emulatorClient(emu.endpoint).send(new CreateBucketCommand({ Bucket }));
  });
  after(() => emu.close());

  test('an upload whose abort date has passed is not adopted; ls shows start, age and abort date', async () => {
    const dir = await tempDir();
    const path = join(dir, 'f.bin');
    await writeFile(path, randomBytes(5 * KiB + 3));
    const s3 = new SdkS3Port(createS3Client({ endpoint: emu.endpoint, region: 'us-east-1', credentials }));
    const o = { s3, file: path, bucket: Bucket, key: 'k', partSize: 1024, minPartSize: 1, stateDir: dir };
    const { uploadId } = await uploadThenPause(o, 2);
    emu.backdate(uploadId, 8 * 86_400_000); // started 8 days ago; the rule aborts after 7
    for (const n of await readdir(dir)) if (n.endsWith('.json')) await rm(join(dir, n));
    const env = { ...process.env, AWS_ACCESS_KEY_ID: 'emulator', AWS_SECRET_ACCESS_KEY: 'emulator-secret', PARTWISE_STATE_DIR: dir };
    const ls = await runCli(['ls', `s3://${Bucket}/`, '--endpoint', emu.endpoint, '--region', 'us-east-1', '--json'], env);
    assert.equal(ls.code, 0, ls.stderr);
    const row = jsonLines(ls.stdout)[0]!;
    assert.equal(row.uploadId, uploadId);
    assert.ok((row.ageSeconds as number) >= 8 * 86_400 - 60);
    assert.equal(Date.parse(row.abortDate as string), Math.floor((Date.parse(row.initiated as string) + 7 * 86_400_000) / 1000) * 1000);
    const up = new Upload({ ...o, discover: true });
    let report: DiscoveryReport | undefined;
    up.on('discover', (d) => (report = d));
    const r = await up.done();
    assert.notEqual(r.uploadId, uploadId);
    assert.equal(report!.candidates[0]!.status, 'expired');
    assert.match(report!.candidates[0]!.why, /abort date .* has passed/);
  });

  const emuPort = () => new SdkS3Port(createS3Client({ endpoint: emu.endpoint, region: 'us-east-1', credentials }));
  const emptyUpload = async (key: string) => (await emuPort().createMultipartUpload({ bucket: Bucket, key }, {})).uploadId;
  const fileIn = async (dir: string, size = 5 * KiB + 3) => {
    const path = join(dir, 'f.bin');
    await writeFile(path, randomBytes(size));
    return path;
  };
  const intentFor = async (dir: string, path: string, key: string, createdAt: Date) => {
    const { journalPathFor } = await import('../src/local/journal.ts');
    const { realpath } = await import('node:fs/promises');
    const jp = journalPathFor(dir, { endpoint: emu.endpoint, bucket: Bucket, key, sourcePath: await realpath(path) });
    await writeFile(`${jp}.intent`, JSON.stringify({ bucket: Bucket, key, createdAt: createdAt.toISOString() }));
  };

  test('an empty upload is adopted by nobody: without an intent it is left alone; with one, only the single one started about then is ours (aborted), whatever the clock skew within 15 minutes', async () => {
    // Someone else's empty upload, and no intent here: left alone.
    const dir = await tempDir();
    const path = await fileIn(dir);
    const foreign = await emptyUpload('empty/foreign');
    const a = new Upload({ s3: emuPort(), file: path, bucket: Bucket, key: 'empty/foreign', partSize: 1024, minPartSize: 1, stateDir: dir, discover: true });
    const ra = await a.done();
    assert.notEqual(ra.uploadId, foreign);
    assert.ok(emu.uploadIds().includes(foreign), "another's empty upload is not touched");
    // An intent from a day ago does not make a new foreign upload ours.
    const dir2 = await tempDir();
    const path2 = await fileIn(dir2);
    const foreign2 = await emptyUpload('empty/old-intent');
    await intentFor(dir2, path2, 'empty/old-intent', new Date(Date.now() - 86_400_000));
    await new Upload({ s3: emuPort(), file: path2, bucket: Bucket, key: 'empty/old-intent', partSize: 1024, minPartSize: 1, stateDir: dir2 }).done();
    assert.ok(emu.uploadIds().includes(foreign2));
    // Ours, with the server's clock two minutes behind: found and aborted, no orphan.
    const dir3 = await tempDir();
    const path3 = await fileIn(dir3);
    await intentFor(dir3, path3, 'empty/skewed', new Date());
    const ours = await emptyUpload('empty/skewed');
    emu.backdate(ours, 120_000);
    const c = new Upload({ s3: emuPort(), file: path3, bucket: Bucket, key: 'empty/skewed', partSize: 1024, minPartSize: 1, stateDir: dir3 });
    let report: DiscoveryReport | undefined;
    c.on('discover', (d) => (report = d));
    await c.done();
    assert.deepEqual(report!.aborted, [ours]);
    assert.ok(!emu.uploadIds().includes(ours), 'our orphan aborted');
    // Two empty uploads near the intent: ambiguous, neither touched.
    const dir4 = await tempDir();
    const path4 = await fileIn(dir4);
    await intentFor(dir4, path4, 'empty/two', new Date());
    const [x, y] = [await emptyUpload('empty/two'), await emptyUpload('empty/two')];
    await new Upload({ s3: emuPort(), file: path4, bucket: Bucket, key: 'empty/two', partSize: 1024, minPartSize: 1, stateDir: dir4 }).done();
    assert.ok(emu.uploadIds().includes(x) && emu.uploadIds().includes(y));
  });

  test('discovery looks at exactly this key (not keys it is a prefix of), and never adopts parts stored unencrypted for an encrypted upload', async () => {
    const dir = await tempDir();
    const path = await fileIn(dir);
    const s3 = emuPort();
    const o = { s3, file: path, bucket: Bucket, partSize: 1024, minPartSize: 1, stateDir: dir };
    const longer = await uploadThenPause({ ...o, key: 'prefix/k2' }, 2);
    const mine = await uploadThenPause({ ...o, key: 'prefix/k' }, 2);
    for (const n of await readdir(dir)) if (n.endsWith('.json')) await rm(join(dir, n));
    const up = new Upload({ ...o, key: 'prefix/k', discover: true });
    let report: DiscoveryReport | undefined;
    up.on('discover', (d) => (report = d));
    const r = await up.done();
    assert.deepEqual(report!.candidates.map((c) => c.uploadId), [mine.uploadId], 'prefix/k2 is not a candidate for prefix/k');
    assert.equal(r.uploadId, mine.uploadId);
    assert.ok(emu.uploadIds().includes(longer.uploadId));
    // A plain upload, then the same file asked for with SSE-C: not adopted, and a plain object already there is not "already there".
    const dir2 = await tempDir();
    const path2 = await fileIn(dir2);
    const plain = await uploadThenPause({ s3, file: path2, bucket: Bucket, key: 'sse/plain', partSize: 1024, minPartSize: 1, stateDir: dir2 }, 2);
    for (const n of await readdir(dir2)) if (n.endsWith('.json')) await rm(join(dir2, n));
    const sseCustomerKey = randomBytes(32);
    const enc = new Upload({ s3, file: path2, bucket: Bucket, key: 'sse/plain', partSize: 1024, minPartSize: 1, stateDir: dir2, discover: true, sseCustomerKey });
    let d2: DiscoveryReport | undefined;
    enc.on('discover', (d) => (d2 = d));
    const r2 = await enc.done();
    assert.notEqual(r2.uploadId, plain.uploadId);
    assert.match(d2!.candidates[0]!.why, /not encrypted as this upload asks/);
    const dir3 = await tempDir();
    const path3 = await fileIn(dir3);
    await new Upload({ s3, file: path3, bucket: Bucket, key: 'sse/present', partSize: 1024, minPartSize: 1, stateDir: dir3 }).done();
    const again = await new Upload({ s3, file: path3, bucket: Bucket, key: 'sse/present', partSize: 1024, minPartSize: 1, stateDir: dir3, discover: true, sseCustomerKey }).done();
    assert.equal(again.alreadyComplete, false, 'a plain object is not the encrypted upload asked for');
  });
});
