/**
 * The CLI loads the AWS SDK at its first request, not at start: the journal is read and hashing
 * begun first. That is only safe if the port describes its endpoint, which names the journal,
 * exactly as a client made up front would, and if the SDK is then really not loaded.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { SdkS3Port, createS3Client, presetIdentity, type ClientOptions } from '../src/s3-adapter.ts';

const ENV = ['AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3', 'AWS_REGION'] as const;

async function withEnv<T>(env: Partial<Record<(typeof ENV)[number], string>>, f: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(ENV.map((k) => [k, process.env[k]]));
  for (const k of ENV) {
    if (env[k] === undefined) delete process.env[k];
    else process.env[k] = env[k];
  }
  try {
    return await f();
  } finally {
    for (const k of ENV) {
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
    ['an option before the environment', { endpoint: 'http://127.0.0.1:3', region: 'us-east-1' }, { AWS_ENDPOINT_URL: 'http://127.0.0.1:4' }, 'http://127.0.0.1:3'],
    ['AWS itself, region option', { region: 'eu-west-1' }, {}, 'aws:eu-west-1'],
    ['AWS itself, region from AWS_REGION', {}, { AWS_REGION: 'ap-south-1' }, 'aws:ap-south-1'],
    ['region option before AWS_REGION', { region: 'eu-north-1' }, { AWS_REGION: 'ap-south-1' }, 'aws:eu-north-1'],
  ];
  for (const [name, opts, env, want] of rows) {
    await withEnv(env, async () => {
      const eager = await new SdkS3Port(createS3Client(opts)).describeEndpoint();
      assert.equal(eager, want, `${name}: the SDK's own view`);
      assert.equal(presetIdentity(opts), want, `${name}: worked out without the SDK`);
      assert.equal(await new SdkS3Port({ lazy: opts }).describeEndpoint(), want, `${name}: the lazy port`);
    });
  }
  // Where only the SDK can tell (a region from a shared config profile, say), it is asked.
  await withEnv({}, async () => assert.equal(presetIdentity({ endpoint: 'http://127.0.0.1:7490' }), undefined));
  await withEnv({}, async () => assert.equal(presetIdentity({ endpoint: 'not a url', region: 'us-east-1' }), undefined));
});

test('the SDK is not loaded until the first request: not by importing partwise, nor by naming the endpoint', () => {
  const script = `
    const { createRequire } = await import('node:module');
    const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('@aws-sdk/client-s3'));
    const { SdkS3Port } = await import(${JSON.stringify(new URL('../src/index.ts', import.meta.url).href)});
    const port = new SdkS3Port({ lazy: { endpoint: 'http://127.0.0.1:9', region: 'us-east-1' } });
    const before = [loaded(), await port.describeEndpoint(), await port.clientMaxAttempts(), loaded()];
    await port.headObject({ bucket: 'b', key: 'k' }, {}).catch(() => undefined);
    process.stdout.write(JSON.stringify([...before, loaded()]));
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y' } });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [false, 'http://127.0.0.1:9', 1, false, true]);
});
