/**
 * Test helpers for the real S3 server (RADOS Gateway from `npm run s3:start`). Tests use the SDK
 * directly as an independent observer: reading objects back, tampering with parts, counting requests.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';

const envFile = new URL('../../.local-s3/env', import.meta.url);

/** Loads .local-s3/env into process.env unless an endpoint is already configured. */
export function loadS3Env(): void {
  if (process.env.AWS_ENDPOINT_URL) return;
  if (!existsSync(envFile)) throw new Error('No S3 server configured: run `npm run s3:start` (or set AWS_ENDPOINT_URL and credentials).');
  for (const line of readFileSync(envFile, 'utf8').split('\n')) {
    const m = /^export ([A-Z_]+)=(.*)$/.exec(line);
    if (m) process.env[m[1]!] = m[2]!;
  }
  const ep = process.env.AWS_ENDPOINT_URL ?? '';
  if (!/^https?:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?/.test(ep)) throw new Error(`refusing a non-loopback test endpoint: ${ep}`);
}

export interface Counts {
  [command: string]: number;
}

/** An SDK client that counts every command it sends (retries included), by name. */
export function countingClient(): { client: S3Client; counts: Counts; partNumbers: number[] } {
  loadS3Env();
  const client = new S3Client({ forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED', maxAttempts: 1 });
  const counts: Counts = {};
  const partNumbers: number[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const name = String(context.commandName ?? 'unknown').replace(/Command$/, '');
      counts[name] = (counts[name] ?? 0) + 1;
      if (name === 'UploadPart') partNumbers.push((args.input as { PartNumber: number }).PartNumber);
      return next(args);
    },
    { step: 'finalizeRequest', name: 'partwiseTestCounter' },
  );
  return { client, counts, partNumbers };
}

export function plainClient(): S3Client {
  loadS3Env();
  return new S3Client({ forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
}

export async function makeBucket(prefix: string): Promise<string> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`.toLowerCase();
  await plainClient().send(new CreateBucketCommand({ Bucket: name }));
  return name;
}

const made: string[] = [];
/** Each test file's folders go when its process exits: they hold GiB-sized files, and a full disk stops the gateway. */
process.on('exit', () => {
  for (const d of made) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      /* a child still writing there: the OS's tmp cleaning gets the rest */
    }
  }
});

export async function tempDir(prefix = 'partwise-test-'): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  made.push(d);
  return d;
}

export async function randomFile(dir: string, size: number, name = 'data.bin'): Promise<{ path: string; sha256: string; bytes: Buffer }> {
  const bytes = randomBytes(size);
  const path = join(dir, name);
  await writeFile(path, bytes);
  return { path, sha256: sha256(bytes), bytes };
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

export async function getObjectBytes(bucket: string, key: string, client = plainClient()): Promise<Buffer> {
  const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}
