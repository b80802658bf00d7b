/**
 * Upload, resume on real machines: two state folders for one file and key, a remount that changes
 * only the device number, a restarted container that is PID 1 again, a transient 404 right after
 * Complete. On the local RGW, and on the S3 emulator for the 404.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { CreateBucketCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { SdkS3Port, createS3Client, createUpload } from '../src/index.ts';
import { Upload } from '../src/upload/engine.ts';
import { emulatorClient } from './emulator/client.ts';
import { S3Emulator } from './emulator/server.ts';
import { BIN, cliEnv, jsonLines } from './helpers/cli.ts';
import { uploadThenPause } from './helpers/pause.ts';
import { wrapPort } from './helpers/ports.ts';
import { countingClient, getObjectBytes, loadS3Env, makeBucket, plainClient, randomFile, sha256, tempDir } from './helpers/s3.ts';

const MiB = 1024 * 1024;

test('two state folders, one file and key: a second run adopts the first one\'s live upload and completes it; the first then proves the object and succeeds (not UPLOAD_GONE)', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-two-states');
  const dir = await tempDir();
  const f = await randomFile(dir, 20 * MiB);
  const inner = new SdkS3Port(plainClient());
  let release!: () => void;
  const secondDone = new Promise<void>((r) => (release = r));
  let sent = 0;
  // The first run sends one part, then waits (as a slow link would) while the second one finishes.
  const slow = wrapPort(inner, {
    uploadPart: async (input, req, signal) => {
      if (sent++ >= 1) await secondDone;
      return inner.uploadPart(input, req, signal);
    },
  });
  const first = new Upload({ s3: slow, file: f.path, bucket, key: 'shared.bin', stateDir: join(dir, 'a'), partSize: 5 * MiB, concurrency: 1 });
  const warnings: string[] = [];
  first.on('warning', (w) => warnings.push(w.code));
  let firstPart!: () => void;
  const onePart = new Promise<void>((r) => (firstPart = r));
  first.on('part-done', () => firstPart());
  const running = first.done();
  await onePart;
  const second = await createUpload({ file: f.path, bucket, key: 'shared.bin', stateDir: join(dir, 'b'), partSize: 5 * MiB, discover: true }).done();
  assert.equal(second.resumed, true, 'the second run adopted the first one\'s upload');
  release();
  const r = await running;
  assert.ok(warnings.includes('COMPLETED_ELSEWHERE'), warnings.join());
  assert.equal(r.alreadyComplete, true);
  assert.notEqual(r.verification.level, 'size');
  assert.equal(sha256(await getObjectBytes(bucket, 'shared.bin')), f.sha256);
  assert.deepEqual((await readdir(join(dir, 'a'))).filter((n) => n.endsWith('.json')), [], 'the first run\'s journal is forgotten');
  assert.equal((await plainClient().send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads?.length ?? 0, 0);
});

test('a remount changes only the device number (same inode, size and times): the resume goes on, every listed part verified against the file, no --fresh advice', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-remount');
  const dir = await tempDir();
  const f = await randomFile(dir, 16 * MiB);
  const opts = { file: f.path, bucket, key: 'remount.bin', stateDir: dir, partSize: 5 * MiB };
  await uploadThenPause(opts, 2);
  const journal = (await readdir(dir)).find((n) => n.endsWith('.json'))!;
  const j = JSON.parse(await readFile(join(dir, journal), 'utf8'));
  j.source.dev += 1; // what a remount (loop, LVM, USB, NFS) does to the same file
  await writeFile(join(dir, journal), JSON.stringify(j));
  const { client, counts } = countingClient();
  const up = createUpload({ client, ...opts });
  const warnings: string[] = [];
  up.on('warning', (w) => warnings.push(w.code));
  const r = await up.done();
  assert.equal(r.resumed, true);
  assert.equal(r.partsSkipped, 2, 'the parts on the server were verified, not sent again');
  assert.equal(r.reconcile?.hashing?.bytes, 10 * MiB, 'each listed part re-hashed from the file');
  assert.equal(counts.UploadPart, 2);
  assert.ok(warnings.includes('SOURCE_MOVED'), warnings.join());
  assert.equal(sha256(await getObjectBytes(bucket, 'remount.bin')), f.sha256);
});

test('a transient 404 on the proving HEAD right after a successful Complete is looked at again before anything is judged; an object that never shows is OBJECT_UNVERIFIED, never "do not trust it"', async () => {
  const emu = await S3Emulator.start({ minPartSize: 1024 });
  try {
    await emulatorClient(emu.endpoint).send(new CreateBucketCommand({ Bucket: 'late' }));
    const s3 = new SdkS3Port(createS3Client({ endpoint: emu.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }));
    const dir = await tempDir();
    const f = await randomFile(dir, 5000);
    const up = (key: string) => new Upload({ s3, file: f.path, bucket: 'late', key, partSize: 1024, minPartSize: 1, stateDir: dir }).done();
    const heads = emu.count('HeadObject');
    const r = await emu.withFault({ op: 'HeadObject', action: { type: 'error', status: 404, code: 'NotFound' } }, () => up('once'));
    assert.equal(r.verification.level, 'full-object-checksum');
    assert.equal(emu.count('HeadObject') - heads, 2, 'looked at once more');
    await emu.withFault({ op: 'HeadObject', times: 1000, action: { type: 'error', status: 404, code: 'NotFound' } }, () =>
      assert.rejects(up('never'), (e: { code?: string }) => e.code === 'OBJECT_UNVERIFIED'),
    );
  } finally {
    await emu.close();
  }
});

test('a restarted container is PID 1 again: the command killed (SIGKILL) in one PID namespace resumes in a new one instead of UPLOAD_LOCKED for ever', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-container');
  const dir = await tempDir();
  const f = await randomFile(dir, 30 * MiB);
  const env = cliEnv(join(dir, 'state'));
  const args = ['upload', f.path, `s3://${bucket}/c.bin`, '--part-size', '5MiB', '--concurrency', '1', '--json'];
  // As in a container: the command is PID 1 of a PID namespace of its own; --kill-child takes it down with unshare.
  const container = (extra: string[]) => spawn('unshare', ['--pid', '--fork', '--mount-proc', '--kill-child', process.execPath, BIN, ...args, ...extra], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const first = container(['--max-rate', '5MiB/s']);
  let out = '';
  await new Promise<void>((resolve) => {
    first.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if ((out.match(/"event":"part-done"/g) ?? []).length >= 2) first.kill('SIGKILL');
    });
    first.on('exit', () => resolve());
  });
  const lock = JSON.parse(await readFile(join(dir, 'state', (await readdir(join(dir, 'state'))).find((n) => n.endsWith('.lock'))!), 'utf8'));
  assert.equal(lock.pid, 1, 'the killed run held its lock as PID 1');
  const second = container([]);
  let stdout = '';
  let stderr = '';
  second.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  second.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(second, 'exit')) as [number];
  assert.equal(code, 0, stderr);
  const done = jsonLines(stdout).find((e) => e.event === 'complete')!;
  assert.equal(done.resumed, true);
  assert.ok((done.partsSkipped as number) >= 2);
  assert.equal(sha256(await getObjectBytes(bucket, 'c.bin')), f.sha256);
});
