/**
 * The package as a consumer gets it: `npm pack`, installed into a fresh project that already has its
 * own, older @aws-sdk/client-s3; imported as ESM (and by require(), which Node ≥ 20.19 allows for
 * ESM), type-checked strictly against the shipped .d.ts under node16 and bundler resolution, its
 * `partwise` command run, and one real upload through it to the local server. publint and
 * @arethetypeswrong/cli check the tarball.
 */
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { getObjectBytes, loadS3Env, makeBucket, randomFile, sha256, tempDir } from './helpers/s3.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name: string) => join(root, 'node_modules', '.bin', name);
/** The consumer's SDK: months older than the one partwise is developed against. */
const CONSUMER_SDK = '3.1150.0';

function run(cmd: string, args: string[], opts: SpawnSyncOptions = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  return { code: r.status, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') };
}

describe('the published package, from a consumer project', () => {
  let tarball = '';
  let consumer = '';
  let bucket = '';

  before(async () => {
    loadS3Env();
    bucket = await makeBucket('pw-pkg');
    const out = await tempDir('partwise-pack-');
    // `npm test` has just built dist/; pack exactly that.
    const r = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', out], { cwd: root });
    assert.equal(r.code, 0, r.stderr);
    tarball = join(out, JSON.parse(r.stdout)[0].filename);
    consumer = await tempDir('partwise-consumer-');
    await writeFile(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { '@aws-sdk/client-s3': CONSUMER_SDK, partwise: `file:${tarball}` } }, null, 2));
    const i = run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: consumer });
    assert.equal(i.code, 0, i.stderr);
  });

  test('the tarball holds the built library, its types, the command, LICENSE and CHANGELOG, and nothing else', () => {
    const files = run('tar', ['tzf', tarball]).stdout.trim().split('\n').map((f) => f.replace(/^package\//, ''));
    for (const f of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/bin.js', 'dist/src/local/hash-worker.js', 'dist/src/upload/events.d.ts']) {
      assert.ok(files.includes(f), `${f} is in the tarball`);
    }
    const stray = files.filter((f) => !/^(package\.json|README\.md|LICENSE|CHANGELOG\.md|dist\/src\/([\w-]+\/)?[\w-]+\.(js|d\.ts))$/.test(f));
    assert.deepEqual(stray, [], 'no sources, tests, maps or other files');
  });

  test('publint and @arethetypeswrong/cli find nothing wrong (an ESM-only package)', () => {
    const p = run(bin('publint'), ['run', tarball, '--strict']);
    assert.equal(p.code, 0, p.stdout + p.stderr);
    assert.match(p.stdout, /All good/);
    // esm-only: CommonJS consumers use import() or, on Node >= 20.19, require() of ESM (tested below).
    const a = run(bin('attw'), [tarball, '--profile', 'esm-only', '--format', 'json']);
    assert.equal(a.code, 0, a.stdout + a.stderr);
    const problems = JSON.parse(a.stdout).analysis.problems as unknown[];
    assert.deepEqual(problems.filter((x) => (x as { kind: string }).kind !== 'CJSResolvesToESM'), []);
  });

  test(`one copy of @aws-sdk/client-s3 in the consumer's tree (theirs, ${CONSUMER_SDK}): partwise's is a peer`, () => {
    const r = run('npm', ['ls', '@aws-sdk/client-s3', '--all', '--json'], { cwd: consumer });
    const versions = new Set<string>();
    const walk = (deps: Record<string, { version?: string; dependencies?: object }> | undefined) => {
      for (const [name, d] of Object.entries(deps ?? {})) {
        if (name === '@aws-sdk/client-s3' && d.version) versions.add(d.version);
        walk(d.dependencies as never);
      }
    };
    walk(JSON.parse(r.stdout).dependencies);
    assert.deepEqual([...versions], [CONSUMER_SDK]);
    // And because it is a peer, not merely deduplicated: the shipped manifest says so.
    const manifest = JSON.parse(run('tar', ['xzf', tarball, '-O', 'package/package.json']).stdout);
    assert.equal(manifest.peerDependencies?.['@aws-sdk/client-s3'], '^3.1150.0');
    assert.equal(manifest.dependencies?.['@aws-sdk/client-s3'], undefined);
    for (const testOnly of ['@aws-crypto/sha256-js', '@aws-crypto/crc32c']) assert.equal(manifest.dependencies?.[testOnly], undefined, `${testOnly} is a test reference only`);
    assert.equal(run('npm', ['ls', '@aws-crypto/sha256-js', '@aws-crypto/crc32c', '--json'], { cwd: consumer }).stdout.includes('"version"'), false, 'test-only packages are not installed');
  });

  test('imports as ESM, and by require() of ESM', () => {
    const esm = run(process.execPath, ['--input-type=module', '-e', "const m = await import('partwise'); console.log([typeof m.createUpload, typeof m.uploadFile, typeof m.PartwiseError, typeof m.planParts].join(','))"], { cwd: consumer });
    assert.equal(esm.stdout.trim(), 'function,function,function,function', esm.stderr);
    const cjs = run(process.execPath, ['-e', "const m = require('partwise'); console.log(typeof m.createUpload)"], { cwd: consumer });
    assert.equal(cjs.stdout.trim(), 'function', cjs.stderr);
  });

  test('a strict TypeScript consumer type-checks against the shipped .d.ts (node16 and bundler resolution); a misspelt option does not', async () => {
    const src = join(consumer, 'src');
    await mkdir(src, { recursive: true });
    await writeFile(
      join(src, 'consumer.ts'),
      `import { S3Client } from '@aws-sdk/client-s3';
import { PartwiseError, createUpload, type UploadResult, type WarningCode, type VerificationLevel } from 'partwise';

const client = new S3Client({ region: 'us-east-1' });
const upload = createUpload({ client, file: 'backup.tar', bucket: 'b', key: 'k', concurrency: 4, checksumAlgorithm: 'CRC32C' });
upload.on('warning', (w) => {
  const code: WarningCode = w.code;
  console.log(code, w.message);
});
upload.on('progress', (p) => console.log(p.fractionDone.toFixed(2)));
export async function main(): Promise<VerificationLevel> {
  try {
    const r: UploadResult = await upload.done();
    return r.verification.level;
  } catch (err) {
    if (err instanceof PartwiseError && err.resumable) console.error(err.code, err.context.uploadId);
    throw err;
  }
}
// @ts-expect-error: a misspelt option must not compile (the types are really there)
createUpload({ file: 'f', bucket: 'b', key: 'k', partSise: 8 });
`,
    );
    for (const [module, moduleResolution] of [['node16', 'node16'], ['esnext', 'bundler']] as const) {
      const cfg = join(consumer, `tsconfig.${moduleResolution}.json`);
      await writeFile(cfg, JSON.stringify({ compilerOptions: { strict: true, noEmit: true, target: 'ES2022', module, moduleResolution, skipLibCheck: true, types: [] }, files: ['src/consumer.ts'] }));
      const r = run(bin('tsc'), ['-p', cfg], { cwd: consumer });
      assert.equal(r.code, 0, `${moduleResolution}: ${r.stdout}${r.stderr}`);
    }
  });

  test('`npx partwise --help`, then a real upload through the installed package with the consumer\'s own (older) client', async () => {
    const help = run('npx', ['--no-install', 'partwise', '--help'], { cwd: consumer });
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /partwise upload <file> s3:\/\/<bucket>\/<key>/);

    const dir = await tempDir();
    const f = await randomFile(dir, 12 * 1024 * 1024 + 17);
    const script = join(consumer, 'upload.mjs');
    await writeFile(
      script,
      `import { S3Client } from '@aws-sdk/client-s3';
import { uploadFile } from 'partwise';
const client = new S3Client({ forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
const r = await uploadFile({ client, file: ${JSON.stringify(f.path)}, bucket: ${JSON.stringify(bucket)}, key: 'lib.bin', partSize: 5 * 1024 * 1024, stateDir: ${JSON.stringify(dir)} });
console.log(JSON.stringify({ level: r.verification.level, parts: r.partCount }));
`,
    );
    const lib = run(process.execPath, [script], { cwd: consumer, env: process.env });
    assert.equal(lib.code, 0, lib.stderr);
    assert.deepEqual(JSON.parse(lib.stdout.trim().split('\n').at(-1)!), { level: 'full-object-checksum', parts: 3 });
    assert.equal(sha256(await getObjectBytes(bucket, 'lib.bin')), f.sha256);

    const cli = run('npx', ['--no-install', 'partwise', 'upload', f.path, `s3://${bucket}/cli.bin`, '--json'], { cwd: consumer, env: { ...process.env, PARTWISE_STATE_DIR: dir } });
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(JSON.parse(cli.stdout.trim().split('\n').at(-1)!).event, 'complete');
    assert.equal(sha256(await getObjectBytes(bucket, 'cli.bin')), f.sha256);
  });
});
