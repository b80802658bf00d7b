/**
 * Folders as one resumable job, on the local RGW: keys from relative paths, exclusions and the
 * symlink rule, small files by PutObject and large ones by parts under one budget, a rerun that
 * sends nothing, changed and new files picked up, a SIGKILL mid-job then a rerun with every object
 * identical, failures that do not stop the others (exit 5) unless --fail-fast.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { FolderJob, listFolder } from '../src/index.ts';
import { failsEveryFile } from '../src/jobs/folder-job.ts';
import { jobSummaryLine } from '../src/cli/render.ts';
import { S3RequestError } from '../src/core/errors.ts';
import { globMatcher } from '../src/core/glob.ts';
import { SdkS3Port } from '../src/s3/adapter.ts';
import { BIN, cliEnv, jsonLines, runCli, runCliUnprivileged } from './helpers/cli.ts';
import { wrapPort } from './helpers/ports.ts';
import type { LimitFunction } from 'p-limit';
import { poolFor } from '../src/local/buffer-pool.ts';
import { ARENA_BYTES } from '../src/local/file-source.ts';
import type { PartBody } from '../src/s3/port.ts';
import { countingClient, getObjectBytes, loadS3Env, makeBucket, plainClient, sha256, tempDir } from './helpers/s3.ts';

const MiB = 1024 * 1024;

test('globMatcher: names at any depth without a slash, paths with one, ** across folders', () => {
  const rows: [string[], string, boolean][] = [
    [['*.tmp'], 'a.tmp', true],
    [['*.tmp'], 'deep/down/a.tmp', true],
    [['*.tmp'], 'a.tmpx', false],
    [['.git'], 'src/.git', true],
    [['logs/**'], 'logs/2026/x.log', true],
    [['logs/**'], 'app/logs/x.log', false],
    [['build/*.o'], 'build/a.o', true],
    [['build/*.o'], 'build/sub/a.o', false],
    [['**/cache/*'], 'a/b/cache/x', true],
    [['**/cache/*'], 'cache/x', true],
    [['file?.txt'], 'file1.txt', true],
    [['file?.txt'], 'file10.txt', false],
    [['[ab].bin'], 'a.bin', true],
    [['[!ab].bin'], 'a.bin', false],
    [['a+b(1).txt'], 'a+b(1).txt', true],
    [['\\*.txt'], '*.txt', true],
    [['\\*.txt'], 'a.txt', false],
    // A ']' first in a class is a member, as in POSIX shells; a class never matches the separator.
    [['[]]x'], ']x', true],
    [['[]a]x'], 'ax', true],
    [['[!]]x'], ']x', false],
    [['[!]]x'], 'bx', true],
    [['a[!x]b'], 'a/b', false],
    // '^' negates like '!' (bash, git's wildmatch); '\\' escapes inside a class too.
    [['[^a].bin'], 'b.bin', true],
    [['[^a].bin'], 'a.bin', false],
    [['[\\]]x'], ']x', true],
    [['[\\]]x'], '\\]x', false],
    [['[\\-a]'], '-', true],
    [['[\\-!]'], '!', true],
    [['[\\d]'], '5', false],
    [['[\\d]'], 'd', true],
  ];
  for (const [patterns, path, want] of rows) assert.equal(globMatcher(patterns)(path), want, `${patterns} ~ ${path}`);
  // A trailing slash: folders only, as in .gitignore.
  assert.equal(globMatcher(['node_modules/'])('a/node_modules', true), true);
  assert.equal(globMatcher(['node_modules/'])('a/node_modules', false), false);
  assert.throws(() => globMatcher(['[z-a]']), (e: { code?: string }) => e.code === 'INVALID_OPTIONS');
});

async function makeTree(root: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>([
    ['a.txt', randomBytes(1000)],
    ['empty.bin', Buffer.alloc(0)],
    ['sub/b.json', randomBytes(70 * 1024)],
    ['sub/deeper/c.bin', randomBytes(2 * MiB)],
    ['sub/deeper/large.bin', randomBytes(11 * MiB + 5)],
    ['big.tar', randomBytes(6 * MiB)],
    ['skip/me.tmp', randomBytes(10)],
    ['x.tmp', randomBytes(10)],
  ]);
  for (const [rel, data] of files) {
    await mkdir(join(root, rel, '..'), { recursive: true });
    await writeFile(join(root, rel), data);
  }
  await symlink(join(root, 'a.txt'), join(root, 'link-to-a'));
  return files;
}

async function keysIn(bucket: string): Promise<string[]> {
  return ((await plainClient().send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => o.Key!).sort();
}

test('listFolder: keys are prefix + relative path, exclusions prune, symlinks are listed as not read', async () => {
  const dir = await tempDir();
  await makeTree(dir);
  const { entries, notRead } = await listFolder(dir, 'backups/day1', ['*.tmp']);
  assert.deepEqual(entries.map((e) => e.key), ['backups/day1/a.txt', 'backups/day1/big.tar', 'backups/day1/empty.bin', 'backups/day1/sub/b.json', 'backups/day1/sub/deeper/c.bin', 'backups/day1/sub/deeper/large.bin']);
  assert.deepEqual(notRead, [{ path: 'link-to-a', why: 'symbolic link (not followed)' }]);
});

test('a folder job: every file identical under its key, small ones by PutObject, large ones by parts; a rerun sends nothing; a changed and a new file are picked up', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-folder');
  const dir = await tempDir();
  const state = await tempDir();
  const files = await makeTree(dir);
  const run = async () => {
    const { client, counts } = countingClient();
    const job = new FolderJob({ s3: new SdkS3Port(client), dir, prefix: 'p/', exclude: ['*.tmp'], bucket, stateDir: state, partSize: 5 * MiB, concurrency: 3 });
    return { r: await job.done(), counts };
  };
  const first = await run();
  assert.equal(first.r.files, 6);
  assert.equal(first.r.uploaded, 6);
  assert.equal(first.r.failed, 0);
  assert.equal(first.counts.PutObject, 4, 'a.txt, empty.bin, b.json, c.bin: one request each');
  assert.equal(first.counts.CreateMultipartUpload, 2, 'big.tar and large.bin');
  assert.deepEqual(await keysIn(bucket), ['p/a.txt', 'p/big.tar', 'p/empty.bin', 'p/sub/b.json', 'p/sub/deeper/c.bin', 'p/sub/deeper/large.bin']);
  for (const [rel, data] of files) if (!rel.endsWith('.tmp')) assert.equal(sha256(await getObjectBytes(bucket, `p/${rel}`)), sha256(data), rel);
  assert.ok(first.r.outcomes.find((o) => o.key === 'p/a.txt')!.how.includes('CRC32C'));

  const again = await run();
  assert.equal(again.r.uploaded, 0);
  assert.equal(again.r.skipped, 6);
  assert.equal(again.r.bytesSent, 0);
  assert.equal(again.counts.PutObject, undefined);
  assert.equal(again.counts.UploadPart, undefined);
  assert.equal(again.counts.HeadObject, 6, 'each finished file confirmed by its stored checksum');

  const changed = randomBytes(1000);
  await writeFile(join(dir, 'a.txt'), changed);
  await writeFile(join(dir, 'sub/new.txt'), 'new');
  const third = await run();
  assert.equal(third.r.uploaded, 2);
  assert.equal(third.r.skipped, 5);
  assert.equal(sha256(await getObjectBytes(bucket, 'p/a.txt')), sha256(changed));
  assert.equal((await getObjectBytes(bucket, 'p/sub/new.txt')).toString(), 'new');

  // Replaced on the server behind the job's back: the stored checksum no longer matches, so it goes again.
  // (same size: only the checksum tells)
  await plainClient().send(new PutObjectCommand({ Bucket: bucket, Key: 'p/sub/b.json', Body: randomBytes(70 * 1024) }));
  const fourth = await run();
  assert.equal(fourth.r.uploaded, 1);
  assert.equal(sha256(await getObjectBytes(bucket, 'p/sub/b.json')), sha256(files.get('sub/b.json')!));
});

test('a small file whose stored checksum the server reports differently fails (not reported uploaded)', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-folder');
  const dir = await tempDir();
  await writeFile(join(dir, 'one.bin'), randomBytes(5000));
  const inner = new SdkS3Port(countingClient().client);
  const lying = wrapPort(inner, {
    putObject: async (input, req, signal) => ({ ...(await inner.putObject(input, req, signal)), checksum: 'AAAAAA==' }),
  });
  const r = await new FolderJob({ s3: lying, dir, bucket, stateDir: await tempDir() }).done();
  assert.equal(r.uploaded, 0);
  assert.equal(r.failed, 1);
  assert.equal(r.outcomes[0]!.error?.code, 'UNVERIFIABLE');
});

test('a failed file does not stop the others; failFast stops starting new ones', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-folder');
  const dir = await tempDir();
  for (let i = 0; i < 6; i++) await writeFile(join(dir, `f${i}.bin`), randomBytes(1000 + i));
  const inner = new SdkS3Port(countingClient().client);
  const failing = wrapPort(inner, {
    putObject: async (input, req, signal) => {
      if (input.key === 'f1.bin') throw new S3RequestError({ operation: 'PutObject', s3Code: 'AccessDenied', httpStatus: 403, message: 'denied' });
      return inner.putObject(input, req, signal);
    },
  });
  const r = await new FolderJob({ s3: failing, dir, bucket, stateDir: await tempDir(), concurrency: 1 }).done();
  assert.equal(r.failed, 1);
  assert.equal(r.uploaded, 5);
  const bad = r.outcomes.find((o) => o.status === 'failed')!;
  assert.equal(bad.key, 'f1.bin');
  assert.equal(bad.error?.code, 'S3_REQUEST_FAILED');
  const ff = await new FolderJob({ s3: failing, dir, bucket: await makeBucket('pw-folder'), stateDir: await tempDir(), concurrency: 1, failFast: true }).done();
  assert.equal(ff.uploaded, 1, 'f0 only: f1 failed, nothing after it started');
  assert.equal(ff.failed, 5);
});

test('a file that fails after the server took some of it counts what the server acknowledged as sent', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-folder');
  const dir = await tempDir();
  await writeFile(join(dir, 'big.bin'), randomBytes(15 * MiB));
  await writeFile(join(dir, 'small.bin'), randomBytes(1000));
  const inner = new SdkS3Port(countingClient().client);
  let parts = 0;
  const failing = wrapPort(inner, {
    // Part 1 lands; part 2 is refused for good.
    uploadPart: async (input, req, signal) => {
      if (++parts === 2) throw new S3RequestError({ operation: 'UploadPart', s3Code: 'AccessDenied', httpStatus: 403, message: 'denied' });
      return inner.uploadPart(input, req, signal);
    },
    // The small file is stored, but the server reports another checksum than the one sent: not proven.
    putObject: async (input, req, signal) => ({ ...(await inner.putObject(input, req, signal)), checksum: 'AAAAAA==' }),
  });
  const r = await new FolderJob({ s3: failing, dir, bucket, stateDir: await tempDir(), partSize: 5 * MiB, concurrency: 1 }).done();
  assert.equal(r.failed, 2, JSON.stringify(r.outcomes));
  const by = new Map(r.outcomes.map((o) => [o.key, o]));
  assert.equal(by.get('big.bin')!.bytesSent, 5 * MiB, 'part 1 went up before part 2 was refused');
  assert.equal(by.get('small.bin')!.error?.code, 'UNVERIFIABLE');
  assert.equal(by.get('small.bin')!.bytesSent, 1000, 'the server took the body, unproven');
  assert.equal(r.bytesSent, 5 * MiB + 1000);
});

test('CLI: a folder job killed mid-way (SIGKILL) and rerun: every object identical, nothing left open; a rerun says nothing to send; exit 5 when a file fails', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-folder-cli');
  const dir = await tempDir();
  const files = new Map<string, Buffer>();
  for (let i = 0; i < 40; i++) files.set(`d${i % 4}/small${i}.bin`, randomBytes(200 * 1024 + i));
  for (let i = 0; i < 3; i++) files.set(`large${i}.bin`, randomBytes(12 * MiB + i));
  for (const [rel, data] of files) {
    await mkdir(join(dir, rel, '..'), { recursive: true });
    await writeFile(join(dir, rel), data);
  }
  const env = { ...cliEnv(await tempDir()) };
  const args = ['upload', dir, `s3://${bucket}/job/`, '--part-size', '5MiB', '--concurrency', '2', '--max-rate', '20MiB/s', '--json'];
  // Killed once a few files are done and a large one is under way.
  await new Promise<void>((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let killed = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!killed && (out.match(/"event":"file-done"/g) ?? []).length >= 5 && out.includes('"event":"part-done"')) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.on('exit', () => resolve());
  });
  const before = (await keysIn(bucket)).length;
  assert.ok(before >= 5 && before < files.size, `${before} objects after the kill`);
  const rerun = await runCli(args.filter((a) => a !== '--max-rate' && a !== '20MiB/s'), env);
  assert.equal(rerun.code, 0, rerun.stderr);
  const summary = jsonLines(rerun.stdout).at(-1)! as { event: string; uploaded: number; skipped: number; failed: number };
  assert.equal(summary.event, 'job-complete');
  assert.equal(summary.failed, 0);
  assert.ok(summary.skipped >= 5, `${summary.skipped} finished files not sent again`);
  for (const [rel, data] of files) assert.equal(sha256(await getObjectBytes(bucket, `job/${rel}`)), sha256(data), rel);
  assert.equal((await plainClient().send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads?.length ?? 0, 0, 'no upload left open');
  const third = await runCli(['upload', dir, `s3://${bucket}/job/`, '--part-size', '5MiB'], env);
  assert.equal(third.code, 0);
  assert.match(third.stdout, /Nothing to send: all 43 files are already uploaded/);
  // A file that cannot be read fails alone: exit 5, the rest fine (run as a user whom permissions bind).
  await writeFile(join(dir, 'unreadable.bin'), 'x', { mode: 0o000 });
  const fourth = await runCliUnprivileged(['upload', dir, `s3://${bucket}/job/`, '--part-size', '5MiB'], { ...env });
  assert.equal(fourth.code, 5, fourth.stderr);
  assert.match(fourth.stderr, /failed: .*unreadable\.bin: SOURCE_UNREADABLE/);
});

test('folder job edge cases: a changed large file after an interrupted run, a vanished file, a torn journal line, new settings, a job id, no evidence, a ctime-only change, ETag-only jobs', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-folder');
  const s3 = plainClient();
  const port = () => new SdkS3Port(countingClient().client);

  // A large file interrupted, then changed: the rerun aborts the old upload and sends the new bytes.
  {
    const dir = await tempDir();
    const state = await tempDir();
    await writeFile(join(dir, 'big.bin'), randomBytes(16 * MiB));
    const ac = new AbortController();
    const first = new FolderJob({ s3: port(), dir, bucket, prefix: 'chg/', stateDir: state, partSize: 5 * MiB, concurrency: 1, signal: ac.signal });
    first.on('file-event', (e) => {
      if (e.event === 'part-done') ac.abort(new Error('stop'));
    });
    await first.done();
    const changed = randomBytes(17 * MiB);
    await writeFile(join(dir, 'big.bin'), changed);
    const job = new FolderJob({ s3: port(), dir, bucket, prefix: 'chg/', stateDir: state, partSize: 5 * MiB });
    const warnings: string[] = [];
    job.on('warning', (w) => warnings.push(w.code));
    const r = await job.done();
    assert.equal(r.uploaded, 1, JSON.stringify(r.outcomes));
    assert.ok(warnings.includes('FILE_CHANGED'));
    assert.equal(sha256(await getObjectBytes(bucket, 'chg/big.bin')), sha256(changed));
    assert.equal((await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: 'chg/' }))).Uploads?.length ?? 0, 0);
  }

  // A listed file that is gone fails alone; a torn last journal line does not swallow the next record.
  {
    const dir = await tempDir();
    const state = await tempDir();
    await writeFile(join(dir, 'a.bin'), 'aaa');
    await writeFile(join(dir, 'b.bin'), 'bbb');
    const entries = [
      { file: join(dir, 'a.bin'), key: 'e/a.bin' },
      { file: join(dir, 'gone.bin'), key: 'e/gone.bin' },
      { file: join(dir, 'b.bin'), key: 'e/b.bin' },
    ];
    const r = await new FolderJob({ s3: port(), entries, bucket, stateDir: state, jobId: 'nightly' }).done();
    assert.equal(r.uploaded, 2);
    assert.equal(r.failed, 1);
    assert.equal(r.outcomes.find((o) => o.key === 'e/gone.bin')!.error?.code, 'SOURCE_UNREADABLE');
    const jpath = r.journalPath;
    const text = await readFile(jpath, 'utf8');
    await writeFile(jpath, text.slice(0, text.length - 10)); // the last line torn mid-way
    const again = await new FolderJob({ s3: port(), entries: entries.filter((e) => !e.file.endsWith('gone.bin')), bucket, stateDir: state, jobId: 'nightly' }).done();
    assert.equal(again.uploaded, 1, 'the file of the torn line goes again, and only it (same job id, another list)');
    const third = await new FolderJob({ s3: port(), entries: entries.filter((e) => !e.file.endsWith('gone.bin')), bucket, stateDir: state, jobId: 'nightly' }).done();
    assert.equal(third.uploaded, 0);
    assert.equal(third.skipped, 2);
    // Other object settings: sent again, with them.
    const tagged = await new FolderJob({ s3: port(), entries: entries.slice(0, 1), bucket, stateDir: state, jobId: 'nightly', metadata: { owner: 'x' } }).done();
    assert.equal(tagged.uploaded, 1);
    assert.deepEqual((await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'e/a.bin' }))).Metadata, { owner: 'x' });
  }

  // No checksum echo and no MD5 ETag: not reported uploaded.
  {
    const dir = await tempDir();
    await writeFile(join(dir, 'x.bin'), 'xyz');
    const inner = port();
    const silent = wrapPort(inner, { putObject: async (input, req, signal) => ({ etag: '"opaque-etag"', ...(await inner.putObject(input, req, signal), {}) }) });
    const r = await new FolderJob({ s3: silent, dir, bucket, prefix: 'ev/', stateDir: await tempDir() }).done();
    assert.equal(r.failed, 1);
    assert.equal(r.outcomes[0]!.error?.code, 'UNVERIFIABLE');
  }

  // Content changed with size and mtime kept (only ctime tells), and an ETag-only job whose object is replaced on the server.
  {
    const dir = await tempDir();
    const state = await tempDir();
    await writeFile(join(dir, 'same.bin'), randomBytes(4000));
    const run = () => new FolderJob({ s3: port(), dir, bucket, prefix: 'ct/', stateDir: state, checksumAlgorithm: 'none' }).done();
    assert.equal((await run()).uploaded, 1);
    // The old mtime kept to the nanosecond (touch -r from a reference), so only ctime tells.
    const ref = join(await tempDir(), 'ref');
    execFileSync('touch', ['-r', join(dir, 'same.bin'), ref]);
    const other = randomBytes(4000);
    await writeFile(join(dir, 'same.bin'), other);
    execFileSync('touch', ['-r', ref, join(dir, 'same.bin')]);
    assert.equal((await run()).uploaded, 1, 'ctime changed: sent again');
    assert.equal(sha256(await getObjectBytes(bucket, 'ct/same.bin')), sha256(other));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'ct/same.bin', Body: randomBytes(4000) }));
    assert.equal((await run()).uploaded, 1, 'the ETag recorded is not the one stored: sent again');
    assert.equal(sha256(await getObjectBytes(bucket, 'ct/same.bin')), sha256(other));
  }
});

/** A bucket, a folder of three small files, a state folder, and a port to the server to wrap. */
async function threeSmallFiles() {
  loadS3Env();
  const bucket = await makeBucket('pw-folder-lock');
  const dir = await tempDir();
  const state = await tempDir();
  for (let i = 0; i < 3; i++) await writeFile(join(dir, `f${i}.bin`), randomBytes(2000 + i));
  return { bucket, dir, state, inner: new SdkS3Port(countingClient().client) };
}

/** A port whose PutObject calls wait until `hold()`; `inPut` resolves when the first one arrives. */
function heldPuts(inner: SdkS3Port) {
  let hold!: () => void;
  const held = new Promise<void>((r) => (hold = r));
  let entered!: () => void;
  const inPut = new Promise<void>((r) => (entered = r));
  const holding = wrapPort(inner, {
    putObject: async (input, req, signal) => {
      entered();
      await held;
      return inner.putObject(input, req, signal);
    },
  });
  return { holding, inPut, hold };
}

test('two runs of one folder job at once: the second is refused (UPLOAD_LOCKED, the holder named) before it sends anything; the lock goes with the first', async () => {
  const { bucket, dir, state, inner } = await threeSmallFiles();
  const { holding, inPut, hold } = heldPuts(inner);
  const first = new FolderJob({ s3: holding, dir, bucket, stateDir: state, concurrency: 1 });
  const firstDone = first.done();
  await inPut;
  const { client, counts } = countingClient();
  const second = new FolderJob({ s3: new SdkS3Port(client), dir, bucket, stateDir: state });
  let planned = false;
  second.on('job-plan', () => (planned = true));
  await assert.rejects(second.done(), (e: { code?: string; message?: string }) => {
    assert.equal(e.code, 'UPLOAD_LOCKED');
    assert.match(e.message!, new RegExp(`pid ${process.pid}\\b.*folder job`));
    return true;
  });
  assert.equal(counts.PutObject, undefined, 'the refused run sent nothing');
  assert.equal(planned, false, 'refused before it read the journal and planned');
  hold();
  const r = await firstDone;
  assert.equal(r.uploaded, 3);
  await assert.rejects(readFile(`${r.journalPath}.lock`), { code: 'ENOENT' });
  const third = await new FolderJob({ s3: new SdkS3Port(plainClient()), dir, bucket, stateDir: state }).done();
  assert.equal(third.skipped, 3, 'the lock released: the next run goes ahead');
});

test('two copies of one shard at once (a requeued task racing the original): the second waits for the first (SHARD_WAITING, once), then finds its work done and sends nothing; neither fails', async () => {
  const { bucket, dir, state, inner } = await threeSmallFiles();
  const { holding, inPut, hold } = heldPuts(inner);
  const shard = { index: 0, count: 1 };
  const firstDone = new FolderJob({ s3: holding, dir, bucket, stateDir: state, concurrency: 1, shard }).done();
  await inPut;
  const { client, counts } = countingClient();
  const second = new FolderJob({ s3: new SdkS3Port(client), dir, bucket, stateDir: state, shard });
  const warnings: string[] = [];
  second.on('warning', (w) => warnings.push(w.code));
  const secondDone = second.done();
  setTimeout(hold, 2500);
  const [a, b] = await Promise.all([firstDone, secondDone]);
  assert.equal(a.uploaded, 3);
  assert.deepEqual([b.uploaded, b.skipped, b.failed], [0, 3, 0], 'the second found the work done');
  assert.deepEqual(warnings, ['SHARD_WAITING']);
  assert.equal(counts.PutObject, undefined, 'the second sent nothing');
});

test('a listener that throws fails the job only once every file in flight has finished: the lock is never let go under a running upload', async () => {
  const { bucket, dir, state, inner } = await threeSmallFiles();
  let inFlight = 0;
  const slow = wrapPort(inner, {
    putObject: async (input, req, signal) => {
      inFlight++;
      try {
        if (input.key !== 'f0.bin') await new Promise((r) => setTimeout(r, 400));
        return await inner.putObject(input, req, signal);
      } finally {
        inFlight--;
      }
    },
  });
  const job = new FolderJob({ s3: slow, dir, bucket, stateDir: state, concurrency: 3 });
  job.on('file-done', () => {
    throw new Error('listener bug');
  });
  let journalPath = '';
  job.on('job-plan', (e) => (journalPath = e.journalPath));
  await assert.rejects(job.done(), /listener bug/);
  assert.equal(inFlight, 0, 'no request of the job still running when it reports its failure');
  await assert.rejects(readFile(`${journalPath}.lock`), { code: 'ENOENT' });
});

test('a file whose record cannot be synced to the job journal: failed (STATE_UNWRITABLE) with what was really sent and why; no file starts after it', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-folder');
  const dir = await tempDir();
  const bodies = [randomBytes(1000), randomBytes(1001)];
  for (let i = 0; i < 2; i++) await writeFile(join(dir, `f${i}.bin`), bodies[i]!);
  const job = new FolderJob({ s3: new SdkS3Port(plainClient()), dir, bucket, stateDir: await tempDir(), concurrency: 1 });
  // Once the journal has been checked writable, it becomes a folder: every append fails (as a
  // full or read-only disk would make it; the tests run as root, so permissions cannot).
  job.on('job-plan', (e) => {
    rmSync(e.journalPath);
    mkdirSync(e.journalPath);
  });
  const r = await job.done();
  assert.equal(r.uploaded, 0);
  assert.equal(r.failed, 2, 'the second file counts as failed: it never started');
  assert.equal(r.outcomes.filter((x) => !x.notStarted).length, 1, 'no file starts once the state folder cannot be written');
  assert.equal(r.outcomes.find((x) => x.notStarted)?.status, 'failed', 'the one never started has its outcome');
  const o = r.outcomes[0]!;
  assert.equal(o.key, 'f0.bin');
  assert.equal(o.error?.code, 'STATE_UNWRITABLE');
  assert.equal(o.bytesSent, 1000, 'what was sent is reported');
  assert.match(o.how, /sent and verified, but not recorded/);
  assert.match(o.error!.message, /sent and verified, but the job journal could not record it/);
  assert.doesNotMatch(o.error!.message, /Nothing was sent/);
  assert.deepEqual(await getObjectBytes(bucket, 'f0.bin'), bodies[0], 'and it is on the server, as the message says');
});

test('a folder job that fails says so once per file, on stderr, even with --quiet (a cron job must not fail silently)', async () => {
  const root = await tempDir();
  const dir = join(root, 'src');
  await mkdir(dir);
  for (const n of ['a.bin', 'b.bin']) await writeFile(join(dir, n), randomBytes(1000));
  const env = cliEnv(join(root, 'state'));
  const quiet = await runCli(['upload', dir, 's3://pw-no-such-bucket-zz/p/', '--quiet'], env);
  assert.equal(quiet.code, 5, quiet.stderr);
  assert.equal(quiet.stdout, '');
  const failedLines = (s: string) => s.split('\n').filter((l) => /failed: .*NoSuchBucket/.test(l));
  assert.deepEqual(failedLines(quiet.stderr).map((l) => l.match(/[ab]\.bin/)?.[0]).sort(), ['a.bin', 'b.bin']);
  const loud = await runCli(['upload', dir, 's3://pw-no-such-bucket-zz/p/'], env);
  assert.equal(loud.code, 5, loud.stderr);
  assert.equal(failedLines(loud.stdout + loud.stderr).length, 2, `each failure once:\n${loud.stdout}${loud.stderr}`);
  assert.match(loud.stdout, /Uploaded 0 of 2 files .*2 failed/);
});

test('FolderJob and Upload without an S3 port (nothing, or an S3Client where the port goes) → INVALID_OPTIONS saying what to pass, not a TypeError', async () => {
  const { S3Client } = await import('@aws-sdk/client-s3');
  const { Upload } = await import('../src/upload/engine.ts');
  const bad: unknown[] = [undefined, new S3Client({ region: 'us-east-1' })];
  for (const s3 of bad) {
    const says = (e: unknown) => (e as { code?: string }).code === 'INVALID_OPTIONS' && /s3 must be an S3 port: new SdkS3Port\(createS3Client/.test((e as Error).message);
    assert.throws(() => new FolderJob({ s3, dir: '.', bucket: 'bkt' } as never), says);
    assert.throws(() => new Upload({ s3, file: 'f', bucket: 'bkt', key: 'k' } as never), says);
  }
});

test('failsEveryFile: the failures every file of a job would meet alike stop the job starting files; one file\'s own do not', () => {
  const rows: [{ code: string; s3Code?: string } | undefined, boolean][] = [
    [{ code: 'S3_REQUEST_FAILED', s3Code: 'NoSuchBucket' }, true],
    [{ code: 'PART_FAILED', s3Code: 'InvalidAccessKeyId' }, true],
    [{ code: 'S3_REQUEST_FAILED', s3Code: 'SignatureDoesNotMatch' }, true],
    [{ code: 'S3_REQUEST_FAILED', s3Code: 'NoCredentials' }, true],
    [{ code: 'S3_REQUEST_FAILED', s3Code: 'CredentialsProviderError' }, true],
    [{ code: 'S3_REQUEST_FAILED', s3Code: 'RegionMissing' }, true],
    [{ code: 'S3_REQUEST_FAILED', s3Code: 'ECONNREFUSED' }, true],
    [{ code: 'S3_REQUEST_FAILED', s3Code: 'ENOTFOUND' }, true],
    [{ code: 'S3_REQUEST_FAILED', s3Code: 'ExpiredToken' }, true],
    [{ code: 'S3_REQUEST_FAILED', s3Code: 'AccessDenied' }, false], // may be this key's policy only
    [{ code: 'PART_FAILED', s3Code: 'InternalError' }, false],
    [{ code: 'SOURCE_UNREADABLE' }, false],
    [{ code: 'SOURCE_CHANGED' }, false],
    [{ code: 'INVALID_OPTIONS' }, false], // e.g. one file's upload uses a checksum this runtime lacks
    [undefined, false],
  ];
  for (const [error, want] of rows) assert.equal(failsEveryFile(error), want, JSON.stringify(error));
});

test('a folder job stops starting files after a failure every file would meet (a missing bucket): one request, not one per file', async () => {
  const root = await tempDir();
  const dir = join(root, 'src');
  await mkdir(dir);
  for (const n of ['a.bin', 'b.bin', 'c.bin', 'd.bin']) await writeFile(join(dir, n), randomBytes(1000));
  const r = await runCli(['upload', dir, 's3://pw-no-such-bucket-zz/p/', '--concurrency', '1', '--json'], cliEnv(join(root, 'state')));
  assert.equal(r.code, 5, r.stderr);
  const events = jsonLines(r.stdout);
  const done = events.filter((e) => e.event === 'file-done');
  assert.equal(done.length, 1, 'only the first file was tried');
  assert.equal((done[0]!.error as { s3Code?: string }).s3Code, 'NoSuchBucket');
  assert.ok(events.some((e) => e.event === 'warning' && e.code === 'JOB_STOPPED' && /NoSuchBucket/.test(String(e.message))), 'the stop is said');
  const summary = events.at(-1)! as { event: string; failed: number; files: number };
  assert.equal(summary.event, 'job-complete');
  assert.equal(summary.failed, 4, 'the three never started count as failed');
});

test('a stopped folder job: the file in flight and the ones never started are left for the next run (interrupted), not failed', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-folder');
  const dir = await tempDir();
  await writeFile(join(dir, 'a-big.bin'), randomBytes(16 * MiB));
  for (const n of ['b.bin', 'c.bin']) await writeFile(join(dir, n), randomBytes(1000));
  const ac = new AbortController();
  const job = new FolderJob({ s3: new SdkS3Port(countingClient().client), dir, bucket, prefix: 'stop/', stateDir: await tempDir(), partSize: 5 * MiB, concurrency: 1, signal: ac.signal });
  let acknowledged = 0;
  job.on('file-event', (e) => {
    if (e.event !== 'part-done') return;
    acknowledged += (e.data as { size: number }).size;
    ac.abort(new Error('stop'));
  });
  const r = await job.done();
  assert.equal(r.failed, 0, JSON.stringify(r.outcomes));
  assert.equal(r.interrupted, 3, 'a-big.bin stopped mid-way, b and c never started');
  assert.deepEqual(r.outcomes.map((o) => [o.status, o.notStarted ?? false]), [['interrupted', false], ['interrupted', true], ['interrupted', true]]);
  assert.equal(r.outcomes[0]!.error?.code, 'PAUSED');
  // The parts that went up before the stop were sent, and are counted as such.
  assert.ok(acknowledged >= 5 * MiB);
  assert.equal(r.outcomes[0]!.bytesSent, acknowledged);
  assert.equal(r.bytesSent, acknowledged);
});

test('a file that fails on its own just as the job is stopped is failed (named, exit 5 material), not "left for the next run"', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-folder');
  const dir = await tempDir();
  await writeFile(join(dir, 'a.bin'), randomBytes(1000));
  const ac = new AbortController();
  const inner = new SdkS3Port(countingClient().client);
  const s3 = wrapPort(inner, {
    putObject: async () => {
      ac.abort(new Error('stop'));
      throw new S3RequestError({ operation: 'PutObject', s3Code: 'AccessDenied', httpStatus: 403 });
    },
  });
  const r = await new FolderJob({ s3, dir, bucket, prefix: 'deny/', stateDir: await tempDir(), signal: ac.signal }).done();
  assert.deepEqual(r.outcomes.map((o) => [o.status, o.error?.s3Code]), [['failed', 'AccessDenied']]);
  assert.equal(r.failed, 1);
  assert.equal(r.interrupted, 0);
});

test('jobSummaryLine: "nothing to send" only when every file is proven there; a stopped or failed job says what it left', () => {
  const base = { files: 6, uploaded: 0, skipped: 0, failed: 0, interrupted: 0, bytesSent: 0, outcomes: [] as { status: string }[] };
  assert.match(jobSummaryLine({ ...base, skipped: 6 }), /^Nothing to send: all 6 files/);
  const stopped = jobSummaryLine({ ...base, interrupted: 6, outcomes: [{ status: 'interrupted' }] });
  assert.doesNotMatch(stopped, /Nothing to send/);
  assert.match(stopped, /Uploaded 0 of 6 files .*0 failed; 6 left for the next run\.$/);
  assert.match(jobSummaryLine({ ...base, failed: 4, outcomes: [{ status: 'failed' }] }), /4 failed \(each named on stderr as it failed; 3 not started\)/);
  assert.doesNotMatch(jobSummaryLine({ ...base, files: 0 }), /Nothing to send/);
});

test('JOB_STOPPED, then a stop: the files the failure kept from starting are failed, not left for the next run', async () => {
  const root = await tempDir();
  const dir = join(root, 'src');
  await mkdir(dir);
  for (const n of ['a.bin', 'b.bin', 'c.bin']) await writeFile(join(dir, n), randomBytes(1000));
  loadS3Env();
  const ac = new AbortController();
  const job = new FolderJob({ s3: new SdkS3Port(countingClient().client), dir, bucket: 'pw-no-such-bucket-zz', prefix: 'p/', stateDir: join(root, 'state'), concurrency: 1, signal: ac.signal });
  job.on('warning', (w) => {
    if (w.code === 'JOB_STOPPED') ac.abort(new Error('stop'));
  });
  const r = await job.done();
  assert.equal(r.failed, 3, JSON.stringify(r));
  assert.equal(r.interrupted, 0);
});

test('a folder job\'s --json file-done events name the evidence (verificationLevel), as a single upload does, and the words say which: a checksum, or an ETag (issue 26, defect 8)', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-folder');
  const dir = await tempDir();
  await writeFile(join(dir, 'small.bin'), randomBytes(1000));
  await writeFile(join(dir, 'big.bin'), randomBytes(6 * MiB));
  const env = cliEnv(await tempDir());
  const levels = async (extra: string[]) => {
    const r = await runCli(['upload', dir, `s3://${bucket}/lv${extra.length}/`, '--part-size', '5MiB', '--json', ...extra], env);
    assert.equal(r.code, 0, r.stderr);
    return Object.fromEntries(jsonLines(r.stdout).filter((e) => e.event === 'file-done').map((e) => [String(e.key).split('/').pop(), { level: e.verificationLevel, how: String(e.how), status: e.status }]));
  };
  const first = await levels([]);
  assert.deepEqual([first['small.bin']!.level, first['big.bin']!.level], ['full-object-checksum', 'full-object-checksum']);
  const again = await levels([]);
  assert.deepEqual([again['small.bin']!.status, again['small.bin']!.level], ['skipped', 'full-object-checksum']);
  assert.match(again['small.bin']!.how, /the object's CRC32C \S+ is the one recorded/);
  const md5 = await levels(['--checksum', 'none']);
  assert.deepEqual([md5['small.bin']!.level, md5['big.bin']!.level], ['object-md5', 'multipart-etag']);
  const md5again = await levels(['--checksum', 'none']);
  assert.deepEqual([md5again['small.bin']!.level, md5again['big.bin']!.level], ['object-md5', 'multipart-etag']);
  assert.match(md5again['small.bin']!.how, /its ETag [0-9a-f]{32} is the one recorded/);
  assert.doesNotMatch(md5again['small.bin']!.how, /checksum/);
});

test('a folder job: its level is told (searched from 8); a streamed file whose request was retried never gives its first arena back to the pool; a file rewritten after its streamed put fails SOURCE_CHANGED', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-folder');
  const dir = await tempDir();
  await writeFile(join(dir, 'retried.bin'), randomBytes(2 * MiB + 5));
  await writeFile(join(dir, 'rewritten.bin'), randomBytes(2 * MiB + 7));
  const inner = new SdkS3Port(plainClient());
  let firstArena: ArrayBufferLike | undefined;
  const s3 = wrapPort(inner, {
    putObject: async (input, req, signal) => {
      if (input.key.endsWith('retried.bin') && !firstArena) {
        // The first request reads two slices and its connection dies.
        const it = (input.body as Exclude<PartBody, Buffer>).chunks()[Symbol.asyncIterator]();
        firstArena = (await it.next()).value.buffer;
        await it.next();
        throw new S3RequestError({ operation: 'PutObject', s3Code: 'ECONNRESET' });
      }
      const out = await inner.putObject(input, req, signal);
      if (input.key.endsWith('rewritten.bin')) await writeFile(join(dir, 'rewritten.bin'), randomBytes(2 * MiB + 7));
      return out;
    },
  });
  const levels: { concurrency: number; reason: string; searching: boolean }[] = [];
  const job = new FolderJob({ s3, dir, bucket, stateDir: await tempDir(), retry: { baseDelayMs: 1, maxDelayMs: 2 } });
  job.on('concurrency', (e) => levels.push({ concurrency: e.concurrency, reason: e.reason, searching: e.searching }));
  const r = await job.done();
  assert.deepEqual(levels[0], { concurrency: 8, reason: 'start', searching: true });
  const byName = new Map(r.outcomes.map((o) => [o.file.split('/').at(-1), o]));
  assert.equal(byName.get('retried.bin')!.status, 'uploaded');
  assert.equal(byName.get('rewritten.bin')!.status, 'failed');
  assert.equal(byName.get('rewritten.bin')!.error?.code, 'SOURCE_CHANGED');
  assert.ok(firstArena, 'the retried file was streamed through an arena');
  // What the pool hands out now: never the arena a failed request may still be reading into.
  const pool = poolFor((job as unknown as { limiter: LimitFunction }).limiter);
  const handed = new Set<ArrayBufferLike>();
  for (let i = 0; i < 8; i++) handed.add(pool.take(ARENA_BYTES).buffer);
  assert.ok(!handed.has(firstArena!), 'the first request\'s arena is not in the pool');
  assert.ok(handed.size > 0);
});
