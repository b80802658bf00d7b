/**
 * Jobs, beyond one machine, under a real scheduler: the local Slurm cluster (scripts/slurm.sh:
 * slurm-wlm and munge, a controller and three nodes on 127.0.0.1) runs partwise as operators do.
 * An array of workers on a 1 GiB file with a dependent finishing job (afterany), one task killed by
 * SIGKILL mid-range and requeued; two copies of one worker index at once; a worker on another
 * version of the file; a folder job sharded over an array. The object is checked by an independent
 * download; the finisher never has the file.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { DeleteObjectCommand, GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { BIN, jsonLines } from './helpers/cli.ts';
import { jobState, killTask, loadSlurmEnv, requeue, sbatch, script, waitJobs } from './helpers/slurm.ts';
import { loadS3Env, makeBucket, plainClient, sha256, tempDir } from './helpers/s3.ts';

const MiB = 1024 * 1024;
const node = process.execPath;

/** A file of `mib` MiB of random bytes, written in 16 MiB slices; its SHA-256. */
async function bigFile(path: string, mib: number): Promise<string> {
  const h = createHash('sha256');
  const fh = await open(path, 'w');
  try {
    for (let i = 0; i < mib; i += 16) {
      const b = randomBytes(Math.min(16, mib - i) * MiB);
      h.update(b);
      await fh.write(b);
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

/** SHA-256 of an object, streamed from the server (an independent download). */
async function objectSha(bucket: string, key: string): Promise<string> {
  const out = await plainClient().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const h = createHash('sha256');
  for await (const chunk of out.Body as AsyncIterable<Uint8Array>) h.update(chunk);
  return h.digest('hex');
}

async function openUploads(bucket: string): Promise<number> {
  return (await plainClient().send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads?.length ?? 0;
}

/** A `partwise` on the PATH of every job (as an npm install -g would put it), and the finisher's short wait. */
async function setup() {
  loadS3Env();
  loadSlurmEnv();
  const bin = await tempDir();
  await script(bin, 'partwise', `exec "${node}" "${BIN}" "$@"`);
  process.env.PATH = `${bin}:${process.env.PATH}`;
  process.env.PARTWISE_FINISH_WAIT = '2';
}
const EXAMPLES = (name: string) => new URL(`../examples/slurm/${name}`, import.meta.url).pathname;

/** The finishing job an operator submits: waits (exit 6) while requeued workers still run, then finishes. */
const FINISHER = (url: string) => `for i in $(seq 90); do "${node}" "${BIN}" finish ${url} --json; rc=$?; [ $rc -ne 6 ] && exit $rc; sleep 2; done; exit 6`;

test('Slurm: an array of 4 workers on a 1 GiB file and a dependent finisher; a task killed by SIGKILL mid-range is requeued; the object is byte-identical, proven without the file, and bytes sent ≤ the file plus the parts in flight at the kill', { timeout: 600_000 }, async () => {
  await setup();
  const bucket = await makeBucket('pw-slurm');
  const dir = await tempDir();
  const file = join(dir, 'vm.img');
  const sha = await bigFile(file, 1024);
  const url = `s3://${bucket}/images/vm.img`;
  const plan = spawnJson([BIN, 'plan', file, url, '--workers', '4', '--part-size', '16MiB', '--json']);
  assert.equal(plan.partCount, 64);
  // The recipe's own job scripts (examples/slurm), with \`partwise\` on the PATH as an install puts it.
  const array = sbatch(['--array=0-3', '--requeue', '-o', join(dir, 'w-%a.out'), '--open-mode=append', EXAMPLES('worker.sbatch'), file, url, '--concurrency', '2', '--max-rate', '48MiB/s']);
  const finisher = sbatch(['--dependency', `afterany:${array}`, '-o', join(dir, 'finish.out'), EXAMPLES('finish.sbatch'), url]);
  // Task 1 killed once a few of its parts are acknowledged, then requeued as a requeue policy would.
  const out1 = join(dir, 'w-1.out');
  for (let i = 0; ; i++) {
    const text = await readFile(out1, 'utf8').catch(() => '');
    if ((text.match(/"event":"part-done"/g) ?? []).length >= 3) break;
    if (i > 600) throw new Error(`task 1 never got going: ${text}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(killTask(`${array}_1`) >= 1, 'the task\'s processes were killed');
  for (let i = 0; jobState(`${array}_1`).state !== 'FAILED'; i++) {
    if (i > 200) throw new Error(`task 1 not failed: ${JSON.stringify(jobState(`${array}_1`))}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  requeue(`${array}_1`);
  await waitJobs([array, finisher]);
  const done = (await eventsOf(join(dir, 'finish.out'))).find((e) => e.event === 'finish-complete');
  assert.ok(done, await readFile(join(dir, 'finish.out'), 'utf8'));
  assert.equal(done.verificationLevel, 'full-object-checksum');
  assert.equal(jobState(finisher).exitCode, '0:0');
  assert.equal(await objectSha(bucket, 'images/vm.img'), sha, 'byte-identical (independent download)');
  // Every attempt of every task, the killed one included: at most the file plus what was in flight.
  let started = 0;
  for (let i = 0; i < 4; i++) {
    const events = await eventsOf(join(dir, `w-${i}.out`));
    started += events.filter((e) => e.event === 'part-start').reduce((a, e) => a + (e.size as number), 0);
    assert.ok(events.some((e) => e.event === 'worker-complete'), `task ${i} completed its range`);
    if (i === 1) {
      assert.equal(events.filter((e) => e.event === 'plan').length, 2, 'task 1 ran twice: killed, then requeued');
      assert.ok((events.find((e) => e.event === 'worker-complete')!.partsVerified as number) >= 3, 'the requeued task verified what the killed one had sent, and did not send it again');
    }
  }
  assert.ok(started <= 1024 * MiB + 2 * 16 * MiB, `${started / MiB} MiB sent for a 1024 MiB file`);
  assert.equal(await openUploads(bucket), 0);
  assert.deepEqual((await plainClient().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'images/vm.img.partwise/' }))).Contents ?? [], [], 'records removed');
  await plainClient().send(new DeleteObjectCommand({ Bucket: bucket, Key: 'images/vm.img' })); // the gateway keeps objects in memory
});

test('Slurm: two copies of one worker index at the same time (a requeue racing the original) end in one identical object, neither failing', { timeout: 300_000 }, async () => {
  await setup();
  const bucket = await makeBucket('pw-slurm');
  const dir = await tempDir();
  const file = join(dir, 'db.dump');
  const sha = await bigFile(file, 96);
  const url = `s3://${bucket}/db.dump`;
  spawnJson([BIN, 'plan', file, url, '--workers', '2', '--part-size', '8MiB', '--json']);
  const run = (i: number) => `exec "${node}" "${BIN}" upload "${file}" ${url} --worker ${i}/2 --concurrency 2 --json`;
  const jobs = [sbatch(['-o', join(dir, 'a.out'), '--wrap', run(0)]), sbatch(['-o', join(dir, 'b.out'), '--wrap', run(0)]), sbatch(['-o', join(dir, 'c.out'), '--wrap', run(1)])];
  await waitJobs(jobs);
  for (const j of jobs) assert.equal(jobState(j).exitCode, '0:0', `job ${j}: ${JSON.stringify(jobState(j))}`);
  const receipts = await Promise.all(['a', 'b'].map(async (n) => (await eventsOf(join(dir, `${n}.out`))).find((e) => e.event === 'worker-complete')));
  assert.equal(receipts[0]!.last, receipts[1]!.last);
  const fin = sbatch(['-o', join(dir, 'finish.out'), '--wrap', FINISHER(url)]);
  await waitJobs([fin]);
  assert.equal(jobState(fin).exitCode, '0:0', await readFile(join(dir, 'finish.out'), 'utf8'));
  assert.equal(await objectSha(bucket, 'db.dump'), sha);
});

test('Slurm: a worker whose host has another version of the file is refused and sends nothing; the finisher names it (exit 6) and completes nothing; that task rerun alone where the file is (sbatch --array=1) is worker 1 and the finish completes', { timeout: 300_000 }, async () => {
  await setup();
  const bucket = await makeBucket('pw-slurm');
  const dir = await tempDir();
  const file = join(dir, 'data.bin');
  await bigFile(file, 32);
  const otherDir = join(dir, 'other-host');
  await mkdir(otherDir);
  await writeFile(join(otherDir, 'data.bin'), randomBytes(32 * MiB));
  const url = `s3://${bucket}/data.bin`;
  spawnJson([BIN, 'plan', file, url, '--workers', '2', '--part-size', '8MiB', '--json']);
  // Task 1 runs where the file is another version (the same path on another host).
  const worker = await script(dir, 'worker.sh', `F="${file}"; [ "$SLURM_ARRAY_TASK_ID" = 1 ] && F="${join(otherDir, 'data.bin')}"; exec "${node}" "${BIN}" upload "$F" ${url} --worker auto --json`);
  const array = sbatch(['--array=0-1', '-o', join(dir, 'w-%a.out'), worker]);
  const finisher = sbatch(['--dependency', `afterany:${array}`, '-o', join(dir, 'finish.out'), '--wrap', `exec "${node}" "${BIN}" finish ${url} --json`]);
  await waitJobs([array, finisher]);
  assert.equal(jobState(`${array}_0`).exitCode, '0:0');
  assert.equal(jobState(`${array}_1`).exitCode, '1:0');
  assert.match(await readFile(join(dir, 'w-1.out'), 'utf8'), /"code":"PLAN_MISMATCH"/);
  assert.doesNotMatch(await readFile(join(dir, 'w-1.out'), 'utf8'), /part-start/, 'nothing sent');
  assert.equal(jobState(finisher).exitCode, '6:0');
  const err = (await eventsOf(join(dir, 'finish.out'))).find((e) => e.event === 'error')!;
  assert.equal(err.code, 'PARTS_MISSING');
  assert.match(err.message as string, /Run worker 1 again.*--worker 1\/2.*sbatch --array=1/);
  assert.equal(await openUploads(bucket), 1, 'nothing completed');
  // The operator's fix: task 1 alone, where the planned file is (an array of one, minimum 1: still worker 1 of 2).
  const again = sbatch(['--array=1', '-o', join(dir, 'again-%a.out'), EXAMPLES('worker.sbatch'), file, url]);
  await waitJobs([again]);
  assert.equal(jobState(`${again}_1`).exitCode, '0:0', await readFile(join(dir, 'again-1.out'), 'utf8'));
  const done = (await eventsOf(join(dir, 'again-1.out'))).find((e) => e.event === 'worker-complete')!;
  assert.equal(done.worker, 1);
  assert.equal(spawnJson([BIN, 'finish', url, '--keep-receipts', '--json']).event, 'finish-complete');
  assert.equal(await objectSha(bucket, 'data.bin'), createHash('sha256').update(await readFile(file)).digest('hex'));
  const abort = spawnJson([BIN, 'abort', url, '--json']);
  assert.equal(abort.event, 'aborted');
  assert.equal(abort.finished, true, 'the finished record removed');
  assert.equal(await openUploads(bucket), 0);
  await plainClient().send(new DeleteObjectCommand({ Bucket: bucket, Key: 'data.bin' }));
});

test('Slurm: a folder job sharded over an array (--shard auto/N): every file identical, the shards\' counts add up to the tree, a rerun sends nothing; a rerun of one task alone is still its shard; bare --shard auto is refused', { timeout: 300_000 }, async () => {
  await setup();
  const bucket = await makeBucket('pw-slurm');
  const dir = await tempDir();
  const tree = join(dir, 'tree');
  const files = new Map<string, Buffer>();
  for (let i = 0; i < 30; i++) files.set(`d${i % 3}/f${i}.bin`, randomBytes(1000 + i * 997));
  files.set('big.bin', randomBytes(12 * MiB));
  for (const [rel, data] of files) {
    await mkdir(join(tree, rel, '..'), { recursive: true });
    await writeFile(join(tree, rel), data);
  }
  const runArray = async (round: string) => {
    const a = sbatch(['--array=0-2', '-o', join(dir, `${round}-%a.out`), EXAMPLES('shard-folder.sbatch'), tree, `s3://${bucket}/tree/`, '3', '--part-size', '5MiB']);
    await waitJobs([a]);
    const sums = [];
    for (let i = 0; i < 3; i++) {
      assert.equal(jobState(`${a}_${i}`).exitCode, '0:0', await readFile(join(dir, `${round}-${i}.out`), 'utf8'));
      sums.push((await eventsOf(join(dir, `${round}-${i}.out`))).find((e) => e.event === 'job-complete')! as unknown as { entries: number; uploaded: number; skipped: number; failed: number });
    }
    return sums;
  };
  const first = await runArray('first');
  assert.equal(first.reduce((a, s) => a + s.entries, 0), files.size, 'each entry in exactly one shard');
  assert.equal(first.reduce((a, s) => a + s.uploaded, 0), files.size);
  assert.ok(first.every((s) => s.entries > 0), 'every shard had work');
  for (const [rel, data] of files) assert.equal(await objectSha(bucket, `tree/${rel}`), sha256(data), rel);
  const second = await runArray('second');
  assert.equal(second.reduce((a, s) => a + s.uploaded, 0), 0, 'a rerun sends nothing');
  assert.equal(second.reduce((a, s) => a + s.skipped, 0), files.size);
  // Task 1 alone (sbatch --array=1: an array of one, minimum 1): still shard 1 of 3.
  const one = sbatch(['--array=1', '-o', join(dir, 'one-%a.out'), EXAMPLES('shard-folder.sbatch'), tree, `s3://${bucket}/tree/`, '3', '--part-size', '5MiB']);
  await waitJobs([one]);
  assert.equal(jobState(`${one}_1`).exitCode, '0:0');
  const alone = (await eventsOf(join(dir, 'one-1.out'))).find((e) => e.event === 'job-complete')! as unknown as { entries: number; uploaded: number };
  assert.equal(alone.entries, first[1]!.entries, 'the same entries as task 1 of the array');
  assert.equal(alone.uploaded, 0);
  // Bare --shard auto cannot know N: refused (exit 2), nothing read.
  const bare = await script(dir, 'bare.sh', `exec "${node}" "${BIN}" upload "${tree}" s3://${bucket}/tree/ --shard auto --json`);
  const b = sbatch(['--array=1', '-o', join(dir, 'bare-%a.out'), bare]);
  await waitJobs([b]);
  assert.equal(jobState(`${b}_1`).exitCode, '2:0');
  assert.match(await readFile(join(dir, 'bare-1.out'), 'utf8'), /--shard auto\/N/);
});

/** The JSON lines of a job's output (stderr is in the same file: its lines are text). */
async function eventsOf(path: string): Promise<ReturnType<typeof jsonLines>> {
  return jsonLines((await readFile(path, 'utf8')).split('\n').filter((l) => l.startsWith('{')).join('\n'));
}

/** Runs the command and returns its last JSON line (the result). */
function spawnJson(args: string[]): Record<string, unknown> {
  const r = spawnSyncNode(args);
  const last = jsonLines(r.stdout).at(-1);
  if (!last) throw new Error(`no result from ${args.join(' ')}: ${r.stderr}`);
  return last;
}

function spawnSyncNode(args: string[]) {
  return spawnSync(node, args, { env: process.env, encoding: 'utf8' });
}
