import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { before, test } from 'node:test';
import { ListMultipartUploadsCommand, ListPartsCommand } from '@aws-sdk/client-s3';
import { MiB, createUpload } from '../src/index.ts';
import { readJournal } from '../src/local/journal.ts';
import { countingClient, getObjectBytes, loadS3Env, makeBucket, plainClient, randomFile, sha256, tempDir } from './helpers/s3.ts';

let bucket: string;
before(async () => {
  loadS3Env();
  bucket = await makeBucket('pw-crash');
});

test('SIGKILL part-way, then a new process resumes: byte-identical, and no part the server held is sent again', async () => {
  const dir = await tempDir();
  const partSize = 5 * MiB;
  const f = await randomFile(dir, 9 * partSize + 777); // 10 parts
  const key = 'crash/file.bin';
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('./fixtures/upload-child.ts', import.meta.url).pathname], {
    env: { ...process.env, PARTWISE_CHILD_ARGS: JSON.stringify({ file: f.path, bucket, key, stateDir: dir, partSize, delayMs: 150, concurrency: 2 }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const reported: number[] = [];
  let uploadId = '';
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  for await (const line of createInterface({ input: child.stdout! })) {
    if (line.startsWith('plan ')) uploadId = line.slice(5);
    if (line.startsWith('done ')) reported.push(Number(line.slice(5)));
    if (reported.length === 4) {
      child.kill('SIGKILL');
      break;
    }
  }
  assert.equal(await exited, 'SIGKILL');
  assert.ok(uploadId, 'the child created an upload');

  // What the server holds at the moment of the crash (in-flight parts may or may not have landed).
  const listed = await plainClient().send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId }));
  const onServer = (listed.Parts ?? []).map((p) => p.PartNumber!).sort((a, b) => a - b);
  for (const n of reported) assert.ok(onServer.includes(n), `reported part ${n} is on the server`);
  assert.ok(onServer.length < 10, 'the crash happened part-way');

  // The journal on disk is valid and never claims a part the server does not hold.
  const jf = (await readdir(dir)).find((n) => n.endsWith('.json'))!;
  const journal = (await readJournal(`${dir}/${jf}`))!; // the file and its part log
  assert.equal(journal.uploadId, uploadId);
  for (const p of journal.parts as { partNumber: number }[]) assert.ok(onServer.includes(p.partNumber));

  const { client, counts, partNumbers } = countingClient();
  const up = createUpload({ client, file: f.path, bucket, key, stateDir: dir });
  let report: { verified: number[] } | undefined;
  up.on('reconcile', (r) => (report = r));
  const r = await up.done();

  // A part on the wire at the kill may land after the look above: the rerun's own listing is the truth.
  for (const n of onServer) assert.ok(report!.verified.includes(n), `part ${n}, on the server after the crash, was verified and skipped`);
  const expectedUploads = Array.from({ length: 10 }, (_, i) => i + 1).filter((n) => !report!.verified.includes(n));
  assert.deepEqual([...partNumbers].sort((a, b) => a - b), expectedUploads, 'exactly the parts the server lacked were uploaded');
  assert.equal(counts.CreateMultipartUpload, undefined);
  assert.equal(r.uploadId, uploadId);
  assert.ok(r.partsSkipped >= onServer.length, 'every part held after the crash was skipped');
  assert.equal(r.partsSkipped + r.partsUploaded, 10, 'each part either skipped or sent, once');
  assert.equal(sha256(await getObjectBytes(bucket, key)), f.sha256, 'object bytes equal the file');
});

/** Runs the upload child until it reaches `moment`, then SIGKILLs it. Returns the uploadId it created. */
async function killAt(moment: string, a: { file: string; key: string; stateDir: string; partSize: number }): Promise<string> {
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('./fixtures/upload-child.ts', import.meta.url).pathname], {
    env: { ...process.env, PARTWISE_CHILD_ARGS: JSON.stringify({ ...a, bucket, delayMs: 0, concurrency: 2, hangAt: moment }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  let uploadId = '';
  let reached = false;
  for await (const line of createInterface({ input: child.stdout! })) {
    if (line.startsWith('created ')) uploadId = line.slice(8);
    if (line === `at ${moment}`) {
      reached = true;
      // complete-in-flight: the request is on its way; kill at once, whether or not it lands.
      child.kill('SIGKILL');
      break;
    }
  }
  assert.equal(await exited, 'SIGKILL');
  assert.ok(reached, `the child reached ${moment}`);
  return uploadId;
}

for (const moment of ['after-create', 'mid-part', 'complete-in-flight', 'after-complete'] as const) {
  test(`SIGKILL at ${moment}, then the same upload again: exit 0, byte-identical, nothing verified sent twice`, async () => {
    const dir = await tempDir();
    const partSize = 5 * MiB;
    const f = await randomFile(dir, 2 * partSize + 4321); // 3 parts
    const key = `crash-at/${moment}.bin`;
    const killedId = await killAt(moment, { file: f.path, key, stateDir: dir, partSize });
    // What the server holds after the kill (a part in flight may or may not have landed).
    const held = moment === 'after-create' ? [] : await plainClient().send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: killedId })).then((o) => o.Parts ?? [], () => [1, 2, 3]); // gone: Complete landed
    const { client, counts } = countingClient();
    const up = createUpload({ client, file: f.path, bucket, key, stateDir: dir });
    let verified: number[] | undefined;
    up.on('reconcile', (rep) => (verified = rep.verified));
    const r = await up.done();
    assert.equal(sha256(await getObjectBytes(bucket, key)), f.sha256, 'object bytes equal the file');
    assert.equal(r.verification.level, 'full-object-checksum');
    assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.json') || n.includes('.lock')), [], 'journal and lock gone');
    if (moment === 'after-complete') {
      assert.equal(r.alreadyComplete, true);
      assert.equal(r.uploadId, killedId);
      assert.equal(counts.UploadPart, undefined, 'no part sent');
      assert.equal(counts.CompleteMultipartUpload, undefined, 'no Complete sent');
    }
    if (moment === 'mid-part' || moment === 'complete-in-flight') {
      assert.equal(r.uploadId, killedId, 'the same upload was resumed (or proven complete)');
      assert.equal(counts.CreateMultipartUpload, undefined);
      if (verified === undefined) {
        // The killed Complete landed before the rerun looked: nothing to verify, the object was proven.
        assert.equal(moment, 'complete-in-flight');
        assert.equal(r.alreadyComplete, true);
      } else {
        // A part on the wire at the kill may land after the look above: the rerun's own listing is the truth.
        for (const n of held.map((p) => (typeof p === 'number' ? p : p.PartNumber!))) assert.ok(verified.includes(n), `part ${n}, held after the kill, was verified`);
        assert.equal(counts.UploadPart ?? 0, 3 - verified.length, 'exactly the parts the server lacked were sent');
      }
    }
    if (moment === 'complete-in-flight') assert.equal(counts.UploadPart, undefined, 'every part was on the server: nothing sent again');
    if (moment === 'after-create') {
      // No journal was written, but the intent recorded before Create was: this run finds the
      // empty upload it created and aborts it (nothing to keep), instead of leaving it open for ever.
      assert.notEqual(r.uploadId, killedId);
      assert.equal(counts.AbortMultipartUpload, 1, 'the orphan was aborted');
      assert.equal(counts.CreateMultipartUpload, 1);
    }
    const open = await plainClient().send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
    assert.deepEqual((open.Uploads ?? []).map((u) => u.UploadId), [], 'no multipart upload left open for the key');
  });
}

test('SIGKILL mid-upload and the journal lost with it: the next run (discovery on) adopts the upload and sends only what the server lacks', async () => {
  const dir = await tempDir();
  const partSize = 5 * MiB;
  const f = await randomFile(dir, 4 * partSize + 99); // 5 parts
  const key = 'crash-at/journal-lost.bin';
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('./fixtures/upload-child.ts', import.meta.url).pathname], {
    env: { ...process.env, PARTWISE_CHILD_ARGS: JSON.stringify({ file: f.path, bucket, key, stateDir: dir, partSize, delayMs: 150, concurrency: 2 }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let killedId = '';
  let done = 0;
  const exited = new Promise((resolve) => child.on('exit', resolve));
  for await (const line of createInterface({ input: child.stdout! })) {
    if (line.startsWith('plan ')) killedId = line.slice(5);
    if (line.startsWith('done ') && ++done === 2) {
      child.kill('SIGKILL');
      break;
    }
  }
  await exited;
  for (const n of await readdir(dir)) if (n.includes('.json')) await rm(`${dir}/${n}`);
  const held = (await plainClient().send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: killedId }))).Parts ?? [];
  assert.ok(held.length >= 1, 'some parts landed before the kill');
  const { client, counts } = countingClient();
  const up = createUpload({ client, file: f.path, bucket, key, stateDir: dir, discover: true });
  // A part on the wire at the kill may land after the look above: what the rerun verified counts.
  let verified = -1;
  up.on('reconcile', (rep) => (verified = rep.verified.length));
  const r = await up.done();
  assert.equal(r.uploadId, killedId);
  assert.equal(counts.CreateMultipartUpload, undefined);
  assert.ok(verified >= held.length, `${verified} parts verified, ${held.length} seen right after the kill`);
  assert.equal(counts.UploadPart, 5 - verified);
  assert.equal(sha256(await getObjectBytes(bucket, key)), f.sha256);
});
