/**
 * Jobs, the tree walk: every entry a folder job meets ends in exactly one outcome (uploaded,
 * already there, excluded, not a regular file, or failed with its reason), the counts add up to
 * what the walk met, and the exit code is 0 only when nothing failed or went unread. On the local
 * RGW, with the command run as a user whom permissions bind.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { FolderJob, S3RequestError, SdkS3Port, createS3Client, listFolder } from '../src/index.ts';
import { wrapPort } from './helpers/ports.ts';
import { cliEnv, jsonLines, runCliUnprivileged } from './helpers/cli.ts';
import { countingClient, getObjectBytes, loadS3Env, makeBucket, plainClient, tempDir } from './helpers/s3.ts';

const MiB = 1024 * 1024;

/** A path whose last name is raw bytes (not valid UTF-8, as in a Latin-1 archive). */
const raw = (dir: string, name: number[]) => Buffer.concat([Buffer.from(`${dir}/`), Buffer.from(name)]);

async function keysUnder(bucket: string, prefix: string): Promise<string[]> {
  return ((await plainClient().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))).Contents ?? []).map((o) => o.Key!).sort();
}

/** a.txt, x\xff beside x\uFFFD, a folder with a non-UTF-8 name, a symlink, a FIFO, two exclusions, an unreadable folder and file. */
async function mixedTree(): Promise<string> {
  const dir = await tempDir();
  await writeFile(join(dir, 'a.txt'), 'alpha');
  await writeFile(raw(dir, [0x78, 0xff]), 'latin-1 name');
  await writeFile(join(dir, 'x\uFFFD'), 'replacement character');
  await mkdir(raw(dir, [0x62, 0x61, 0x64, 0xfe]));
  await writeFile(Buffer.concat([raw(dir, [0x62, 0x61, 0x64, 0xfe]), Buffer.from('/inner.txt')]), 'inside a non-UTF-8 folder');
  await symlink(join(dir, 'a.txt'), join(dir, 'link'));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  await writeFile(join(dir, 'skip.tmp'), 'excluded');
  await mkdir(join(dir, 'node_modules', 'pkg'), { recursive: true });
  await writeFile(join(dir, 'node_modules', 'pkg', 'index.js'), 'excluded folder');
  await mkdir(join(dir, 'locked'));
  await writeFile(join(dir, 'locked', 'secret.txt'), 'in an unreadable folder');
  await chmod(join(dir, 'locked'), 0o000);
  await writeFile(join(dir, 'noread.txt'), 'unreadable file');
  await chmod(join(dir, 'noread.txt'), 0o000);
  return dir;
}

interface JobComplete {
  event: string;
  entries: number;
  files: number;
  uploaded: number;
  skipped: number;
  failed: number;
  interrupted: number;
  excluded: number;
  notRegular: number;
  unreadable: number;
  outcomes: { file: string; key: string; status: string; error?: { code: string } }[];
}

test('the walk: a non-UTF-8 name is refused by name, never skipped or confused with its look-alike; an unreadable folder and file fail; exclusions and non-regular files are counted; the counts add up; exit 5', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-walk');
  const dir = await mixedTree();
  const env = cliEnv(await tempDir());
  const r = await runCliUnprivileged(['upload', dir, `s3://${bucket}/w/`, '--exclude', '*.tmp', '--exclude', 'node_modules/', '--json'], env);
  assert.equal(r.code, 5, r.stderr);
  const done = jsonLines(r.stdout).at(-1) as unknown as JobComplete;
  assert.equal(done.event, 'job-complete');
  // a.txt, x\xff, x\uFFFD, bad\xfe/, link, fifo, skip.tmp, node_modules/, locked/, noread.txt
  assert.equal(done.entries, 10);
  assert.deepEqual(
    { uploaded: done.uploaded, skipped: done.skipped, failed: done.failed, interrupted: done.interrupted, excluded: done.excluded, notRegular: done.notRegular, unreadable: done.unreadable },
    { uploaded: 2, skipped: 0, failed: 4, interrupted: 0, excluded: 2, notRegular: 2, unreadable: 0 },
  );
  assert.equal(done.uploaded + done.skipped + done.failed + done.interrupted + done.excluded + done.notRegular + done.unreadable, done.entries);
  const failed = new Map(done.outcomes.filter((o) => o.status === 'failed').map((o) => [o.key, o.error?.code]));
  assert.deepEqual([...failed.keys()].sort(), ['w/bad\\xfe/', 'w/locked/', 'w/noread.txt', 'w/x\\xff']);
  assert.equal(failed.get('w/x\\xff'), 'INVALID_KEY');
  assert.equal(failed.get('w/bad\\xfe/'), 'INVALID_KEY');
  assert.equal(failed.get('w/locked/'), 'SOURCE_UNREADABLE');
  assert.equal(failed.get('w/noread.txt'), 'SOURCE_UNREADABLE', 'a small file that cannot be read is said to be so, not UNEXPECTED');
  // Exactly the two readable files, each once; the look-alike is the replacement-character file's own bytes.
  assert.deepEqual(await keysUnder(bucket, 'w/'), ['w/a.txt', 'w/x\uFFFD']);
  assert.equal((await getObjectBytes(bucket, 'w/x\uFFFD')).toString(), 'replacement character');
  assert.equal((await getObjectBytes(bucket, 'w/a.txt')).toString(), 'alpha');

  // --quiet says nothing else, but names every failure on stderr, and the exit code still counts them.
  const quiet = await runCliUnprivileged(['upload', dir, `s3://${bucket}/w/`, '--exclude', '*.tmp', '--exclude', 'node_modules/', '--quiet'], env);
  assert.equal(quiet.code, 5, quiet.stderr);
  assert.equal(quiet.stdout, '');
  for (const name of ['x\\xff', 'bad\\xfe', 'locked', 'noread.txt']) assert.ok(quiet.stderr.includes(name), `${name} named on stderr: ${quiet.stderr}`);
});

test('the walk: an unreadable subfolder is a failure (exit 5), not "Nothing to send"; --skip-unreadable lists and counts it instead (exit 0)', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-walk');
  const dir = await tempDir();
  await writeFile(join(dir, 'a.txt'), 'alpha');
  await mkdir(join(dir, 'private'));
  await writeFile(join(dir, 'private', 'x.txt'), 'hidden');
  await chmod(join(dir, 'private'), 0o000);
  const env = cliEnv(await tempDir());
  const first = await runCliUnprivileged(['upload', dir, `s3://${bucket}/u/`], env);
  assert.equal(first.code, 5, first.stdout + first.stderr);
  assert.match(first.stderr, /failed: .*private.*SOURCE_UNREADABLE/);
  assert.doesNotMatch(first.stdout, /Nothing to send/);
  // Now a.txt is there: the rerun would once have said "Nothing to send" with exit 0.
  const again = await runCliUnprivileged(['upload', dir, `s3://${bucket}/u/`], env);
  assert.equal(again.code, 5, again.stdout + again.stderr);
  assert.doesNotMatch(again.stdout, /Nothing to send/);
  const skip = await runCliUnprivileged(['upload', dir, `s3://${bucket}/u/`, '--skip-unreadable', '--json'], env);
  assert.equal(skip.code, 0, skip.stderr);
  const done = jsonLines(skip.stdout).at(-1) as unknown as JobComplete;
  assert.deepEqual({ entries: done.entries, skipped: done.skipped, unreadable: done.unreadable, failed: done.failed }, { entries: 2, skipped: 1, unreadable: 1, failed: 0 });
  assert.equal(done.outcomes.find((o) => o.key === 'u/private/')?.status, 'unreadable');
});

test('listFolder: names as bytes; an invalid one is reported by name with its bytes escaped, beside its look-alike', async () => {
  const dir = await tempDir();
  await writeFile(raw(dir, [0x78, 0xff]), '1');
  await writeFile(join(dir, 'x\uFFFD'), '2');
  const w = await listFolder(dir, 'p', []);
  assert.deepEqual(w.entries.map((e) => e.key), ['p/x\uFFFD']);
  assert.deepEqual(w.invalid.map((x) => x.path), ['x\\xff']);
  assert.equal(w.met, 2);
});

test('two files mapped to one key are refused up front (INVALID_OPTIONS naming both), before anything is listed or sent', () => {
  assert.throws(
    () => new FolderJob({ s3: new SdkS3Port(createS3Client({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9' })), bucket: 'b', entries: [{ file: '/data/one.bin', key: 'k' }, { file: '/data/two.bin', key: 'k' }, { file: '/data/three.bin', key: 'other' }] }),
    (e: { code?: string; message?: string }) => e.code === 'INVALID_OPTIONS' && /\/data\/one\.bin/.test(e.message ?? '') && /\/data\/two\.bin/.test(e.message ?? '') && /"k"/.test(e.message ?? ''),
  );
  for (const entries of [
    [{ file: '/data/one.bin', key: 'k' }, { file: '/data/one.bin', key: 'k' }], // the same file twice
    [{ file: '/data/one.bin', key: 'backups/' }], // a folder's name
  ]) {
    assert.throws(() => new FolderJob({ s3: new SdkS3Port(createS3Client({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9' })), bucket: 'b', entries }), (e: { code?: string }) => e.code === 'INVALID_OPTIONS', JSON.stringify(entries));
  }
});

test('a multipart file interrupted, then deleted before the rerun: its upload is aborted and its journal removed, and the summary counts it (abandoned)', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-walk');
  const dir = await tempDir();
  const state = await tempDir();
  await writeFile(join(dir, 'big.log'), randomBytes(16 * MiB));
  await writeFile(join(dir, 'small.txt'), 'stays');
  const s3 = new SdkS3Port(countingClient().client);
  const ac = new AbortController();
  const first = new FolderJob({ s3, dir, bucket, prefix: 'rot/', stateDir: state, partSize: 5 * MiB, concurrency: 1, signal: ac.signal });
  first.on('file-event', (e) => {
    if (e.event === 'part-done') ac.abort(new Error('stop'));
  });
  const r1 = await first.done();
  assert.equal(r1.outcomes.find((o) => o.key === 'rot/big.log')?.status, 'interrupted', JSON.stringify(r1.outcomes));
  const open = async () => (await plainClient().send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [];
  assert.equal((await open()).length, 1, 'the interrupted upload is open');
  const journals = async () => (await readdir(state)).filter((n) => n.endsWith('.json'));
  assert.equal((await journals()).length, 1);
  // Log rotation: the file is gone before the next run.
  await rm(join(dir, 'big.log'));
  const job = new FolderJob({ s3, dir, bucket, prefix: 'rot/', stateDir: state, partSize: 5 * MiB });
  const r2 = await job.done();
  assert.equal(r2.failed, 0, JSON.stringify(r2.outcomes));
  assert.equal(r2.abandoned, 1);
  const gone = r2.outcomes.find((o) => o.key === 'rot/big.log');
  assert.equal(gone?.status, 'abandoned');
  assert.match(gone!.how, /aborted/);
  assert.deepEqual(await open(), [], 'no upload left open');
  assert.deepEqual(await journals(), [], 'its journal removed');
  // Said once: the next run has nothing more to say of it.
  const r3 = await new FolderJob({ s3, dir, bucket, prefix: 'rot/', stateDir: state, partSize: 5 * MiB }).done();
  assert.equal(r3.abandoned, 0);
  assert.equal(r3.skipped, 1);
});

/** A folder job interrupted once a part of its one large file is acknowledged; returns what it needs to go on. */
async function interruptedLargeFile(prefix: string) {
  loadS3Env();
  const bucket = await makeBucket('pw-walk');
  const dir = await tempDir();
  const state = await tempDir();
  await writeFile(join(dir, 'big.log'), randomBytes(16 * MiB));
  const s3 = new SdkS3Port(countingClient().client);
  const ac = new AbortController();
  const first = new FolderJob({ s3, dir, bucket, prefix, stateDir: state, partSize: 5 * MiB, concurrency: 1, signal: ac.signal });
  first.on('file-event', (e) => {
    if (e.event === 'part-done') ac.abort(new Error('stop'));
  });
  await first.done();
  const open = async () => (await plainClient().send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [];
  assert.equal((await open()).length, 1);
  return { bucket, dir, state, s3, open };
}

test('an upload of a deleted file that cannot be aborted is a failure (exit 5 material), counted among the entries, and tried again by the next run', async () => {
  const { bucket, dir, state, s3, open } = await interruptedLargeFile('ab/');
  await rm(join(dir, 'big.log'));
  await writeFile(join(dir, 'other.txt'), 'x');
  const denied = wrapPort(s3, {
    abortMultipartUpload: async () => {
      throw new S3RequestError({ operation: 'AbortMultipartUpload', s3Code: 'AccessDenied', httpStatus: 403 });
    },
  });
  const r = await new FolderJob({ s3: denied, dir, bucket, prefix: 'ab/', stateDir: state, partSize: 5 * MiB }).done();
  assert.equal(r.failed, 1, JSON.stringify(r.outcomes));
  assert.equal(r.abandoned, 0);
  assert.equal(r.entries, r.uploaded + r.skipped + r.failed + r.interrupted + r.unreadable + r.excluded + r.notRegular + r.abandoned);
  assert.equal((await open()).length, 1, 'still open');
  const again = await new FolderJob({ s3, dir, bucket, prefix: 'ab/', stateDir: state, partSize: 5 * MiB }).done();
  assert.equal(again.abandoned, 1);
  assert.equal(again.failed, 0);
  assert.deepEqual(await open(), []);
});

test('an interrupted upload of a file now excluded is left alone with UPLOAD_LEFT and the command; one of a file truncated below the part size is aborted before its PutObject', async () => {
  {
    const { bucket, dir, state, s3, open } = await interruptedLargeFile('ex/');
    const job = new FolderJob({ s3, dir, bucket, prefix: 'ex/', stateDir: state, partSize: 5 * MiB, exclude: ['*.log'] });
    const warnings: string[] = [];
    job.on('warning', (w) => warnings.push(`${w.code}: ${w.message}`));
    const r = await job.done();
    assert.equal(r.failed, 0);
    assert.ok(warnings.some((w) => w.startsWith('UPLOAD_LEFT') && w.includes('partwise abort')), warnings.join('\n'));
    assert.equal((await open()).length, 1, 'left alone: the file is still there');
  }
  {
    const { bucket, dir, state, s3, open } = await interruptedLargeFile('tr/');
    await truncate(join(dir, 'big.log'), 1000); // copytruncate log rotation
    const job = new FolderJob({ s3, dir, bucket, prefix: 'tr/', stateDir: state, partSize: 5 * MiB });
    const warnings: string[] = [];
    job.on('warning', (w) => warnings.push(w.code));
    const r = await job.done();
    assert.equal(r.uploaded, 1);
    assert.ok(warnings.includes('FILE_CHANGED'), warnings.join());
    assert.deepEqual(await open(), [], 'the old upload did not outlive the file\'s change');
    assert.deepEqual((await readdir(state)).filter((n) => n.endsWith('.json')), []);
  }
});

test('an excluded entry is never looked at: excluded temp files in a folder that cannot be searched do not fail the job', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-walk');
  const dir = await tempDir();
  await writeFile(join(dir, 'a.txt'), 'alpha');
  await mkdir(join(dir, 'spool'));
  await writeFile(join(dir, 'spool', 'job.tmp'), 'temp');
  await chmod(join(dir, 'spool'), 0o444); // readable (listable), not searchable
  const r = await runCliUnprivileged(['upload', dir, `s3://${bucket}/x/`, '--exclude', '*.tmp', '--json'], cliEnv(await tempDir()));
  assert.equal(r.code, 0, r.stderr);
  const done = jsonLines(r.stdout).at(-1) as unknown as JobComplete;
  assert.deepEqual({ entries: done.entries, uploaded: done.uploaded, excluded: done.excluded, failed: done.failed }, { entries: 2, uploaded: 1, excluded: 1, failed: 0 });
});

test('--fail-fast after a walk failure: the files never started have outcomes too, and the outcomes add up to the counts', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-walk');
  const dir = await tempDir();
  for (let i = 0; i < 4; i++) await writeFile(join(dir, `f${i}.txt`), `file ${i}`);
  await writeFile(raw(dir, [0x62, 0xff]), 'bad name');
  const r = await new FolderJob({ s3: new SdkS3Port(countingClient().client), dir, bucket, prefix: 'ff/', stateDir: await tempDir(), failFast: true }).done();
  assert.equal(r.failed, 5);
  assert.equal(r.outcomes.length, r.entries);
  assert.equal(r.outcomes.filter((o) => o.notStarted).length, 4);
});

test('listFolder: a key over S3\'s 1,024 bytes is refused by name (INVALID_KEY), not sent to fail at the server', async () => {
  const dir = await tempDir();
  let d = dir;
  for (let i = 0; i < 6; i++) {
    d = join(d, 'x'.repeat(200));
    await mkdir(d);
  }
  await writeFile(join(d, 'deep.txt'), 'deep');
  await writeFile(join(dir, 'short.txt'), 'short');
  const w = await listFolder(dir, 'p/', []);
  assert.deepEqual(w.entries.map((e) => e.key), ['p/short.txt']);
  assert.equal(w.invalid.length, 1);
  assert.match(w.invalid[0]!.why, /S3 allows 1024/);
});

test('--skip-unreadable skips only what could not be read: a file the server refuses stays a failure', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-walk');
  const dir = await tempDir();
  await writeFile(join(dir, 'a.txt'), 'alpha');
  await writeFile(join(dir, 'refused.txt'), 'beta');
  const inner = new SdkS3Port(countingClient().client);
  const s3 = wrapPort(inner, {
    putObject: async (input, req, signal) => {
      if (input.key.endsWith('refused.txt')) throw new S3RequestError({ operation: 'PutObject', s3Code: 'AccessDenied', httpStatus: 403 });
      return inner.putObject(input, req, signal);
    },
  });
  const r = await new FolderJob({ s3, dir, bucket, prefix: 's/', stateDir: await tempDir(), skipUnreadable: true }).done();
  assert.deepEqual({ uploaded: r.uploaded, failed: r.failed, unreadable: r.unreadable }, { uploaded: 1, failed: 1, unreadable: 0 });
});

test('shards: the tree of the walk test split over 3 shards, each run alone; every entry (exclusions, links, FIFOs, refused names, unreadable ones) is counted in exactly one shard, and the shards add up to the whole', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-walk');
  const dir = await mixedTree();
  const env = cliEnv(await tempDir());
  const total = { entries: 0, uploaded: 0, failed: 0, excluded: 0, notRegular: 0, unreadable: 0 };
  const failedKeys: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await runCliUnprivileged(['upload', dir, `s3://${bucket}/s/`, '--exclude', '*.tmp', '--exclude', 'node_modules/', '--shard', `${i}/3`, '--json'], env);
    const done = jsonLines(r.stdout).at(-1) as unknown as JobComplete;
    assert.equal(done.event, 'job-complete', r.stderr);
    assert.equal(r.code, done.failed ? 5 : 0, `shard ${i}: exit code tells of its failures`);
    for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += done[k];
    failedKeys.push(...done.outcomes.filter((o) => o.status === 'failed').map((o) => o.key));
  }
  assert.deepEqual(total, { entries: 10, uploaded: 2, failed: 4, excluded: 2, notRegular: 2, unreadable: 0 });
  assert.deepEqual(failedKeys.sort(), ['s/bad\\xfe/', 's/locked/', 's/noread.txt', 's/x\\xff']);
  assert.deepEqual(await keysUnder(bucket, 's/'), ['s/a.txt', 's/x\uFFFD']);
});

test('shards of a list of files (entries): each entry sent by exactly one shard, the union is the list', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-walk');
  const dir = await tempDir();
  const entries = await Promise.all(
    Array.from({ length: 12 }, async (_, i) => {
      const file = join(dir, `e${i}.bin`);
      await writeFile(file, randomBytes(100 + i));
      return { file, key: `list/e${i}.bin` };
    }),
  );
  const s3 = new SdkS3Port(plainClient());
  const state = await tempDir();
  const sent: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await new FolderJob({ s3, bucket, entries, stateDir: state, shard: { index: i, count: 3 } }).done();
    assert.equal(r.entries, r.uploaded);
    sent.push(...r.outcomes.map((o) => o.key));
  }
  assert.deepEqual(sent.sort(), entries.map((e) => e.key).sort());
  assert.deepEqual(await keysUnder(bucket, 'list/'), entries.map((e) => e.key).sort());
});
