/**
 * The CLI loads the AWS SDK at its first request, not at start: the journal is read and hashing
 * begun first. That is only safe if the port describes its endpoint, which names the journal,
 * exactly as a client made up front would, and if the SDK is then really not loaded.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { PartwiseError } from '../src/core/errors.ts';
import { SdkS3Port, createS3Client, presetIdentity, type ClientOptions } from '../src/s3/adapter.ts';
import { BIN, cliEnv, jsonLines, runCli } from './helpers/cli.ts';
import { uploadThenPause } from './helpers/pause.ts';
import { makeBucket, randomFile, tempDir } from './helpers/s3.ts';

const ENV = ['AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3', 'AWS_REGION'] as const;

const FILES = ['AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE'] as const;

/** The given variables only; and no shared config files but the ones a test names (not the developer's own ~/.aws). */
async function withEnv<T>(env: Partial<Record<(typeof ENV)[number], string>>, f: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries([...ENV, ...FILES].map((k) => [k, process.env[k]]));
  for (const k of ENV) {
    if (env[k] === undefined) delete process.env[k];
    else process.env[k] = env[k];
  }
  for (const k of FILES) process.env[k] ||= '/nonexistent/partwise-test/aws-file';
  try {
    return await f();
  } finally {
    for (const k of [...ENV, ...FILES]) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
}

test('a lazy port names its endpoint as a client made up front does (the journal path depends on it)', async () => {
  const rows: [string, ClientOptions, Partial<Record<(typeof ENV)[number], string>>, string][] = [
    ['explicit endpoint with port', { endpoint: 'http://127.0.0.1:7490', region: 'us-east-1' }, {}, 'http://127.0.0.1:7490'],
    ['trailing slash', { endpoint: 'http://127.0.0.1:7490/', region: 'us-east-1' }, {}, 'http://127.0.0.1:7490'],
    ['https, default port', { endpoint: 'https://s3.example.com', region: 'us-east-1' }, {}, 'https://s3.example.com'],
    ['IPv6 with a path', { endpoint: 'http://[::1]:9000/base/', region: 'us-east-1' }, {}, 'http://[::1]:9000/base/'],
    ['upper case, default port written', { endpoint: 'HTTP://Host.Example:80/x', region: 'us-east-1' }, {}, 'http://host.example/x'],
    ['endpoint from AWS_ENDPOINT_URL', { region: 'us-east-1' }, { AWS_ENDPOINT_URL: 'http://127.0.0.1:7490' }, 'http://127.0.0.1:7490'],
    ['AWS_ENDPOINT_URL_S3 before AWS_ENDPOINT_URL', { region: 'us-east-1' }, { AWS_ENDPOINT_URL: 'http://127.0.0.1:1', AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:2' }, 'http://127.0.0.1:2'],
    ['an empty AWS_ENDPOINT_URL_S3 is passed over, as the SDK does', { region: 'us-east-1' }, { AWS_ENDPOINT_URL_S3: '', AWS_ENDPOINT_URL: 'http://127.0.0.1:7490' }, 'http://127.0.0.1:7490'],
    ['an option before the environment', { endpoint: 'http://127.0.0.1:3', region: 'us-east-1' }, { AWS_ENDPOINT_URL: 'http://127.0.0.1:4' }, 'http://127.0.0.1:3'],
    ['AWS itself, region option', { region: 'eu-west-1' }, {}, 'aws:eu-west-1'],
    ['AWS itself, region from AWS_REGION', {}, { AWS_REGION: 'ap-south-1' }, 'aws:ap-south-1'],
    ['region option before AWS_REGION', { region: 'eu-north-1' }, { AWS_REGION: 'ap-south-1' }, 'aws:eu-north-1'],
    ['endpoint from the environment, written loosely', { region: 'us-east-1' }, { AWS_ENDPOINT_URL: 'HTTP://Host.Example:80/' }, 'http://host.example'],
    // The SDK rewrites these (a FIPS pseudo-region names the plain one): the preset must not guess.
    ['FIPS pseudo-region, suffix', { region: 'us-east-1-fips' }, {}, 'aws:us-east-1'],
    ['FIPS pseudo-region, prefix, from AWS_REGION', {}, { AWS_REGION: 'fips-us-gov-west-1' }, 'aws:us-gov-west-1'],
    ['aws-fips', { region: 'aws-fips' }, {}, 'aws:us-east-1'],
  ];
  for (const [name, opts, env, want] of rows) {
    await withEnv(env, async () => {
      const eager = await new SdkS3Port(createS3Client(opts)).describeEndpoint();
      assert.equal(eager, want, `${name}: the SDK's own view`);
      const preset = presetIdentity(opts);
      assert.ok(preset === want || (preset === undefined && /fips/i.test(name)), `${name}: worked out without the SDK: ${preset}`);
      assert.equal(await new SdkS3Port({ lazy: opts }).describeEndpoint(), want, `${name}: the lazy port`);
    });
  }
  // Where only the SDK can tell (a region from a shared config profile, say), it is asked.
  await withEnv({}, async () => assert.equal(presetIdentity({ endpoint: 'http://127.0.0.1:7490' }), undefined));
  await withEnv({}, async () => assert.equal(presetIdentity({ endpoint: 'not a url', region: 'us-east-1' }), undefined));
  await withEnv({ AWS_REGION: '' }, async () => assert.equal(presetIdentity({ endpoint: 'http://127.0.0.1:7490' }), undefined, 'an empty AWS_REGION is no region'));
  await withEnv({}, async () => assert.equal(presetIdentity({ endpoint: 'http://127.0.0.1:7490', region: 'us_east_1' }), undefined, 'not a host label: the SDK says so'));
});

test('an endpoint named in a shared config profile (endpoint_url, a services section) is the journal\'s endpoint, as the SDK reads it; without one, the SDK is not needed to say so', async () => {
  const dir = await tempDir();
  const saved = { AWS_CONFIG_FILE: process.env.AWS_CONFIG_FILE, AWS_PROFILE: process.env.AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE: process.env.AWS_SHARED_CREDENTIALS_FILE };
  const rows: [string, string, string | undefined][] = [
    ['endpoint_url in the profile', '[profile p]\nendpoint_url = HTTP://Host.Example:9000/\n', 'http://host.example:9000'],
    ['a services section', '[profile p]\nservices = mine\n\n[services mine]\ns3 =\n  endpoint_url = http://127.0.0.1:7001\n', 'http://127.0.0.1:7001'],
    ['endpoint_url ignored by ignore_configured_endpoint_urls', '[profile p]\nendpoint_url = http://127.0.0.1:7002\nignore_configured_endpoint_urls = true\n', 'aws:us-east-1'],
    ['no endpoint in the files', '[profile p]\nregion = eu-west-1\n', undefined],
    ['endpoint_url that is not a URL', '[profile p]\nendpoint_url = not a url\n', 'INVALID_OPTIONS'],
  ];
  try {
    let i = 0;
    for (const [name, config, want] of rows) {
      // A file of its own each time: the SDK keeps what it has read of a path.
      const path = join(dir, `config-${i++}`);
      await writeFile(path, config);
      process.env.AWS_CONFIG_FILE = path;
      process.env.AWS_SHARED_CREDENTIALS_FILE = join(dir, 'none');
      process.env.AWS_PROFILE = 'p';
      await withEnv({}, async () => {
        const opts = { region: 'us-east-1' };
        if (want === undefined) {
          assert.equal(presetIdentity(opts), 'aws:us-east-1', `${name}: no SDK needed`);
          return;
        }
        assert.equal(presetIdentity(opts), undefined, `${name}: only the SDK reads it`);
        if (want === 'INVALID_OPTIONS') {
          // Said as the options' fault, naming where it came from; not UNEXPECTED "Invalid URL".
          await assert.rejects(new SdkS3Port({ lazy: opts }).describeEndpoint(), (e: PartwiseError) => e.code === 'INVALID_OPTIONS' && /"not a url" is not a URL \(endpoint_url in the shared config profile\)/.test(e.message));
          return;
        }
        assert.equal(await new SdkS3Port({ lazy: opts }).describeEndpoint(), want, `${name}: the lazy port`);
        assert.equal(await new SdkS3Port(createS3Client(opts)).describeEndpoint(), want, `${name}: a client made up front`);
      });
    }
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});

test('a port names its endpoint once: the same answer before and after its client is made', async () => {
  // us-east-1-fips: worked out without the SDK it would read differently, so a port that answered
  // from its options first and from its client later would name two journals in one run.
  await withEnv({}, async () => {
    const port = new SdkS3Port({ lazy: { region: 'us-east-1-fips', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } } });
    const first = await port.describeEndpoint();
    await port.headObject({ bucket: 'b', key: 'k' }, {}, AbortSignal.timeout(1)).catch(() => undefined);
    assert.equal(await port.describeEndpoint(), first);
  });
  await withEnv({ AWS_ENDPOINT_URL: 'http://127.0.0.1:9' }, async () => {
    const port = new SdkS3Port({ lazy: { region: 'us-east-1' } });
    const first = await port.describeEndpoint();
    process.env.AWS_ENDPOINT_URL = 'http://127.0.0.1:10';
    assert.equal(await port.describeEndpoint(), first, 'worked out once, not again');
  });
});

test('a failure to name the endpoint is not kept: asked again, the port tries again', async () => {
  const { S3Client } = await import('@aws-sdk/client-s3');
  let calls = 0;
  const client = new S3Client({
    endpoint: 'http://127.0.0.1:9',
    region: async () => {
      if (calls++ === 0) throw new Error('no region yet');
      return 'us-east-1';
    },
  });
  const port = new SdkS3Port(client);
  await assert.rejects(port.describeEndpoint(), /no region yet/);
  assert.equal(await port.describeEndpoint(), 'http://127.0.0.1:9');
});

test('the SDK is not loaded until the first request: not by importing partwise, nor by naming the endpoint', () => {
  const script = `
    const { createRequire } = await import('node:module');
    const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('@aws-sdk/client-s3'));
    const { SdkS3Port, createUpload } = await import(${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)});
    const port = new SdkS3Port({ lazy: { endpoint: 'http://127.0.0.1:9', region: 'us-east-1' } });
    createUpload({ file: 'f', bucket: 'bkt', key: 'k', endpoint: 'http://127.0.0.1:9', region: 'us-east-1' });
    const before = [loaded(), await port.describeEndpoint(), await port.clientMaxAttempts(), loaded()];
    await port.headObject({ bucket: 'b', key: 'k' }, {}).catch(() => undefined);
    process.stdout.write(JSON.stringify([...before, loaded()]));
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y' } });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [false, 'http://127.0.0.1:9', 1, false, true]);
});

/** A preload that hides the SDK from the command: `resolve` as if not installed, or `load` as if broken. */
async function hidingSdk(dir: string, how: 'resolve' | 'load'): Promise<string> {
  const path = join(dir, `hide-sdk-${how}.cjs`);
  const hook = how === 'resolve' ? '_resolveFilename' : '_load';
  await writeFile(
    path,
    `const M = require('module'); const orig = M.${hook};
     M.${hook} = function (request, ...rest) {
       if (request === '@aws-sdk/client-s3') { const e = new Error("Cannot find module '@aws-sdk/client-s3' (hidden by the test)"); e.code = 'MODULE_NOT_FOUND'; throw e; }
       return orig.call(this, request, ...rest);
     };`,
  );
  return path;
}

test('the command without the SDK: --version works; an upload is INVALID_OPTIONS naming what to install, with nothing written', async () => {
  const bucket = await makeBucket('pw-nosdk');
  const dir = await tempDir();
  const f = await randomFile(dir, 1024);
  for (const how of ['resolve', 'load'] as const) {
    const state = join(dir, `state-${how}`);
    const env = { ...cliEnv(state), NODE_OPTIONS: `--require ${await hidingSdk(dir, how)}` };
    const version = await runCli(['--version'], env);
    assert.equal(version.code, 0, version.stderr);
    const up = await runCli(['upload', f.path, `s3://${bucket}/k`, '--json'], env);
    assert.equal(up.code, 2, `${how}: ${up.stderr}`);
    const err = JSON.parse(up.stdout.trim().split('\n').at(-1)!) as { code: string; message: string };
    assert.equal(err.code, 'INVALID_OPTIONS', `${how}: ${err.message}`);
    assert.match(err.message, /npm install @aws-sdk\/client-s3/);
    // Not installed: refused before the state folder is touched (a broken install fails at its first request).
    if (how === 'resolve') assert.equal(existsSync(state), false, 'nothing written');
  }
});

test('the command reads its journal and announces the resume before it loads the SDK', async () => {
  const bucket = await makeBucket('pw-lazycli');
  const dir = await tempDir();
  const f = await randomFile(dir, 3 * 64 * 1024);
  const state = join(dir, 'state');
  const env = cliEnv(state);
  const { uploadId } = await uploadThenPause({ file: f.path, bucket, key: 'k', stateDir: state, partSize: 64 * 1024, minPartSize: 1 }, 1);
  // The SDK then fails to load: whatever the command did before its first request is what it does without the SDK.
  const r = await runCli(['upload', f.path, `s3://${bucket}/k`, '--json'], { ...env, NODE_OPTIONS: `--require ${await hidingSdk(dir, 'load')}` });
  assert.equal(r.code, 2, r.stderr);
  const events = jsonLines(r.stdout).filter((e) => e.event !== 'progress' && e.event !== 'verify-progress');
  assert.deepEqual(
    events.map((e) => e.event),
    ['plan', 'error'],
  );
  assert.equal(events[0]!.uploadId, uploadId, 'the journal was read and the resume announced first');
  assert.equal(events[1]!.code, 'INVALID_OPTIONS');
});

test('Node 22.1+ keeps the command\'s compiled code between runs (module.enableCompileCache); Node 20 has no such cache', () => {
  const tmp = join(process.env.TMPDIR ?? '/tmp', `pw-cc-${process.pid}-${Date.now()}`);
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp };
  delete env.NODE_COMPILE_CACHE;
  delete env.NODE_DISABLE_COMPILE_CACHE;
  spawnSync('mkdir', ['-p', tmp]);
  const r = spawnSync(process.execPath, [BIN, '--version'], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const cache = join(tmp, 'node-compile-cache');
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  if (major > 22 || (major === 22 && minor >= 1)) assert.ok(existsSync(cache) && readdirSync(cache).length > 0, `no compile cache in ${cache}`);
  else assert.equal(existsSync(cache), false);
  spawnSync('rm', ['-rf', tmp]);
});
