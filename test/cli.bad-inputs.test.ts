/**
 * The bad-input catalogue (README: "Bad inputs"): each input gets a typed error, one clear line,
 * the documented exit code, and nothing lost: nothing created on the server when a local check
 * refuses, the journal kept when the upload can go on. Real processes of the built command, against
 * the local RADOS Gateway, or against the S3 emulator for what RGW will not do on demand.
 */
import assert from 'node:assert/strict';
import { createUpload } from '../src/index.ts';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { MiB } from '../src/index.ts';
import { emulatorClient } from './emulator/client.ts';
import { S3Emulator, type FaultRule } from './emulator/server.ts';
import { BIN, cliEnv, jsonLines, runCli, runCliUnprivileged, type CliRun } from './helpers/cli.ts';
import { getObjectBytes, makeBucket, plainClient, randomFile, sha256, tempDir } from './helpers/s3.ts';

/** One line on stderr, `partwise: CODE: …`, no stack trace. */
function oneClearLine(r: Pick<CliRun, 'stderr'>, code: RegExp) {
  const lines = r.stderr.trim().split('\n').filter((l) => !/NodeVersionSupportWarning|node >=22|a\.co\/|trace-warnings|^\s*$|AWS SDK for JavaScript|versions published|continue receiving|security updates|More information/.test(l));
  const errors = lines.filter((l) => l.startsWith('partwise: '));
  assert.equal(errors.length, 1, `one error line:\n${r.stderr}`);
  assert.match(errors[0]!, code);
  assert.doesNotMatch(r.stderr, /^\s+at .+\(.*:\d+:\d+\)$/m, 'no stack trace');
}

/** Starts an upload with --json; `onEvent` may act on each event (kill, signal). */
async function drive(args: string[], env: NodeJS.ProcessEnv, onEvent: (e: { event: string; [k: string]: unknown }, child: ReturnType<typeof spawn>) => void) {
  const child = spawn(process.execPath, [BIN, ...args, '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = once(child, 'exit');
  const events: { event: string; [k: string]: unknown }[] = [];
  for await (const line of createInterface({ input: child.stdout! })) {
    const e = JSON.parse(line);
    events.push(e);
    onEvent(e, child);
  }
  const [code] = await exited;
  return { code: code as number | null, stderr, events };
}

describe('bad inputs on the local RADOS Gateway', () => {
  let bucket: string;
  before(async () => {
    bucket = await makeBucket('pw-bad');
  });
  const openUploads = async (key: string) => ((await plainClient().send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }))).Uploads ?? []).filter((u) => u.Key === key);
  const stateFiles = async (dir: string) => (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json') || n.includes('.intent') || n.includes('.lock'));

  test('bad input: a missing file → SOURCE_UNREADABLE (exit 1); a directory to the single-file API → SOURCE_UNREADABLE; nothing created', async () => {
    const dir = await tempDir();
    const env = cliEnv(dir);
    const r = await runCli(['upload', join(dir, 'absent.bin'), `s3://${bucket}/bad/source`], env);
    assert.equal(r.code, 1);
    oneClearLine(r, /^partwise: SOURCE_UNREADABLE: /);
    assert.match(r.stderr, /no such file/);
    // The command takes a folder as a job (jobs.folder.test.ts); the single-file API refuses one.
    await assert.rejects(createUpload({ file: dir, bucket, key: 'bad/source', stateDir: dir }).done(), (e: { code?: string; message?: string }) => e.code === 'SOURCE_UNREADABLE' && /it is a directory/.test(e.message ?? ''));
    assert.deepEqual(await openUploads('bad/source'), []);
  });

  test('bad input: an unreadable file (mode 000, for a user whom permissions bind) → SOURCE_UNREADABLE before anything is created', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 1024);
    await chmod(f.path, 0o000);
    const r = await runCliUnprivileged(['upload', f.path, `s3://${bucket}/bad/unreadable`], cliEnv(join(dir, 'state')));
    assert.equal(r.code, 1, r.stderr);
    oneClearLine(r, /^partwise: SOURCE_UNREADABLE: .*permission denied/);
    assert.deepEqual(await openUploads('bad/unreadable'), []);
  });

  test('bad input: an invalid s3:// URL or bucket name → usage error (exit 2)', async () => {
    const env = cliEnv(await tempDir());
    for (const url of ['s3:/x/y', 'http://b/k', 's3://b', 's3://-bad-/k', 's3://a..b/k', 's3://x/k', `s3://bucket/${'k'.repeat(1025)}`]) {
      const r = await runCli(['upload', '/etc/hostname', url], env);
      assert.equal(r.code, 2, `${url}: ${r.stderr}`);
      assert.match(r.stderr, /^partwise: /);
    }
  });

  test('bad input: a missing bucket → NoSuchBucket in words (exit 1); no journal, intent or upload left', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 1024);
    const r = await runCli(['upload', f.path, 's3://pw-no-such-bucket-zz/k'], cliEnv(dir));
    assert.equal(r.code, 1);
    oneClearLine(r, /^partwise: S3_REQUEST_FAILED: \w+ failed: NoSuchBucket \(HTTP 404\): the bucket does not exist/);
    assert.deepEqual(await stateFiles(dir), []);
  });

  test('bad input: wrong credentials (unknown key, wrong secret) → said in words (exit 1), nothing created', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 1024);
    const base = cliEnv(dir);
    const unknown = await runCli(['upload', f.path, `s3://${bucket}/bad/creds`], { ...base, AWS_ACCESS_KEY_ID: 'NOSUCHKEY0000000000' });
    assert.equal(unknown.code, 1);
    oneClearLine(unknown, /InvalidAccessKeyId.*does not know this access key/);
    const wrong = await runCli(['upload', f.path, `s3://${bucket}/bad/creds`], { ...base, AWS_SECRET_ACCESS_KEY: 'wrong-secret' });
    assert.equal(wrong.code, 1);
    oneClearLine(wrong, /SignatureDoesNotMatch.*secret key does not match/);
    assert.deepEqual(await openUploads('bad/creds'), []);
  });

  test('bad input: no credentials anywhere → said in words (exit 1), not "the server refused", nothing created', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 1024);
    const env: NodeJS.ProcessEnv = { ...cliEnv(dir), HOME: dir, AWS_CONFIG_FILE: join(dir, 'none'), AWS_SHARED_CREDENTIALS_FILE: join(dir, 'none'), AWS_EC2_METADATA_DISABLED: 'true' };
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_WEB_IDENTITY_TOKEN_FILE']) delete env[k];
    const r = await runCli(['upload', f.path, `s3://${bucket}/bad/nocreds`], env);
    assert.equal(r.code, 1, r.stderr);
    oneClearLine(r, /NoCredentials \(Could not load credentials from any providers\): no credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE/);
    assert.doesNotMatch(r.stderr, /server refused|no HTTP answer/);
    assert.deepEqual(await stateFiles(dir), []);
    assert.deepEqual(await openUploads('bad/nocreds'), []);
  });

  test('bad input: verify against a key with no object, status of a folder → said as what they are', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 1024);
    const v = await runCli(['verify', f.path, `s3://${bucket}/bad/nothing-here`], cliEnv(dir));
    assert.equal(v.code, 3, v.stderr);
    assert.match(v.stderr, /does not match the local file \(there is no object at the key \(or no such bucket\)\)/);
    const st = await runCli(['status', dir, `s3://${bucket}/bad/folder`], cliEnv(dir));
    assert.equal(st.code, 1, st.stderr);
    assert.match(st.stderr, /it is a directory, and this takes one file \(the command uploads a folder as a job: partwise upload <folder>/);
  });

  test('bad input: no region configured → said in words (exit 1), before any request', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 1024);
    const env: NodeJS.ProcessEnv = { ...cliEnv(dir), HOME: dir, AWS_CONFIG_FILE: join(dir, 'none'), AWS_SHARED_CREDENTIALS_FILE: join(dir, 'none') };
    delete env.AWS_REGION;
    delete env.AWS_DEFAULT_REGION;
    const r = await runCli(['upload', f.path, `s3://${bucket}/bad/region`], env);
    assert.equal(r.code, 1, r.stderr);
    oneClearLine(r, /RegionMissing.*no region is configured: set AWS_REGION/);
    assert.deepEqual(await stateFiles(dir), []);
  });

  test('bad input: an endpoint that is not a URL (--endpoint, AWS_ENDPOINT_URL) → INVALID_OPTIONS in words (exit 2), nothing written', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 1024);
    const flag = await runCli(['upload', f.path, `s3://${bucket}/bad/endpoint`, '--endpoint', 'http://[oops'], cliEnv(dir));
    assert.equal(flag.code, 2, flag.stderr);
    oneClearLine(flag, /INVALID_OPTIONS: the endpoint "http:\/\/\[oops" is not a URL/);
    const env = await runCli(['status', f.path, `s3://${bucket}/bad/endpoint`], { ...cliEnv(dir), AWS_ENDPOINT_URL: '::nope' });
    assert.equal(env.code, 2, env.stderr);
    oneClearLine(env, /INVALID_OPTIONS: the endpoint "::nope" is not a URL \(AWS_ENDPOINT_URL\)/);
    // The S3-specific variable comes first; an empty one is passed over, as the SDK does.
    const s3env = await runCli(['status', f.path, `s3://${bucket}/bad/endpoint`], { ...cliEnv(dir), AWS_ENDPOINT_URL_S3: 'http://[s3', AWS_ENDPOINT_URL: 'http://127.0.0.1:7490' });
    assert.equal(s3env.code, 2, s3env.stderr);
    oneClearLine(s3env, /INVALID_OPTIONS: the endpoint "http:\/\/\[s3" is not a URL \(AWS_ENDPOINT_URL_S3\)/);
    const empty = await runCli(['status', f.path, `s3://${bucket}/bad/endpoint`], { ...cliEnv(dir), AWS_ENDPOINT_URL_S3: '', AWS_ENDPOINT_URL: '::nope' });
    assert.equal(empty.code, 2, empty.stderr);
    oneClearLine(empty, /INVALID_OPTIONS: the endpoint "::nope" is not a URL \(AWS_ENDPOINT_URL\)/);
    assert.deepEqual(await stateFiles(dir), []);
  });

  test('bad input: an unreachable endpoint and an unknown host → said in words (exit 1), nothing left behind', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 1024);
    const refused = await runCli(['upload', f.path, 's3://bucket/k', '--endpoint', 'http://127.0.0.1:1'], cliEnv(dir));
    assert.equal(refused.code, 1);
    oneClearLine(refused, /ECONNREFUSED.*nothing answers at the endpoint/);
    // An unknown host, in a network namespace of its own (no lookup leaves this machine).
    const u = spawnSync('unshare', ['-n', process.execPath, BIN, 'upload', f.path, 's3://bucket/k', '--endpoint', 'http://partwise-no-such-host.example:7490'], { env: cliEnv(dir), encoding: 'utf8' });
    assert.equal(u.status, 1, u.stderr);
    oneClearLine(u, /(EAI_AGAIN|ENOTFOUND).*host name does not resolve/);
    assert.deepEqual(await stateFiles(dir), [], 'no journal, no intent: nothing was created');
  });

  test('bad input: more parts than 10,000 at the given size → the part size is raised, with a notice; above 10,000 × 5 GiB → FILE_TOO_LARGE (exit 1)', async () => {
    const dir = await tempDir('partwise-huge-');
    const huge = join('/dev/shm', `partwise-huge-${randomBytes(4).toString('hex')}.bin`);
    try {
      await writeFile(huge, '');
      await truncate(huge, 80 * 1024 * MiB); // sparse: 80 GiB of nothing
      const key = 'bad/many-parts';
      const first = await drive(['upload', huge, `s3://${bucket}/${key}`, '--part-size', '5MiB', '--concurrency', '1'], cliEnv(dir), (e, c) => e.event === 'plan' && c.kill('SIGINT'));
      assert.equal(first.code, 130);
      const plan = first.events.find((e) => e.event === 'plan')!;
      assert.equal(plan.partSizeAdjustedFrom, 5 * MiB);
      assert.equal(plan.partSize, 9 * MiB, 'the smallest whole MiB that fits 80 GiB in 10,000 parts');
      assert.ok((plan.partCount as number) <= 10_000);
      const abort = await runCli(['abort', `s3://${bucket}/${key}`], cliEnv(dir));
      assert.equal(abort.code, 0, abort.stderr);
      await truncate(huge, 10_000 * 5 * 1024 * MiB + 1);
      const big = await runCli(['upload', huge, `s3://${bucket}/bad/too-large`], cliEnv(dir));
      assert.equal(big.code, 1);
      oneClearLine(big, /^partwise: FILE_TOO_LARGE: /);
      assert.deepEqual(await openUploads('bad/too-large'), []);
    } finally {
      await rm(huge, { force: true });
    }
  });

  test('bad input: an invalid part size or concurrency → usage error (exit 2)', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 1024);
    for (const flags of [['--part-size', '6GiB'], ['--part-size', '1MiB'], ['--part-size', 'big'], ['--concurrency', '0'], ['--concurrency', '2.5']]) {
      const r = await runCli(['upload', f.path, `s3://${bucket}/bad/flags`, ...flags], cliEnv(dir));
      assert.equal(r.code, 2, `${flags.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^partwise: /);
    }
    assert.deepEqual(await openUploads('bad/flags'), []);
  });

  test('bad input: a file that grows or shrinks during the upload, or is rewritten between runs → SOURCE_CHANGED (exit 1), the journal kept', async () => {
    for (const change of ['grow', 'shrink', 'rewrite-between-runs'] as const) {
      const dir = await tempDir();
      const f = await randomFile(dir, 30 * MiB);
      const key = `bad/changed-${change}`;
      const env = cliEnv(dir);
      const args = ['upload', f.path, `s3://${bucket}/${key}`, '--part-size', '5MiB', '--concurrency', '1'];
      const r = await drive(args, env, (e, c) => {
        if (e.event !== 'part-done' || e.partNumber !== 1) return;
        if (change === 'grow') execFileSync('sh', ['-c', `head -c 1000 /dev/urandom >> '${f.path}'`]);
        if (change === 'shrink') execFileSync('truncate', ['-s', String(12 * MiB), f.path]);
        if (change === 'rewrite-between-runs') c.kill('SIGINT');
      });
      if (change === 'rewrite-between-runs') {
        assert.equal(r.code, 130);
        await writeFile(f.path, randomBytes(30 * MiB));
        const again = await runCli(args, env);
        assert.equal(again.code, 1);
        oneClearLine(again, /^partwise: SOURCE_CHANGED: .*--fresh/);
      } else {
        assert.equal(r.code, 1, r.stderr);
        oneClearLine(r, /^partwise: SOURCE_CHANGED: /);
      }
      assert.equal((await readdir(dir)).filter((n) => n.endsWith('.json')).length, 1, 'journal kept (abort it, or --fresh)');
      const fresh = await runCli([...args, '--fresh'], env);
      assert.equal(fresh.code, 0, fresh.stderr);
      assert.deepEqual(await openUploads(key), [], '--fresh aborted the old upload');
    }
  });

  test('bad input: a corrupt, truncated, foreign or future-schema journal → JOURNAL_CORRUPT / JOURNAL_MISMATCH (exit 1) saying --fresh; --fresh sets it aside', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 12 * MiB);
    const env = cliEnv(dir);
    const args = ['upload', f.path, `s3://${bucket}/bad/journal`, '--part-size', '5MiB', '--concurrency', '1'];
    const first = await drive(args, env, (e, c) => e.event === 'part-done' && c.kill('SIGINT'));
    assert.equal(first.code, 130);
    const jf = join(dir, (await readdir(dir)).find((n) => n.endsWith('.json'))!);
    const good = (await import('node:fs/promises')).readFile(jf, 'utf8');
    const text = await good;
    const cases: [string, string, RegExp][] = [
      ['corrupt', 'not json at all', /JOURNAL_CORRUPT.*not valid JSON.*--fresh/],
      ['truncated', text.slice(0, text.length / 2), /JOURNAL_CORRUPT/],
      ['future-schema', JSON.stringify({ ...JSON.parse(text), schema: 99 }), /JOURNAL_CORRUPT.*schema 99/],
      ['foreign', JSON.stringify({ ...JSON.parse(text), key: 'someone/else' }), /JOURNAL_MISMATCH.*--fresh/],
    ];
    for (const [name, content, want] of cases) {
      await writeFile(jf, content);
      const r = await runCli(args, env);
      assert.equal(r.code, 1, name);
      oneClearLine(r, want);
    }
    await writeFile(jf, text);
    const ok = await runCli(args, env);
    assert.equal(ok.code, 0, ok.stderr);
  });

  test('bad input: two processes on one upload → UPLOAD_LOCKED (exit 1) for the second; the first finishes', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 160 * MiB);
    const env = cliEnv(dir);
    const args = ['upload', f.path, `s3://${bucket}/bad/two`, '--part-size', '5MiB', '--concurrency', '1'];
    let second: Promise<CliRun> | undefined;
    const first = await drive(args, env, (e) => {
      if (e.event === 'part-done' && !second) second = runCli(args, env);
    });
    const r2 = await second!;
    assert.equal(r2.code, 1, r2.stderr);
    oneClearLine(r2, /^partwise: UPLOAD_LOCKED: Another partwise process \(pid \d+/);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(sha256(await getObjectBytes(bucket, 'bad/two')), f.sha256);
  });

  test('bad input: a read-only state folder → STATE_UNWRITABLE (exit 1) before anything is created', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 1024);
    const ro = join(dir, 'ro');
    await mkdir(ro);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', ro]);
    try {
      const r = await runCli(['upload', f.path, `s3://${bucket}/bad/ro-state`], { ...cliEnv(ro) });
      assert.equal(r.code, 1);
      oneClearLine(r, /^partwise: STATE_UNWRITABLE: Cannot write the state folder .*read-only.*Nothing was sent/);
      assert.deepEqual(await openUploads('bad/ro-state'), []);
    } finally {
      execFileSync('umount', [ro]);
    }
  });

  test('bad input: the state folder fills up mid-upload (ENOSPC) → STATE_UNWRITABLE, resumable; once freed, the same command resumes', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 30 * MiB);
    const state = join(dir, 'state');
    await mkdir(state);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', state]);
    try {
      const env = cliEnv(state);
      const args = ['upload', f.path, `s3://${bucket}/bad/full-state`, '--part-size', '5MiB', '--concurrency', '1'];
      const filler = join(state, 'filler');
      // Capped, so the first part is recorded half a second after the plan, not before the test fills the folder.
      const r = await drive([...args, '--max-rate', '10MiB/s'], env, (e) => {
        // Fill the folder once the journal is written, before the first part is recorded: that
        // record (the part log's first block) hits ENOSPC while parts are on their way.
        if (e.event === 'plan') execFileSync('sh', ['-c', `dd if=/dev/zero of='${filler}' bs=4k 2>/dev/null || true`]);
      });
      assert.equal(r.code, 1, r.stderr);
      oneClearLine(r, /STATE_UNWRITABLE: Cannot write the state folder .*the disk is full.*resume/);
      await rm(filler);
      const again = await drive(args, env, () => undefined);
      assert.equal(again.code, 0, again.stderr);
      const rec = again.events.find((e) => e.event === 'reconcile')!;
      assert.ok((rec.verified as number) >= 1, 'parts sent before the disk filled were verified and kept');
      assert.equal(sha256(await getObjectBytes(bucket, 'bad/full-state')), f.sha256);
    } finally {
      execFileSync('umount', [state]);
    }
  });

  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    test(`bad input: ${sig} → exit 130, the upload resumable; the same command finishes it`, async () => {
      const dir = await tempDir();
      const f = await randomFile(dir, 20 * MiB);
      const env = cliEnv(dir);
      const args = ['upload', f.path, `s3://${bucket}/bad/${sig}`, '--part-size', '5MiB', '--concurrency', '1'];
      const r = await drive(args, env, (e, c) => e.event === 'part-done' && e.partNumber === 1 && c.kill(sig));
      assert.equal(r.code, 130, r.stderr);
      assert.match(r.stderr, /PAUSED/);
      const again = await drive(args, env, () => undefined);
      assert.equal(again.code, 0, again.stderr);
      assert.ok((again.events.find((e) => e.event === 'reconcile')!.verified as number) >= 1);
      assert.equal(sha256(await getObjectBytes(bucket, `bad/${sig}`)), f.sha256);
    });
  }
});

describe('bad inputs the gateway will not produce on demand (S3 emulator)', () => {
  let emu: S3Emulator;
  const Bucket = 'bad';
  before(async () => {
    emu = await S3Emulator.start();
    await emulatorClient(emu.endpoint).send(new CreateBucketCommand({ Bucket }));
  });
  after(() => emu.close());

  const env = (dir: string): NodeJS.ProcessEnv => ({ ...process.env, AWS_ACCESS_KEY_ID: 'emulator', AWS_SECRET_ACCESS_KEY: 'emulator-secret', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL: emu.endpoint, PARTWISE_STATE_DIR: dir });
  const withFault = <T>(rule: FaultRule, fn: () => Promise<T>) => emu.withFault(rule, fn);
  const file = async () => {
    const dir = await tempDir();
    const path = join(dir, 'f.bin');
    await writeFile(path, randomBytes(16 * MiB + 5));
    return { dir, path };
  };
  const up = (f: { path: string }, key: string, extra: string[] = []) => ['upload', f.path, `s3://${Bucket}/${key}`, '--part-size', '5MiB', '--concurrency', '1', ...extra];

  test('bad input: AccessDenied on each operation partwise uses → the permission named, exit 1; what can go on, goes on', async () => {
    const denied = (op: FaultRule['op'], nth = 1): FaultRule => ({ op, nth, times: 1000, action: { type: 'error', status: 403, code: 'AccessDenied' } });
    const rows: { op: FaultRule['op']; want: RegExp; code: number; first?: boolean }[] = [
      { op: 'CreateMultipartUpload', want: /S3_REQUEST_FAILED: CreateMultipartUpload failed: AccessDenied.*s3:PutObject/, code: 1 },
      { op: 'UploadPart', want: /PART_FAILED: .*AccessDenied.*s3:PutObject.*resume/, code: 1 },
      { op: 'CompleteMultipartUpload', want: /COMPLETE_FAILED: .*AccessDenied.*s3:PutObject.*run the same upload again/, code: 1 },
      { op: 'ListParts', want: /S3_REQUEST_FAILED: ListParts failed: AccessDenied.*s3:ListMultipartUploadParts/, code: 1, first: true },
      { op: 'AbortMultipartUpload', want: /S3_REQUEST_FAILED: AbortMultipartUpload failed: AccessDenied.*s3:AbortMultipartUpload/, code: 1, first: true },
    ];
    for (const row of rows) {
      const f = await file();
      const key = `denied/${row.op}`;
      const before = new Set(await readdir(f.dir));
      if (row.first) {
        // ListParts (resume) and Abort (--fresh) need an upload to exist first.
        const p = await drive(up(f, key), env(f.dir), (e, c) => e.event === 'part-done' && c.kill('SIGINT'));
        assert.equal(p.code, 130);
      }
      const args = row.op === 'AbortMultipartUpload' ? up(f, key, ['--fresh']) : up(f, key);
      const r = await withFault(denied(row.op), () => runCli(args, env(f.dir)));
      assert.equal(r.code, row.code, `${row.op}: ${r.stderr}`);
      oneClearLine(r, row.want);
      if (row.op === 'CreateMultipartUpload') {
        const left = (await readdir(f.dir)).filter((n) => !before.has(n) && !n.endsWith('.lock'));
        assert.deepEqual(left, [], 'a refused Create leaves no journal and no intent');
      }
    }
    // What partwise can do without: reading the object back, listing uploads, part attributes.
    const f = await file();
    const r = await withFault(denied('HeadObject'), () => withFault(denied('ListMultipartUploads'), () => withFault(denied('GetObjectAttributes'), () => runCli(up(f, 'denied/optional', ['--json']), env(f.dir)))));
    assert.equal(r.code, 0, r.stderr);
    const events = jsonLines(r.stdout);
    const warnings = events.filter((e) => e.event === 'warning').map((e) => e.code);
    assert.ok(warnings.includes('DISCOVERY_SKIPPED') && warnings.includes('NO_READ_ACCESS'), warnings.join(','));
    assert.equal(events.at(-1)!.verificationLevel, 'full-object-checksum');
  });

  test('bad input: credentials that expire mid-upload → a resumable error that says so (exit 1); with fresh ones the same command resumes', async () => {
    const f = await file();
    const r = await withFault({ op: 'UploadPart', nth: 3, times: 1000, action: { type: 'error', status: 400, code: 'ExpiredToken' } }, () => runCli(up(f, 'expired/creds'), env(f.dir)));
    assert.equal(r.code, 1);
    oneClearLine(r, /^partwise: PART_FAILED: .*ExpiredToken.*the credentials expired: refresh them.*resume/);
    const again = await runCli(up(f, 'expired/creds', ['--json']), env(f.dir));
    assert.equal(again.code, 0, again.stderr);
    assert.ok((jsonLines(again.stdout).find((e) => e.event === 'reconcile')!.verified as number) >= 2);
  });

  test('bad input: what a server does not implement or will never take (501, 405, 413, a part number past its limit) keeps the server\'s words and gives the step that helps, never "run the same command"; ListMultipartUploads not implemented only skips discovery', async () => {
    const circular = /run the same command|run the same upload again|to resume|later, if it persists/;
    const fault = (op: FaultRule['op'], status: number, code: string, message: string, extra: Partial<FaultRule> = {}): FaultRule => ({ op, times: 1000, ...extra, action: { type: 'error', status, code, message } });
    // 501 on ListMultipartUploads (s3rver, some gateways): discovery is skipped with a warning; the upload goes on.
    {
      const f = await file();
      const r = await withFault(fault('ListMultipartUploads', 501, 'NotImplemented', 'A header you provided implies functionality that is not implemented'), () => runCli(up(f, 'ni/upload', ['--json']), env(f.dir)));
      assert.equal(r.code, 0, r.stderr);
      const w = jsonLines(r.stdout).find((e) => e.event === 'warning' && e.code === 'DISCOVERY_SKIPPED');
      assert.match(String(w?.message), /does not implement ListMultipartUploads/);
      const ls = await withFault(fault('ListMultipartUploads', 501, 'NotImplemented', 'not implemented here'), () => runCli(['ls', `s3://${Bucket}`], env(f.dir)));
      assert.equal(ls.code, 1);
      oneClearLine(ls, /NotImplemented \(HTTP 501\) \(not implemented here\): this server does not implement ListMultipartUploads/);
      assert.doesNotMatch(ls.stderr, circular);
    }
    const rows: { rule: FaultRule; want: RegExp; extra?: string[] }[] = [
      { rule: fault('CreateMultipartUpload', 405, 'MethodNotAllowed', 'The specified method is not allowed against this resource.'), want: /MethodNotAllowed \(HTTP 405\) \(The specified method is not allowed against this resource\.\): this server does not allow CreateMultipartUpload here/ },
      { rule: fault('UploadPart', 413, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size'), want: /EntityTooLarge \(HTTP 413\) \(Your proposed upload exceeds the maximum allowed size\): this server takes no part this large: start over with --fresh and a smaller --part-size/ },
      { rule: fault('UploadPart', 400, 'InvalidArgument', 'Part number must be an integer between 1 and 2, inclusive', { partNumber: 3 }), want: /InvalidArgument \(HTTP 400\) \(Part number must be an integer between 1 and 2, inclusive\): this server takes fewer parts than this upload needs: start over with --fresh and --max-parts set to its limit \(or a larger --part-size\)/ },
    ];
    for (const row of rows) {
      const f = await file();
      const r = await withFault(row.rule, () => runCli(up(f, `refused/${row.rule.op}-${row.rule.action.type === 'error' ? row.rule.action.status : 0}`), env(f.dir)));
      assert.equal(r.code, 1, r.stderr);
      oneClearLine(r, row.want);
      assert.doesNotMatch(r.stderr.replace(/Next: .*/s, ''), circular, r.stderr);
      assert.doesNotMatch(r.stderr, /resume with:/, 'a permanent refusal is not resumable');
    }
    // The server's part limit, told: the upload is planned within it.
    const f = await file();
    const from = emu.count('UploadPart');
    const r = await runCli(up(f, 'maxparts/two', ['--max-parts', '2', '--json']).filter((a, i, all) => a !== '--part-size' && all[i - 1] !== '--part-size'), env(f.dir));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonLines(r.stdout).find((e) => e.event === 'plan')!.partCount, 2);
    assert.equal(emu.count('UploadPart') - from, 2);
  });

  test('abort s3://bucket/key finds the upload by its journal first: on a server that does not list uploads (501), the journaled upload is aborted and its journal removed, exit 0 (issue 26, defect 5)', async () => {
    const f = await file();
    const p = await drive(up(f, 'unlisted/k'), env(f.dir), (e, c) => e.event === 'part-done' && c.kill('SIGINT'));
    assert.equal(p.code, 130);
    const uploadId = p.events.find((e) => e.event === 'plan')!.uploadId as string;
    const journals = (await readdir(f.dir)).filter((n) => n.endsWith('.json'));
    assert.equal(journals.length, 1);
    const r = await withFault({ op: 'ListMultipartUploads', times: 1000, action: { type: 'error', status: 501, code: 'NotImplemented' } }, () => runCli(['abort', `s3://${Bucket}/unlisted/k`], env(f.dir)));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`Aborted upload ${uploadId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} of s3://${Bucket}/unlisted/k`));
    assert.deepEqual((await readdir(f.dir)).filter((n) => n.endsWith('.json')), [], 'the journal removed');
    assert.equal(emu.count('AbortMultipartUpload') > 0, true);
    const still = await emulatorClient(emu.endpoint).send(new ListMultipartUploadsCommand({ Bucket, Prefix: 'unlisted/' }));
    assert.equal(still.Uploads?.length ?? 0, 0, 'the upload is gone from the server');
  });

  test('abort s3://bucket/key uses only the journals of this endpoint: a journal for the same bucket and key on another server is neither aborted there nor deleted', async () => {
    const f = await file();
    const p = await drive(up(f, 'elsewhere/k'), env(f.dir), (e, c) => e.event === 'part-done' && c.kill('SIGINT'));
    assert.equal(p.code, 130);
    const other = await S3Emulator.start();
    try {
      await emulatorClient(other.endpoint).send(new CreateBucketCommand({ Bucket }));
      const r = await runCli(['abort', `s3://${Bucket}/elsewhere/k`], { ...env(f.dir), AWS_ENDPOINT_URL: other.endpoint });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /no journaled upload/);
      assert.equal(other.count('AbortMultipartUpload'), 0, 'nothing aborted on the other server');
    } finally {
      await other.close();
    }
    assert.equal((await readdir(f.dir)).filter((n) => n.endsWith('.json')).length, 1, 'the journal of the first server is kept');
  });

  test('abort s3://bucket/key --all on a server that does not list uploads: the journaled upload is still aborted, and exit 1 says the server\'s own list could not be read', async () => {
    const f = await file();
    const p = await drive(up(f, 'unlisted/all'), env(f.dir), (e, c) => e.event === 'part-done' && c.kill('SIGINT'));
    assert.equal(p.code, 130);
    const uploadId = p.events.find((e) => e.event === 'plan')!.uploadId as string;
    const r = await withFault({ op: 'ListMultipartUploads', times: 1000, action: { type: 'error', status: 501, code: 'NotImplemented' } }, () => runCli(['abort', `s3://${Bucket}/unlisted/all`, '--all'], env(f.dir)));
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, new RegExp(`Aborted upload ${uploadId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(r.stderr, /could not be read.*uploads no journal knows may remain/);
    const still = await emulatorClient(emu.endpoint).send(new ListMultipartUploadsCommand({ Bucket, Prefix: 'unlisted/all' }));
    assert.equal(still.Uploads?.length ?? 0, 0, 'the journaled upload is gone from the server');
  });

  test('bad input: a server out of space (507 InsufficientCapacity) → not retried as a passing fault; a resumable error that says so (exit 1)', async () => {
    const f = await file();
    const from = emu.count('UploadPart', 2);
    const r = await withFault({ op: 'UploadPart', partNumber: 2, times: 1000, action: { type: 'error', status: 507, code: 'InsufficientCapacity' } }, () => runCli(up(f, 'full/server'), env(f.dir)));
    assert.equal(r.code, 1);
    oneClearLine(r, /^partwise: PART_FAILED: Part 2 .*InsufficientCapacity \(HTTP 507\): the server is out of space.*resume/);
    assert.equal(emu.count('UploadPart', 2) - from, 1, 'sent once, not retried');
  });

  test('bad input: an upload aborted or expired on the server → UPLOAD_GONE (exit 1), journal removed, the next run starts over', async () => {
    const f = await file();
    let uploadId = '';
    const p = await drive(up(f, 'gone/upload'), env(f.dir), (e, c) => {
      if (e.event === 'plan') uploadId = e.uploadId as string;
      if (e.event === 'part-done') c.kill('SIGINT');
    });
    assert.equal(p.code, 130);
    emu.expireUpload(uploadId);
    const r = await runCli(up(f, 'gone/upload', ['--no-discover']), env(f.dir));
    assert.equal(r.code, 1);
    oneClearLine(r, /^partwise: UPLOAD_GONE: .*run the same upload again to start over/);
    assert.deepEqual((await readdir(f.dir)).filter((n) => n.endsWith('.json')), []);
    const again = await runCli(up(f, 'gone/upload'), env(f.dir));
    assert.equal(again.code, 0, again.stderr);
  });
});

test('bad input: an S3 error body echoing the request (as AWS does for SignatureDoesNotMatch) never carries a secret into the error, even to a caller who logs the whole object', async () => {
  const { createServer } = await import('node:http');
  const { inspect } = await import('node:util');
  const { Upload: Up } = await import('../src/index.ts');
  const { SdkS3Port, createS3Client } = await import('../src/s3/adapter.ts');
  const token = `token-${randomBytes(12).toString('hex')}`;
  const sseKey = randomBytes(32);
  const server = createServer((req, res) => {
    // Echo every request header back, the way AWS's CanonicalRequest element does.
    const canonical = Object.entries(req.headers).map(([k, v]) => `${k}:${String(v)}`).join('\n');
    res.writeHead(403, { 'content-type': 'application/xml' });
    res.end(`<?xml version="1.0"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message><CanonicalRequest>${canonical}</CanonicalRequest></Error>`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as { port: number }).port;
    const dir = await tempDir();
    const path = join(dir, 'f.bin');
    await writeFile(path, randomBytes(1000));
    const s3 = new SdkS3Port(createS3Client({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret-example', sessionToken: token } }));
    const err = await new Up({ s3, file: path, bucket: 'bucket', key: 'k', stateDir: dir, sseCustomerKey: sseKey }).done().catch((e: unknown) => e);
    const everything = inspect(err, { depth: 20, showHidden: true });
    assert.match(everything, /SignatureDoesNotMatch/);
    assert.ok(!everything.includes(token), 'no session token anywhere in the error');
    assert.ok(!everything.includes(sseKey.toString('base64')), 'no SSE-C key anywhere in the error');
  } finally {
    server.close();
  }
});
