import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { MiB } from '../src/index.ts';
import { Upload } from '../src/upload/engine.ts';
import { PausedError } from '../src/core/errors.ts';
import { SdkS3Port, createS3Client } from '../src/s3/adapter.ts';
import { wrapPort } from './helpers/ports.ts';
import { readJournal } from '../src/local/journal.ts';
import { BIN, cliEnv, jsonLines, runCli } from './helpers/cli.ts';
import { getObjectBytes, makeBucket, plainClient, randomFile, sha256, tempDir } from './helpers/s3.ts';
import { AbortMultipartUploadCommand, ListMultipartUploadsCommand, ListObjectsV2Command, UploadPartCommand } from '@aws-sdk/client-s3';

/** Starts an upload with --json and sends SIGINT once `afterParts` parts are acknowledged. */
async function interruptedUpload(args: string[], env: NodeJS.ProcessEnv, afterParts: number, signals = 1) {
  const child = spawn(process.execPath, [BIN, ...args, '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = once(child, 'exit');
  const events: { event: string; [k: string]: unknown }[] = [];
  let done = 0;
  for await (const line of createInterface({ input: child.stdout })) {
    const e = JSON.parse(line);
    events.push(e);
    if (e.event === 'part-done' && ++done === afterParts) for (let i = 0; i < signals; i++) child.kill('SIGINT');
  }
  const [code] = await exited;
  return { code: code as number | null, stderr, events };
}

describe('the partwise command, end to end against the local server', () => {
  let bucket: string;
  before(async () => {
    bucket = await makeBucket('pw-cli');
  });

  test('an endpoint named in a shared config profile (endpoint_url, as Ceph and MinIO users configure one): path-style requests to a host name, and the journal is that endpoint\'s', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 6 * MiB + 5);
    const base = cliEnv(join(dir, 'state'));
    const port = new URL(base.AWS_ENDPOINT_URL!).port;
    // A host name, not an IP: the SDK's default addressing would ask bucket.localhost, which does not resolve.
    const byName = `http://localhost:${port}`;
    const region = base.AWS_REGION ?? 'us-east-1';
    await writeFile(join(dir, 'config'), `[profile ceph]\nregion = ${region}\nendpoint_url = ${byName}\n\n[profile other]\nregion = ${region}\nendpoint_url = http://127.0.0.1:${port}\n\n[profile plain]\nregion = ${region}\n`);
    const keys = `aws_access_key_id = ${base.AWS_ACCESS_KEY_ID}\naws_secret_access_key = ${base.AWS_SECRET_ACCESS_KEY}\n`;
    await writeFile(join(dir, 'credentials'), `[ceph]\n${keys}\n[other]\n${keys}\n[plain]\n${keys}`);
    const env = (profile: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => {
      const e: NodeJS.ProcessEnv = { ...base, HOME: dir, AWS_CONFIG_FILE: join(dir, 'config'), AWS_SHARED_CREDENTIALS_FILE: join(dir, 'credentials'), AWS_PROFILE: profile };
      for (const k of ['AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION', 'AWS_DEFAULT_REGION']) delete e[k];
      return { ...e, ...extra };
    };
    const key = 'profile/endpoint.bin';
    const journalOf = async (e: NodeJS.ProcessEnv) => {
      const r = await runCli(['status', f.path, `s3://${bucket}/${key}`, '--json'], e);
      assert.equal(r.code, 0, r.stderr);
      return jsonLines(r.stdout).find((l) => l.event === 'status')!.journalPath as string;
    };
    const viaProfile = await journalOf(env('ceph'));
    assert.equal(viaProfile, await journalOf(env('plain', { AWS_ENDPOINT_URL: byName })), 'the same endpoint, from a profile or the environment, is the same journal');
    assert.notEqual(viaProfile, await journalOf(env('other')), 'another endpoint is another journal');
    const r = await runCli(['upload', f.path, `s3://${bucket}/${key}`, '--part-size', '5MiB', '--json'], env('ceph'));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonLines(r.stdout).find((l) => l.event === 'plan')!.journalPath, viaProfile);
    assert.equal(sha256(await getObjectBytes(bucket, key)), f.sha256);
    // --virtual-host asks bucket.host, for a server that answers only that (here it does not resolve: the flag took effect).
    const vh = await runCli(['upload', f.path, `s3://${bucket}/${key}-vh`, '--virtual-host'], env('ceph'));
    assert.equal(vh.code, 1, vh.stderr);
    assert.match(vh.stderr, new RegExp(`ENOTFOUND \\(getaddrinfo ENOTFOUND ${bucket}\\.localhost\\)`));
    const both = await runCli(['upload', f.path, `s3://${bucket}/${key}-vh`, '--virtual-host', '--path-style'], env('ceph'));
    assert.equal(both.code, 2, both.stderr);
    assert.match(both.stderr, /--path-style and --virtual-host exclude each other/);
  });

  // A timeout: the defect this guards is a command that never exits.
  test('Ctrl-C on a stream (upload -): exit 130, the upload aborted, and a message that does not promise a resume', { timeout: 60_000 }, async () => {
    const env = cliEnv(await tempDir());
    const key = 'stream/ctrl-c.bin';
    const child = spawn(process.execPath, [BIN, 'upload', '-', `s3://${bucket}/${key}`, '--part-size', '5MiB', '--json'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // A command that never exits (the defect) is killed, so the test fails instead of hanging the suite.
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stdin.write(randomBytes(6 * MiB)); // one part goes up; the pipe then stays open, idle
    for await (const line of createInterface({ input: child.stdout! })) {
      if ((JSON.parse(line) as { event: string }).event === 'part-done') {
        child.kill('SIGINT');
        break;
      }
    }
    const code = await exited;
    clearTimeout(killer);
    assert.equal(code, 130, stderr);
    assert.match(stderr, /STREAM_FAILED: .*stopped before it finished/);
    assert.match(stderr, /was aborted, as a stream cannot be resumed: run the whole pipeline again/);
    assert.doesNotMatch(stderr, /journal|Run the same upload again|to resume/i);
    const open = await plainClient().send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
    assert.equal(open.Uploads?.length ?? 0, 0, 'the stream\'s upload was aborted');
  });

  test('usage errors exit 2 with one clear line', async () => {
    const env = cliEnv(await tempDir());
    for (const args of [[], ['upload'], ['upload', 'f', 'http://x/y'], ['upload', 'f', 's3://b/k', '--checksum', 'md4'], ['upload', 'f', 's3://b/k', '--part-size', 'lots'], ['upload', 'f', 's3://bkt/k', '--part-size', '1MiB'], ['upload', 'f', 's3://bkt/k', '--part-size', '6GiB'], ['upload', '-', 's3://bkt/k', '--part-size', '4MiB'], ['frobnicate'], ['upload', '--no-such-flag']]) {
      const r = await runCli(args, env);
      assert.equal(r.code, 2, `exit 2 for ${JSON.stringify(args)}`);
      assert.match(r.stderr, /^partwise: /, 'names the problem');
      if (args.includes('1MiB') || args.includes('6GiB') || args.includes('4MiB')) assert.match(r.stderr, /--part-size must be from 5 MiB to 5 GiB \(S3's part limits\)/);
      assert.equal(r.stdout, '');
    }
    // Folder-only flags with a file or a stream would be ignored: refused instead.
    for (const [args, flag] of [[['upload', 'f', 's3://bkt/k', '--exclude', '*.tmp'], 'exclude'], [['upload', '-', 's3://bkt/k', '--fail-fast'], 'fail-fast']] as const) {
      const r = await runCli([...args], env);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`^partwise: --${flag} applies to a folder upload`), r.stderr);
    }
    // A script reading --json gets the refusal on stdout too, as one error line.
    for (const args of [['upload', 'f', 's3://bkt/k', '--part-size', '1MiB', '--json'], ['upload', '--no-such-flag', '--json'], ['frobnicate', '--json']]) {
      const r = await runCli(args, env);
      assert.equal(r.code, 2, `exit 2 for ${JSON.stringify(args)}`);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.length, 1, r.stdout);
      const e = JSON.parse(lines[0]!) as { event: string; code: string; message: string; resumable: boolean };
      assert.deepEqual([e.event, e.code, e.resumable], ['error', 'INVALID_OPTIONS', false], r.stdout);
      assert.match(e.message, args.includes('1MiB') ? /--part-size must be from 5 MiB to 5 GiB/ : /no-such-flag|unknown command frobnicate/);
    }
    // What the plan fixed, given to a worker or finish, would seem to change what it cannot: refused.
    for (const [args, re] of [
      [['upload', 'f', 's3://bkt/k', '--worker', '0/2', '--part-size', '8MiB'], /--part-size does not apply to a worker: the plan fixed it/],
      [['upload', 'f', 's3://bkt/k', '--worker', '0/2', '--checksum', 'crc32'], /--checksum does not apply to a worker/],
      [['upload', 'f', 's3://bkt/k', '--worker', '0/2', '--storage-class', 'GLACIER'], /--storage-class does not apply to a worker/],
      [['finish', 's3://bkt/k', '--metadata', 'a=b'], /--metadata does not apply to finish/],
      [['finish', 's3://bkt/k', '--sse', 'AES256'], /--sse does not apply to finish/],
      [['upload', 'f', 's3://bkt/k', '--worker', '2/2'], /--worker 2\/2: the index must be from 0 to N-1/],
      [['upload', '<dir>', 's3://bkt/p/', '--shard', 'auto'], /--shard auto\/N/],
    ] as const) {
      const folder = await tempDir();
      const r = await runCli(args.map((a) => (a === '<dir>' ? folder : a)), { ...env, SLURM_ARRAY_TASK_ID: '1' });
      assert.equal(r.code, 2, `${JSON.stringify(args)}: ${r.stderr}`);
      assert.match(r.stderr, re);
    }
    // --shard auto/N past N (task ids 1..N from --array=1-N): refused, naming the ids it needs.
    const past = await runCli(['upload', await tempDir(), 's3://bkt/p/', '--shard', 'auto/3'], { ...env, SLURM_ARRAY_TASK_ID: '3' });
    assert.equal(past.code, 2, past.stderr);
    assert.match(past.stderr, /index 3 \(SLURM_ARRAY_TASK_ID\) is not below 3: array task ids must be 0 to 2/);
    const help = await runCli(['--help'], env);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /partwise upload <file> s3:\/\/<bucket>\/<key>/);
  });

  test('upload --json: parseable events, then a complete summary; the object is byte-identical', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 21 * MiB);
    const r = await runCli(['upload', f.path, `s3://${bucket}/json/one.bin`, '--part-size', '5MiB', '--json'], cliEnv(dir));
    assert.equal(r.code, 0, r.stderr);
    const events = jsonLines(r.stdout);
    assert.deepEqual(events.slice(0, 2).map((e) => e.event), ['discover', 'plan'], 'no journal: the command looks for an upload to adopt first');
    assert.match(String(events[0]!.why), /no upload of this key is open/);
    assert.equal(events.filter((e) => e.event === 'part-done').length, 5);
    const last = events.at(-1)!;
    assert.equal(last.event, 'complete');
    assert.equal(events.filter((e) => e.event === 'complete').length, 1);
    for (const k of ['uploadId', 'etag', 'bytesSent', 'partsUploaded', 'partsSkipped', 'verificationLevel']) assert.ok(k in last, `complete has ${k}`);
    assert.equal(last.bytesSent, 21 * MiB);
    assert.equal(last.partsUploaded, 5);
    assert.equal(last.partsSkipped, 0);
    assert.equal(last.verificationLevel, 'full-object-checksum');
    for (const e of events.filter((x) => x.event === 'progress')) assert.ok((e.fractionDone as number) <= 1);
    assert.equal(sha256(await getObjectBytes(bucket, 'json/one.bin')), f.sha256);
  });

  test('Ctrl-C: exit 130 with the resume command; status, ls, then the same command resumes and skips verified parts', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 40 * MiB);
    const env = cliEnv(dir);
    const dest = `s3://${bucket}/cli/interrupted.bin`;
    const first = await interruptedUpload(['upload', f.path, dest, '--part-size', '5MiB', '--concurrency', '1'], env, 3);
    assert.equal(first.code, 130);
    assert.match(first.stderr, /PAUSED/);
    assert.ok(first.stderr.includes(`resume with: partwise upload ${f.path} ${dest}`), first.stderr);
    assert.equal(first.stderr.trim().split('\n').filter((l) => l.startsWith('partwise: PAUSED')).length, 1);

    const status = await runCli(['status', f.path, dest, '--json'], env);
    assert.equal(status.code, 0, status.stderr);
    const st = jsonLines(status.stdout)[0]! as unknown as { exists: boolean; reconcile: { verified: number; toUpload: number[] }; bytesLeft: number };
    assert.equal(st.exists, true);
    assert.ok(st.reconcile.verified >= 3);
    assert.equal(st.reconcile.verified + st.reconcile.toUpload.length, 8);
    assert.equal(st.bytesLeft, st.reconcile.toUpload.length * 5 * MiB);

    const ls = await runCli(['ls', `s3://${bucket}/cli/`, '--json'], env);
    const rows = jsonLines(ls.stdout);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.key, 'cli/interrupted.bin');
    assert.equal(rows[0]!.journal, true);
    assert.equal(rows[0]!.parts, st.reconcile.verified);

    const second = await runCli(['upload', f.path, dest, '--json'], env);
    assert.equal(second.code, 0, second.stderr);
    const complete = jsonLines(second.stdout).at(-1)!;
    assert.equal(complete.partsSkipped, st.reconcile.verified);
    assert.equal(complete.partsUploaded, 8 - st.reconcile.verified);
    assert.equal(sha256(await getObjectBytes(bucket, 'cli/interrupted.bin')), f.sha256);

    const verify = await runCli(['verify', f.path, dest], env);
    assert.equal(verify.code, 0);
    assert.match(verify.stdout, /verification: full-object-checksum/);
  });

  test('a resume with every part already on the server completes in a fresh process: the whole-object checksum loads its own hasher', async () => {
    // The engine loads hashers where it hashes, not all up front; a resume that sends nothing still
    // computes the expected full-object and composite checksums before it says complete.
    const dir = await tempDir();
    const f = await randomFile(dir, 10 * MiB);
    const dest = `s3://${bucket}/cli/all-there.bin`;
    const stop = new AbortController();
    const inner = new SdkS3Port(createS3Client());
    const s3 = wrapPort(inner, {
      completeMultipartUpload: async () => {
        stop.abort();
        throw new Error('stopped before Complete');
      },
    });
    const first = new Upload({ file: f.path, bucket, key: 'cli/all-there.bin', partSize: 5 * MiB, concurrency: 1, stateDir: dir, s3, signal: stop.signal });
    await assert.rejects(first.done(), PausedError);
    const r = await runCli(['upload', f.path, dest, '--json'], cliEnv(dir));
    assert.equal(r.code, 0, r.stderr);
    const complete = jsonLines(r.stdout).at(-1)!;
    assert.equal(complete.event, 'complete');
    assert.equal(complete.partsSkipped, 2);
    assert.equal(complete.partsUploaded, 0);
    assert.equal(complete.bytesSent, 0);
    assert.equal(complete.verificationLevel, 'full-object-checksum');
    assert.equal(sha256(await getObjectBytes(bucket, 'cli/all-there.bin')), f.sha256);
  });

  test('a checksum this runtime cannot compute (CRC64NVME without WebAssembly: node --jitless) is refused before anything exists on the server; CRC32C uploads and verifies without WebAssembly', async () => {
    const dir = await tempDir();
    const state = await tempDir();
    const f = await randomFile(dir, 6 * MiB);
    const jitless = (args: string[], stdin?: string) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ['--jitless', BIN, ...args], { env: cliEnv(state), stdio: [stdin ? 'pipe' : 'ignore', 'ignore', 'pipe'] });
        // A refused run may exit before it reads its input: that pipe then breaks, which is expected.
        if (stdin) child.stdin!.on('error', () => undefined).end(readFileSync(stdin));
        let stderr = '';
        child.stderr!.on('data', (d) => (stderr += d));
        child.on('exit', (code) => resolve({ code, stderr }));
      });
    const refused = /INVALID_OPTIONS: The CRC64NVME checksum cannot be computed in this runtime \(WebAssembly.*--checksum crc32c\). Nothing was created on the server/;
    for (const [what, args, stdin] of [
      ['a file', ['upload', f.path, `s3://${bucket}/nowasm/file.bin`, '--checksum', 'crc64nvme', '--part-size', '5MiB'], undefined],
      ['a stream', ['upload', '-', `s3://${bucket}/nowasm/stream.bin`, '--checksum', 'crc64nvme'], f.path],
      ['a folder', ['upload', dir, `s3://${bucket}/nowasm/dir/`, '--checksum', 'crc64nvme'], undefined],
    ] as const) {
      const r = await jitless([...args], stdin);
      assert.equal(r.code, 2, `${what}: ${r.stderr}`);
      assert.match(r.stderr, refused, what);
    }
    const open = await plainClient().send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: 'nowasm/' }));
    assert.deepEqual(open.Uploads ?? [], [], 'no multipart upload was created');
    const objects = await plainClient().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'nowasm/' }));
    assert.equal(objects.KeyCount, 0, 'no object was created');
    assert.deepEqual(await readdir(state), [], 'no journal, intent or lock file is left');
    // The default checksum is native (or WASM only as a fallback): a folder job works without WebAssembly.
    const ok = await jitless(['upload', dir, `s3://${bucket}/nowasm-crc32c/`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(sha256(await getObjectBytes(bucket, 'nowasm-crc32c/data.bin')), f.sha256);
    // And it is verified without WebAssembly: only the object's own algorithm is loaded.
    const verified = await jitless(['verify', f.path, `s3://${bucket}/nowasm-crc32c/data.bin`]);
    assert.equal(verified.code, 0, verified.stderr);
  });

  test('resuming a CRC64NVME upload where WebAssembly is missing (node --jitless) is refused in words, the journal and the upload kept; with it, the same command finishes', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 16 * MiB);
    const args = ['upload', f.path, `s3://${bucket}/nowasm-resume/data.bin`, '--checksum', 'crc64nvme', '--part-size', '5MiB', '--concurrency', '1'];
    const first = await interruptedUpload(args, cliEnv(dir), 1);
    assert.equal(first.code, 130, first.stderr);
    const uploadId = first.events.find((e) => e.event === 'plan')!.uploadId as string;
    const r = spawnSync(process.execPath, ['--jitless', BIN, ...args], { env: cliEnv(dir), encoding: 'utf8' });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`INVALID_OPTIONS: The CRC64NVME checksum cannot be computed in this runtime \\(WebAssembly.*upload ${uploadId} uses it.*--fresh --checksum crc32c`));
    assert.doesNotMatch(r.stderr, /UNEXPECTED|resume with/);
    const jf = (await readdir(dir)).find((n) => n.endsWith('.json'))!;
    assert.equal((await readJournal(join(dir, jf)))!.uploadId, uploadId, 'the journal is kept');
    const open = await plainClient().send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: 'nowasm-resume/' }));
    assert.deepEqual((open.Uploads ?? []).map((u) => u.UploadId), [uploadId], 'the upload is kept');
    // With no journal (another state folder), discovery finds that upload but cannot prove it here:
    // it is reported as such and left alone, and a new upload (CRC32C, no WebAssembly needed) is made.
    const elsewhere = await tempDir();
    const found = spawnSync(process.execPath, ['--jitless', BIN, 'upload', f.path, `s3://${bucket}/nowasm-resume/data.bin`, '--part-size', '5MiB', '--json'], { env: cliEnv(elsewhere), encoding: 'utf8' });
    assert.equal(found.status, 0, found.stderr);
    const disc = jsonLines(found.stdout).find((e) => e.event === 'discover') as { candidates: { uploadId: string; status: string; why: string }[] } | undefined;
    const cand = disc?.candidates.find((c) => c.uploadId === uploadId);
    assert.equal(cand?.status, 'unprovable', JSON.stringify(disc));
    assert.match(cand!.why, /its CRC64NVME part checksums cannot be computed in this runtime \(WebAssembly/);
    assert.notEqual(jsonLines(found.stdout).find((e) => e.event === 'plan')!.uploadId, uploadId, 'not adopted: a new upload');
    assert.equal(sha256(await getObjectBytes(bucket, 'nowasm-resume/data.bin')), f.sha256);
    const done = await runCli([...args, '--json'], cliEnv(dir));
    assert.equal(done.code, 0, done.stderr);
    assert.equal(jsonLines(done.stdout).find((e) => e.event === 'plan')!.uploadId, uploadId, 'resumed, not begun again');
    assert.equal(sha256(await getObjectBytes(bucket, 'nowasm-resume/data.bin')), f.sha256);
  });

  test('an unexpected failure after the journal is read says the journal is kept and how to resume; the same command then resumes', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 16 * MiB);
    const args = ['upload', f.path, `s3://${bucket}/cli/unexpected.bin`, '--part-size', '5MiB', '--concurrency', '1'];
    const first = await interruptedUpload(args, cliEnv(dir), 1);
    assert.equal(first.code, 130, first.stderr);
    const jf = (await readdir(dir)).find((n) => n.endsWith('.json'))!;
    // A temp file of the journal's that cannot be removed (a folder in its way): a failure partwise has no name for.
    await mkdir(join(dir, `${jf}.tmp-999-x`, 'sub'), { recursive: true });
    const r = await runCli([...args, '--json'], cliEnv(dir));
    assert.equal(r.code, 1, r.stderr);
    const err = jsonLines(r.stdout).find((e) => e.event === 'error')!;
    assert.equal(err.code, 'UNEXPECTED');
    assert.equal(err.resumable, true);
    assert.match(err.message as string, /The journal is kept; run the same upload again to resume/);
    assert.equal(err.uploadId, first.events.find((e) => e.event === 'plan')!.uploadId);
    await rm(join(dir, `${jf}.tmp-999-x`), { recursive: true });
    const done = await runCli(args, cliEnv(dir));
    assert.equal(done.code, 0, done.stderr);
    assert.equal(sha256(await getObjectBytes(bucket, 'cli/unexpected.bin')), f.sha256);
  });

  test('a second Ctrl-C exits at once with 130, and the journal is still valid', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 40 * MiB);
    const r = await interruptedUpload(['upload', f.path, `s3://${bucket}/cli/twice.bin`, '--part-size', '5MiB', '--concurrency', '1'], cliEnv(dir), 2, 2);
    assert.equal(r.code, 130);
    const jf = (await readdir(dir)).find((n) => n.endsWith('.json'))!;
    const j = (await readJournal(`${dir}/${jf}`))!;
    assert.ok(j.parts.length >= 1 && j.uploadId);
    const again = await runCli(['upload', f.path, `s3://${bucket}/cli/twice.bin`], cliEnv(dir));
    assert.equal(again.code, 0, again.stderr);
    assert.equal(sha256(await getObjectBytes(bucket, 'cli/twice.bin')), f.sha256);
  });

  test('verify exits 3 when the object does not match the file', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 11 * MiB);
    const env = cliEnv(dir);
    const dest = `s3://${bucket}/cli/verify.bin`;
    assert.equal((await runCli(['upload', f.path, dest, '--part-size', '5MiB', '--checksum', 'crc32c'], env)).code, 0);
    const changed = Buffer.from(f.bytes);
    changed[6 * MiB] = changed[6 * MiB]! ^ 0xff; // one bit pattern in part 2, same size
    await writeFile(f.path, changed);
    const r = await runCli(['verify', f.path, dest], env);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /OBJECT_VERIFICATION_FAILED/);
    assert.match(r.stderr, /CRC32C/);
    // Connection flags given to verify are in its Next command, which, run as printed (in a shell whose
    // environment names no endpoint), sends the file to the server just checked (issue 26, defect 4).
    const state = join(dir, 'elsewhere-state');
    const { AWS_ENDPOINT_URL: endpoint, ...noEndpoint } = env;
    const flagged = await runCli(['verify', f.path, dest, '--endpoint', endpoint!, '--path-style', '--region', 'us-east-1', '--state-dir', state], noEndpoint);
    assert.equal(flagged.code, 3, flagged.stderr);
    const next = /Next: upload it again with: (.*)$/m.exec(flagged.stderr)?.[1];
    assert.ok(next, flagged.stderr);
    for (const flag of ['--endpoint', '--path-style', '--region', '--state-dir', '--fresh']) assert.ok(next.includes(flag), `${flag} in: ${next}`);
    const bin = await tempDir();
    await writeFile(join(bin, 'partwise'), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`, { mode: 0o755 });
    const rerun = spawnSync('sh', ['-c', next], { env: { ...noEndpoint, PATH: `${bin}:${process.env.PATH}` }, encoding: 'utf8' });
    assert.equal(rerun.status, 0, rerun.stderr);
    assert.equal(sha256(await getObjectBytes(bucket, 'cli/verify.bin')), sha256(changed));
  });

  test('a changed source on resume: exit 1, and the message gives the --fresh command', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 30 * MiB);
    const env = cliEnv(dir);
    const dest = `s3://${bucket}/cli/changed.bin`;
    assert.equal((await interruptedUpload(['upload', f.path, dest, '--part-size', '5MiB', '--concurrency', '1'], env, 1)).code, 130);
    await writeFile(f.path, Buffer.concat([f.bytes, Buffer.from('more')]));
    // status foretells the refusal in its exit code too, for a script that checks before it resumes.
    const st = await runCli(['status', f.path, dest], env);
    assert.equal(st.code, 1, st.stdout + st.stderr);
    assert.match(st.stdout, /a resume would refuse; use upload --fresh/);
    const stJson = await runCli(['status', f.path, dest, '--json'], env);
    assert.equal(stJson.code, 1);
    assert.ok(Array.isArray(jsonLines(stJson.stdout)[0]!.sourceChanged));
    const r = await runCli(['upload', f.path, dest], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /SOURCE_CHANGED/);
    assert.ok(r.stderr.includes(`--fresh`));
    const fresh = await runCli(['upload', f.path, dest, '--fresh', '--json'], env);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.equal(sha256(await getObjectBytes(bucket, 'cli/changed.bin')), sha256(await readFile(f.path)));
  });

  test('status exits 1 when the upload it foretells would stop: parts beyond the plan on the server, or the upload gone', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 20 * MiB);
    const env = cliEnv(dir);
    const dest = `s3://${bucket}/cli/status-refuses.bin`;
    assert.equal((await interruptedUpload(['upload', f.path, dest, '--part-size', '5MiB', '--concurrency', '1'], env, 1)).code, 130);
    const ok = await runCli(['status', f.path, dest, '--json'], env);
    assert.equal(ok.code, 0, 'an interrupted upload resumes: exit 0');
    const uploadId = jsonLines(ok.stdout)[0]!.uploadId as string;
    // Another writer put part 9 into this 4-part upload: the resume would refuse (REMOTE_PARTS_INCONSISTENT).
    const s3 = plainClient();
    await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'cli/status-refuses.bin', UploadId: uploadId, PartNumber: 9, Body: randomBytes(1000) }));
    const extra = await runCli(['status', f.path, dest], env);
    assert.equal(extra.code, 1, extra.stdout + extra.stderr);
    assert.match(extra.stdout, /unexpected parts on the server: 9: a resume would refuse/);
    assert.equal((await runCli(['upload', f.path, dest], env)).code, 1, 'and so it does');
    // Aborted on the server: the upload would stop once with UPLOAD_GONE (the journal removed).
    await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'cli/status-refuses.bin', UploadId: uploadId }));
    const gone = await runCli(['status', f.path, dest], env);
    assert.equal(gone.code, 1, gone.stdout + gone.stderr);
    assert.match(gone.stdout, /an upload would stop with UPLOAD_GONE/);
    const up = await runCli(['upload', f.path, dest], env);
    assert.equal(up.code, 1);
    assert.match(up.stderr, /UPLOAD_GONE/);
    // --fresh is no resume: status has nothing to foretell.
    const fresh = await runCli(['status', f.path, dest, '--fresh'], env);
    assert.equal(fresh.code, 2);
    assert.match(fresh.stderr, /--fresh does not apply to status/);
  });

  test('abort removes the server upload and the journal; --all also takes uploads no journal knows', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 20 * MiB);
    const env = cliEnv(dir);
    const dest = `s3://${bucket}/cli/abort.bin`;
    assert.equal((await interruptedUpload(['upload', f.path, dest, '--part-size', '5MiB', '--concurrency', '1'], env, 1)).code, 130);
    const ab = await runCli(['abort', dest, '--json'], env);
    assert.equal(ab.code, 0, ab.stderr);
    assert.equal(jsonLines(ab.stdout).length, 1);
    assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.json')), []);
    assert.deepEqual(jsonLines((await runCli(['ls', `s3://${bucket}/cli/abort`, '--json'], env)).stdout), []);

    // an upload started elsewhere (another state folder): needs --all or --upload-id
    const other = await tempDir();
    assert.equal((await interruptedUpload(['upload', f.path, dest, '--part-size', '5MiB', '--concurrency', '1'], cliEnv(other), 1)).code, 130);
    const refused = await runCli(['abort', dest], env);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--upload-id|--all/);
    assert.equal((await runCli(['abort', dest, '--all'], env)).code, 0);
    assert.deepEqual(jsonLines((await runCli(['ls', `s3://${bucket}/cli/abort`, '--json'], env)).stdout), []);
  });

  test('on a real terminal: a progress bar redrawn on a timer, then a one-screen summary', async () => {
    const dir = await tempDir();
    const f = await randomFile(dir, 64 * MiB);
    const env = cliEnv(dir);
    const cmd = [process.execPath, BIN, 'upload', f.path, `s3://${bucket}/cli/tty.bin`, '--part-size', '5MiB', '--concurrency', '1'].map((a) => `'${a}'`).join(' ');
    const started = Date.now();
    // util-linux `script` runs the command on a pseudo-terminal and copies what it draws.
    const r = spawnSync('script', ['-qfec', cmd, '/dev/null'], { env: { ...env, COLUMNS: '100' }, encoding: 'utf8' });
    const elapsed = Date.now() - started;
    assert.equal(r.status, 0, r.stderr);
    const redraws = r.stdout.split('\r\x1b[2K').length - 1;
    assert.ok(redraws >= 2, `the bar was drawn (${redraws} redraws)`);
    assert.ok(redraws <= elapsed / 200 + 3, `redrawn on a 200 ms timer, not per event (${redraws} redraws in ${elapsed} ms, 13 parts)`);
    assert.match(r.stdout, /Uploading [█░]+ \d+% /);
    assert.match(r.stdout, /parts \d+\/13/);
    assert.match(r.stdout, /Uploaded s3:\/\/.*tty\.bin/);
    assert.match(r.stdout, /verification: full-object-checksum/);

    const piped = await runCli(['upload', f.path, `s3://${bucket}/cli/tty2.bin`, '--part-size', '5MiB'], env);
    assert.equal(piped.stdout.includes('\r'), false, 'no bar when stdout is not a terminal');
    assert.match(piped.stdout, /Uploaded s3:\/\//);
    const quiet = await runCli(['upload', f.path, `s3://${bucket}/cli/tty3.bin`, '--quiet'], env);
    assert.equal(quiet.stdout, '');
    assert.equal(quiet.code, 0);
  });
});

describe('the partwise command against the S3 emulator: connection and encryption flags reach the wire', () => {
  test('--endpoint --region --path-style --sse-c-key-file --request-payer --expected-bucket-owner', async () => {
    const { S3Emulator } = await import('./emulator/server.ts');
    const { emulatorClient } = await import('./emulator/client.ts');
    const { CreateBucketCommand } = await import('@aws-sdk/client-s3');
    const emu = await S3Emulator.start();
    try {
      await emulatorClient(emu.endpoint).send(new CreateBucketCommand({ Bucket: 'flags' }));
      const dir = await tempDir();
      const f = await randomFile(dir, 12 * MiB);
      const keyFile = `${dir}/sse.key`;
      const key = randomBytes(32);
      await writeFile(keyFile, key.toString('base64'));
      // The emulator checks no signature; credentials only have to exist.
      const env = { ...cliEnv(dir), AWS_ACCESS_KEY_ID: 'emulator', AWS_SECRET_ACCESS_KEY: 'emulator-secret', AWS_ENDPOINT_URL: 'http://127.0.0.1:1', AWS_REGION: 'eu-west-3' };
      const flags = ['--endpoint', emu.endpoint, '--region', 'us-east-1', '--path-style', '--sse-c-key-file', keyFile, '--request-payer', '--expected-bucket-owner', '111122223333'];
      const r = await runCli(['upload', f.path, 's3://flags/enc.bin', '--part-size', '5MiB', '--json', ...flags], env);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(jsonLines(r.stdout).at(-1)!.verificationLevel, 'full-object-checksum');
      const v = await runCli(['verify', f.path, 's3://flags/enc.bin', ...flags], env);
      assert.equal(v.code, 0, v.stderr);
      assert.ok(emu.log.length >= 6);
      for (const c of emu.log.filter((l) => l.op !== 'CreateBucket')) {
        assert.equal(c.sent.requestPayer, 'requester', c.op);
        assert.equal(c.sent.expectedBucketOwner, '111122223333', c.op);
        // ListMultipartUploads (discovery) takes no SSE-C headers; every object call does.
        if (c.op !== 'ListMultipartUploads') assert.equal(c.sent.sseCustomerAlgorithm, 'AES256', c.op);
      }
      assert.ok(emu.log.some((c) => c.op === 'ListMultipartUploads'), 'discovery ran');
      assert.equal((await readdir(dir)).some((n) => n.endsWith('.json')), false, 'journal removed');
    } finally {
      await emu.close();
    }
  });
});
