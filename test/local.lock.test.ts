/**
 * Defect 3 of the engine issue: the lock could be held by two live processes. Real processes race
 * to take over locks left by a dead holder; never two winners. Release removes only its own lock,
 * and `abort` takes the lock like an upload does.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { readFile, readdir, rename, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { PausedError, Upload, UploadLockedError } from '../src/index.ts';
import { abortUploads } from '../src/upload/inspect.ts';
import { LOCK_HEARTBEAT_MS, LOCK_STALE_MS, acquireLock } from '../src/local/lock.ts';
import { SdkS3Port, createS3Client } from '../src/s3/adapter.ts';
import { emulatorClient } from './emulator/client.ts';
import { S3Emulator } from './emulator/server.ts';
import { tempDir } from './helpers/s3.ts';

const ROUNDS = 60;
const RACERS = 4;
const STEP_MS = 12;

function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());
}

test(`lock: ${RACERS} real processes racing over ${ROUNDS} locks left by a dead holder: exactly one holder each time`, async () => {
  const dir = await tempDir();
  const dead = deadPid();
  for (let r = 0; r < ROUNDS; r++) {
    await writeFile(join(dir, `${r}.json.lock`), JSON.stringify({ pid: dead, host: hostname(), startedAt: 'then', nonce: `dead-${r}` }));
  }
  const start = Date.now() + 2500; // every racer has loaded by then
  const script = `
    import { appendFileSync } from 'node:fs';
    import { acquireLock } from ${JSON.stringify(new URL('../src/local/lock.ts', import.meta.url).href)};
    const won = [];
    for (let r = 0; r < ${ROUNDS}; r++) {
      const at = ${start} + r * ${STEP_MS};
      while (Date.now() < at) await new Promise((res) => setTimeout(res, 1));
      try {
        await acquireLock(${JSON.stringify(dir)} + '/' + r + '.json', {});
        appendFileSync(${JSON.stringify(dir)} + '/holders-' + r, process.pid + '\\n');
        won.push(r); // held, never released: a second winner would be two live holders
      } catch (err) {
        if (err.code !== 'UPLOAD_LOCKED') throw err;
      }
    }
    process.stdout.write('done ' + won.length + '\\n');
    process.stdin.resume(); // stay alive (holding every lock won) until the parent says so
    process.stdin.on('end', () => process.exit(0));
  `;
  const children = Array.from({ length: RACERS }, () => spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] }));
  const wins = await Promise.all(
    children.map(async (c) => {
      for await (const line of createInterface({ input: c.stdout! })) if (line.startsWith('done ')) return Number(line.slice(5));
      throw new Error('a racer died');
    }),
  );
  try {
    const names = await readdir(dir);
    for (let r = 0; r < ROUNDS; r++) {
      const holders = names.includes(`holders-${r}`) ? (await readFile(join(dir, `holders-${r}`), 'utf8')).trim().split('\n') : [];
      assert.equal(holders.length, 1, `round ${r}: holders ${holders.join(', ') || 'none'}`);
      const lock = JSON.parse(await readFile(join(dir, `${r}.json.lock`), 'utf8'));
      assert.equal(String(lock.pid), holders[0], `round ${r}: the lock file names the holder`);
    }
    assert.equal(wins.reduce((a, b) => a + b, 0), ROUNDS);
    assert.deepEqual(names.filter((n) => n.includes('.claim-') || n.includes('.new-')), [], 'no claim or temp file left behind');
  } finally {
    for (const c of children) {
      c.stdin!.end();
      await once(c, 'exit');
    }
  }
});

test('lock: release removes only its own lock', async () => {
  const dir = await tempDir();
  const p = join(dir, 'j.json');
  const release = await acquireLock(p, {});
  const mine = await readFile(`${p}.lock`, 'utf8');
  assert.ok(JSON.parse(mine).nonce, 'written whole, with its nonce');
  // Someone else's lock now stands at the path (say the file was replaced by hand).
  const other = JSON.stringify({ pid: process.pid, host: hostname(), startedAt: 'x', nonce: 'someone-else' });
  await writeFile(`${p}.lock`, other);
  await release();
  assert.equal(await readFile(`${p}.lock`, 'utf8'), other, 'not removed: it is not ours');
});

test('lock: a reader never finds a lock file empty or torn, however its read falls against acquisitions, takeovers and releases', async () => {
  const dir = await tempDir();
  const p = join(dir, 'j.json');
  const dead = deadPid();
  let reads = 0;
  const bad: string[] = [];
  let running = true;
  const reader = (async () => {
    while (running) {
      const text = await readFile(`${p}.lock`, 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      reads++;
      try {
        if (typeof JSON.parse(text).nonce !== 'string') bad.push(text);
      } catch {
        bad.push(text);
      }
    }
  })();
  for (let i = 0; i < 40; i++) {
    if (i % 2) {
      // A dead holder's lock, put in place whole (the test's own write must not be what the reader catches torn).
      await writeFile(`${p}.dead`, JSON.stringify({ pid: dead, host: hostname(), startedAt: 'then', nonce: `dead-${i}` }));
      await rename(`${p}.dead`, `${p}.lock`);
    }
    const release = await acquireLock(p, {});
    await new Promise((r) => setTimeout(r, 2));
    await release();
  }
  running = false;
  await reader;
  assert.ok(reads > 20, `${reads} reads landed on a lock file`);
  assert.deepEqual(bad, [], 'every read found a whole lock');
});

test('lock: abort takes the lock, so it cannot pull an upload from under a running process', async () => {
  const emu = await S3Emulator.start({ minPartSize: 1024 });
  try {
    await emulatorClient(emu.endpoint).send(new CreateBucketCommand({ Bucket: 'lk' }));
    const dir = await tempDir();
    const path = join(dir, 'f.bin');
    await writeFile(path, randomBytes(5000));
    const s3 = new SdkS3Port(createS3Client({ endpoint: emu.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }));
    const ac = new AbortController();
    const up = new Upload({ s3, file: path, bucket: 'lk', key: 'k', partSize: 1024, minPartSize: 1, stateDir: dir, concurrency: 1, signal: ac.signal });
    let uploadId = '';
    up.on('plan', (e) => (uploadId = e.uploadId));
    up.on('part-done', () => ac.abort());
    await assert.rejects(up.done(), PausedError);
    const journal = (await readdir(dir)).find((n) => n.endsWith('.json'))!;
    // A process is driving it (its lock is held)…
    const release = await acquireLock(join(dir, journal), {});
    await assert.rejects(abortUploads(s3, 'lk', [{ key: 'k', uploadId }], dir), UploadLockedError);
    assert.ok(emu.uploadIds().includes(uploadId), 'the upload is still there');
    await release();
    // …and once it is not, abort goes through.
    assert.deepEqual(await abortUploads(s3, 'lk', [{ key: 'k', uploadId }], dir), [uploadId]);
    assert.ok(!emu.uploadIds().includes(uploadId));
  } finally {
    await emu.close();
  }
});

test('lock: a dead holder whose takeover a live process has claimed is not taken over twice; an unreadable lock is stale only once old', async () => {
  const dir = await tempDir();
  const p = join(dir, 'j.json');
  const dead = deadPid();
  await writeFile(`${p}.lock`, JSON.stringify({ pid: dead, host: hostname(), startedAt: 'then', nonce: 'dead-1' }));
  // A live process holds the claim on that dead lock, mid-takeover.
  const live = spawn('sleep', ['60'], { stdio: 'ignore' });
  const claim = JSON.stringify({ pid: live.pid, host: hostname(), startedAt: 'now', nonce: 'live-claimer' });
  await writeFile(`${p}.lock.claim-dead-1`, claim);
  try {
    await assert.rejects(acquireLock(p, {}), UploadLockedError);
  } finally {
    live.kill();
  }
  assert.equal(await readFile(`${p}.lock.claim-dead-1`, 'utf8'), claim, 'the live claim is left alone');
  // The claimer dies too: its claim is stale in turn, and the lock is taken over.
  await writeFile(`${p}.lock.claim-dead-1`, JSON.stringify({ pid: dead, host: hostname(), startedAt: 'then', nonce: 'dead-claimer' }));
  const release = await acquireLock(p, {});
  assert.equal(JSON.parse(await readFile(`${p}.lock`, 'utf8')).pid, process.pid);
  await release();

  // Garbage in a lock file: refused while fresh (it could be anything), taken over once old.
  await writeFile(`${p}.lock`, 'garbage');
  await assert.rejects(acquireLock(p, {}), UploadLockedError);
  const old = new Date(Date.now() - 60_000);
  await utimes(`${p}.lock`, old, old);
  await (await acquireLock(p, {}))();
});

test('lock: Upload.abort() takes the lock as well', async () => {
  const emu = await S3Emulator.start({ minPartSize: 1024 });
  try {
    await emulatorClient(emu.endpoint).send(new CreateBucketCommand({ Bucket: 'lk2' }));
    const dir = await tempDir();
    const path = join(dir, 'f.bin');
    await writeFile(path, randomBytes(5000));
    const s3 = new SdkS3Port(createS3Client({ endpoint: emu.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }));
    const mk = (signal?: AbortSignal) => new Upload({ s3, file: path, bucket: 'lk2', key: 'k', partSize: 1024, minPartSize: 1, stateDir: dir, concurrency: 1, ...(signal ? { signal } : {}) });
    const ac = new AbortController();
    const up = mk(ac.signal);
    up.on('part-done', () => ac.abort());
    await assert.rejects(up.done(), PausedError);
    const journal = (await readdir(dir)).find((n) => n.endsWith('.json'))!;
    const release = await acquireLock(join(dir, journal), {});
    await assert.rejects(mk().abort(), UploadLockedError);
    await release();
    assert.ok(await mk().abort());
  } finally {
    await emu.close();
  }
});

test('lock: a restarted container is PID 1 again: a lock naming the caller\'s own PID with another nonce, or recorded under another boot, is stale once its heartbeat is silent; this process\'s own held lock is live', async () => {
  const dir = await tempDir();
  const p = join(dir, 'j.json');
  const silent = () => new Date(Date.now() - LOCK_STALE_MS - 1000);
  // This PID, a nonce this process never held, no heartbeat since: the holder died and the PID came round again.
  await writeFile(`${p}.lock`, JSON.stringify({ pid: process.pid, host: hostname(), startedAt: 'before the restart', nonce: 'earlier-life' }));
  await utimes(`${p}.lock`, silent(), silent());
  const r1 = await acquireLock(p, {});
  await assert.rejects(acquireLock(p, {}), UploadLockedError, 'a lock this process holds is live');
  await r1();
  // A live PID, but recorded under another boot of this machine, and silent since.
  await writeFile(`${p}.lock`, JSON.stringify({ pid: process.ppid, host: hostname(), startedAt: 'yesterday', nonce: 'old-boot', bootId: 'another-boot' }));
  await utimes(`${p}.lock`, silent(), silent());
  await (await acquireLock(p, {}))();
});

test('lock: another boot id, or this PID with another nonce, whose heartbeat still beats is live (another machine of the same name on a shared folder; another thread of this process)', async () => {
  const dir = await tempDir();
  const p = join(dir, 'j.json');
  for (const holder of [
    { pid: 1, host: hostname(), startedAt: 'x', nonce: 'twin-machine', bootId: 'another-boot' },
    { pid: process.pid, host: hostname(), startedAt: 'x', nonce: 'another-thread' },
  ]) {
    await writeFile(`${p}.lock`, JSON.stringify(holder));
    const beat = setInterval(() => void utimes(`${p}.lock`, new Date(), new Date()), 500);
    try {
      await assert.rejects(acquireLock(p, {}), UploadLockedError, holder.nonce);
    } finally {
      clearInterval(beat);
    }
  }
});

test('lock: a worker thread of this process cannot take the lock its main thread holds (threads share the PID)', async () => {
  const dir = await tempDir();
  const p = join(dir, 'j.json');
  const release = await acquireLock(p, {});
  try {
    // From source, as the hash threads start (tsx registered in the thread before the module loads).
    const api = import.meta.resolve('tsx/esm/api');
    const lock = new URL('../src/local/lock.ts', import.meta.url).href;
    const code = `const { workerData, parentPort } = require('node:worker_threads');
      import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(lock)}); })
        .then((l) => l.acquireLock(workerData, {}))
        .then(() => parentPort.postMessage('ALSO HOLDS'), (e) => parentPort.postMessage(e.code ?? String(e)));`;
    const w = new Worker(code, { eval: true, workerData: p });
    const [answer] = (await once(w, 'message')) as [string];
    await w.terminate();
    assert.equal(answer, 'UPLOAD_LOCKED');
  } finally {
    await release();
  }
});

test('lock: a holder in another PID namespace of this host is judged by its heartbeat: silent for LOCK_STALE_MS it is stale; touched while watched it is live', async () => {
  const dir = await tempDir();
  const p = join(dir, 'j.json');
  const pidNs = 'pid:[1]'; // not this process's namespace
  const other = { pid: 1, host: hostname(), startedAt: 'x', nonce: 'container', pidNs };
  await writeFile(`${p}.lock`, JSON.stringify(other));
  const silent = new Date(Date.now() - LOCK_STALE_MS - 1000);
  await utimes(`${p}.lock`, silent, silent);
  await (await acquireLock(p, {}))();
  await writeFile(`${p}.lock`, JSON.stringify(other));
  const recent = new Date(Date.now() - LOCK_STALE_MS + 1500);
  await utimes(`${p}.lock`, recent, recent);
  const beat = setTimeout(() => void utimes(`${p}.lock`, new Date(), new Date()), 500);
  await assert.rejects(acquireLock(p, {}), UploadLockedError, 'its heartbeat moved while watched');
  clearTimeout(beat);
});

test('lock: a held lock\'s file is touched while held (its heartbeat), and not after release', async () => {
  const dir = await tempDir();
  const p = join(dir, 'j.json');
  const release = await acquireLock(p, {});
  const old = new Date(Date.now() - 60_000);
  await utimes(`${p}.lock`, old, old);
  await new Promise((r) => setTimeout(r, LOCK_HEARTBEAT_MS + 500));
  assert.ok((await stat(`${p}.lock`)).mtimeMs > Date.now() - LOCK_HEARTBEAT_MS - 1000, 'touched');
  await release();
  await assert.rejects(stat(`${p}.lock`), { code: 'ENOENT' });
});

test('lock: a held lock replaced by another holder\'s (a takeover after a long pause) is never touched by the old holder\'s heartbeat', async () => {
  const dir = await tempDir();
  const p = join(dir, 'j.json');
  const release = await acquireLock(p, {});
  const theirs = join(dir, 'theirs');
  await writeFile(theirs, JSON.stringify({ pid: 999_999, host: 'elsewhere', startedAt: 'now', nonce: 'theirs' }));
  const old = new Date(Date.now() - 60_000);
  await utimes(theirs, old, old);
  await rename(theirs, `${p}.lock`);
  await new Promise((r) => setTimeout(r, 2 * LOCK_HEARTBEAT_MS + 500));
  assert.equal(Math.round((await stat(`${p}.lock`)).mtimeMs / 1000), Math.round(old.getTime() / 1000), 'not touched');
  await release();
  assert.equal(JSON.parse(await readFile(`${p}.lock`, 'utf8')).nonce, 'theirs', 'release left their lock');
});

test('lock: with wait, a live holder is waited for (onWait once) and the lock taken when it is released; a holder whose heartbeat is long silent ends the wait with UPLOAD_LOCKED; an abort ends it too', async () => {
  const dir = await tempDir();
  const p = join(dir, 'j.json');
  const first = await acquireLock(p, {});
  const waits: { pid: number; host: string }[] = [];
  const t0 = Date.now();
  setTimeout(() => void first(), LOCK_HEARTBEAT_MS + 500);
  const second = await acquireLock(p, {}, 'folder job', { onWait: (h) => waits.push(h) });
  assert.ok(Date.now() - t0 >= LOCK_HEARTBEAT_MS, 'it waited for the release');
  assert.deepEqual(waits, [{ pid: process.pid, host: hostname() }]);
  await second();
  // Another host's lock, silent for longer than 3 × LOCK_STALE_MS: not waited for.
  await writeFile(`${p}.lock`, JSON.stringify({ pid: 4242, host: 'gone-node', startedAt: 'then', nonce: 'gone' }));
  const silent = new Date(Date.now() - 3 * LOCK_STALE_MS - 1000);
  await utimes(`${p}.lock`, silent, silent);
  await assert.rejects(acquireLock(p, {}, 'folder job', { onWait: () => assert.fail('no wait') }), (e) => e instanceof UploadLockedError && e.holder.host === 'gone-node');
  // Fresh again: waited for, until the signal stops the wait.
  const now = new Date();
  await utimes(`${p}.lock`, now, now);
  const ac = new AbortController();
  setTimeout(() => ac.abort(new Error('stopped')), 300);
  const t1 = Date.now();
  await assert.rejects(acquireLock(p, {}, 'folder job', { onWait: () => undefined, signal: ac.signal }), /stopped/);
  assert.ok(Date.now() - t1 < LOCK_HEARTBEAT_MS, 'stopped at once, not at the next look');
});
