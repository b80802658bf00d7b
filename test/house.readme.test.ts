import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { MiB } from '../src/index.ts';
import { BIN, cliEnv, jsonLines, runCli } from './helpers/cli.ts';
import { getObjectBytes, makeBucket, plainClient, randomFile, sha256, tempDir } from './helpers/s3.ts';

const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
const blocks = (lang: string) => [...readme.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);

test('README: the first lines give the two fresh-machine commands, and they are the npm scripts CI runs', async () => {
  const first = blocks('sh')[0]!;
  assert.match(first, /^npm ci && npm run demo/m);
  assert.match(first, /^npm ci && npm test/m);
  const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
  assert.ok(pkg.scripts.demo && pkg.scripts.test);
  const ci = await readFile(new URL('../.ci/run', import.meta.url), 'utf8');
  assert.match(ci, /^npm ci\b/m);
  assert.match(ci, /^npm test$/m);
});

/** Starts the CLI upload with --json and sends SIGINT once `afterParts` parts are acknowledged. */
async function interrupted(args: string[], env: NodeJS.ProcessEnv, afterParts: number): Promise<{ code: number | null; uploadId: string }> {
  const child = spawn(process.execPath, [BIN, ...args, '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = once(child, 'exit');
  let uploadId = '';
  let done = 0;
  for await (const line of createInterface({ input: child.stdout })) {
    const e = JSON.parse(line);
    if (e.event === 'plan') uploadId = e.uploadId;
    if (e.event === 'part-done' && ++done === afterParts) child.kill('SIGINT');
  }
  const [code] = await exited;
  return { code: code as number | null, uploadId };
}

test('README: every partwise command example runs, in order, and does what its text says', async () => {
  const dir = await tempDir();
  const bucket = await makeBucket('pw-readme');
  const f = await randomFile(dir, 70 * MiB, 'backup.tar');
  const env = cliEnv(dir);
  const key = 'backups/backup.tar';
  const commands = blocks('sh').flatMap((b) => b.split('\n')).filter((l) => l.startsWith('partwise '));
  assert.ok(commands.length >= 6, `found ${commands.length} examples`);
  const seen = new Set<string>();
  let pending = '';
  for (const line of commands) {
    const args = line.replace(/\s+#.*$/, '').split(/\s+/).slice(1).map((a) => a.replace('backup.tar', f.path).replace('my-bucket', bucket));
    // `backups/backup.tar` keys keep their name; only the local file path is substituted
    const fixed = args.map((a) => (a.startsWith('s3://') ? a.replace(f.path, 'backup.tar') : a));
    const cmd = fixed[0]!;
    if (cmd === 'status') {
      // "after an interrupted upload": make one, so status, ls and abort have something to show.
      const i = await interrupted(['upload', f.path, `s3://${bucket}/${key}`, '--part-size', '8MiB', '--concurrency', '1', '--fresh'], env, 2);
      assert.equal(i.code, 130);
      pending = i.uploadId;
    }
    const r = await runCli(fixed, env);
    assert.equal(r.code, 0, `${line}\n${r.stderr}`);
    if (cmd === 'upload' && !fixed.includes('--json')) assert.match(r.stdout, /Uploaded s3:\/\//, line);
    if (cmd === 'verify') assert.match(r.stdout, /^OK s3:\/\/.* matches[\s\S]*verification: full-object-checksum/, line);
    if (cmd === 'status') {
      assert.ok(r.stdout.includes(pending), `status names the upload\n${r.stdout}`);
      assert.match(r.stdout, /verified on the server: [2-9] parts/, r.stdout);
    }
    if (cmd === 'ls') {
      assert.ok(r.stdout.includes(pending), `ls lists the upload\n${r.stdout}`);
      assert.match(r.stdout, /yes \(/, 'and knows its local journal');
    }
    if (cmd === 'abort') {
      assert.ok(r.stdout.includes(`Aborted upload ${pending}`), r.stdout);
      const left = await plainClient().send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
      assert.deepEqual((left.Uploads ?? []).map((u) => u.UploadId), [], 'nothing left open');
    }
    if (cmd === 'upload' && fixed.includes('--json')) {
      const last = jsonLines(r.stdout).at(-1)!;
      assert.equal(last.event, 'complete');
      assert.equal(last.checksumAlgorithm, 'SHA256');
      assert.equal(last.verificationLevel, 'composite-checksum');
    }
    seen.add(cmd);
  }
  assert.deepEqual([...seen].sort(), ['abort', 'ls', 'status', 'upload', 'verify']);
  assert.equal(sha256(await getObjectBytes(bucket, key)), f.sha256);
});

test('README: the library example runs as written', async () => {
  const dir = await tempDir();
  const bucket = await makeBucket('pw-readme-lib');
  const f = await randomFile(dir, 40 * MiB, 'backup.tar');
  const code = blocks('ts')[0]!.replace("from 'partwise'", `from ${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)}`).replace("'my-bucket'", JSON.stringify(bucket));
  const script = join(dir, 'example.mts');
  await writeFile(script, code);
  const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), script], { cwd: dir, env: cliEnv(dir), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /[0-9a-f]{32}-3: full-object-checksum/);
  assert.equal(sha256(await getObjectBytes(bucket, 'backups/backup.tar')), f.sha256);
});

test('README: `npm run demo` works (on a smaller file)', () => {
  const r = spawnSync('npm', ['run', 'demo', '--silent'], { cwd: new URL('..', import.meta.url).pathname, env: { ...process.env, PARTWISE_DEMO_MIB: '80' }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /interrupted after 6 of 10 parts/);
  assert.match(r.stdout, /exit code 130/);
  assert.match(r.stdout, /verified on the server: [6-9] parts/);
  assert.match(r.stdout, /[6-9] verified on the server and skipped/);
  assert.match(r.stdout, /OK s3:\/\/partwise-demo\/backups\/backup.bin matches/);
});

test('README and docs/: every error code and warning code the library has is named (read from the type unions in the source)', async () => {
  const union = async (file: string, type: string) => {
    const src = await readFile(new URL(`../src/${file}`, import.meta.url), 'utf8');
    // To the union's end: the first semicolon after a quoted member (comments have their own).
    const from = src.slice(src.indexOf(`export type ${type} =`));
    const body = from.slice(0, from.search(/'\s*;/) + 1);
    const codes = [...body.matchAll(/\|\s*'([A-Z_0-9]+)'/g)].map((m) => m[1]!);
    assert.ok(codes.length > 5, `${type} read from ${file}`);
    return codes;
  };
  // The README and the pages it links (docs/): wherever the codes are documented.
  const docsDir = new URL('../docs/', import.meta.url);
  const pages = [readme, ...(await Promise.all(readdirSync(docsDir).filter((f) => f.endsWith('.md')).map((f) => readFile(new URL(f, docsDir), 'utf8'))))].join('\n');
  for (const code of await union('core/errors.ts', 'ErrorCode')) assert.ok(pages.includes(`\`${code}\``), `error code ${code} is not in the README or docs/`);
  for (const code of await union('upload/events.ts', 'WarningCode')) assert.ok(pages.includes(`\`${code}\``), `warning code ${code} is not in the README or docs/`);
});
