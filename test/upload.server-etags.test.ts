/**
 * A finished multipart object's ETag in the forms servers give it: S3's MD5 of the part MD5s with
 * "-N"; the plain MD5 of the whole object (s3rver); opaque (Google Cloud Storage's XML API). Only
 * the first two identify the bytes, and neither of the others is ever a reason to call an
 * identical object bad (issue 26, defect 1). Against the S3 emulator's profiles, with no checksum
 * (so the ETag is the only evidence), through the library and the command.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '../src/index.ts';
import { SdkS3Port, createS3Client } from '../src/s3/adapter.ts';
import { emulatorClient } from './emulator/client.ts';
import { S3Emulator } from './emulator/server.ts';
import { cliEnv, jsonLines, runCli } from './helpers/cli.ts';
import { tempDir } from './helpers/s3.ts';

const KiB = 1024;
const partSize = 8 * KiB;
const Bucket = 'etags';
const credentials = { accessKeyId: 'emulator', secretAccessKey: 'emulator-secret' };

describe('ETag forms of a finished multipart object', () => {
  const servers: Partial<Record<'wholeMd5' | 'opaque', S3Emulator>> = {};
  before(async () => {
    servers.wholeMd5 = await S3Emulator.start({ minPartSize: partSize, multipartEtag: 'whole-md5', headChecksums: false });
    servers.opaque = await S3Emulator.start({ minPartSize: partSize, multipartEtag: 'opaque', headChecksums: false });
    for (const e of Object.values(servers)) await emulatorClient(e.endpoint).send(new CreateBucketCommand({ Bucket }));
  });
  after(async () => {
    for (const e of Object.values(servers)) await e.close();
  });

  async function file(size = 4 * partSize + 123) {
    const dir = await tempDir();
    const bytes = randomBytes(size);
    const path = join(dir, 'f.bin');
    await writeFile(path, bytes);
    return { dir, path, bytes };
  }
  const upload = (e: S3Emulator, f: { dir: string; path: string }, key: string) =>
    new Upload({ s3: new SdkS3Port(createS3Client({ endpoint: e.endpoint, region: 'us-east-1', credentials })), file: f.path, bucket: Bucket, key, partSize, minPartSize: 1, stateDir: f.dir, checksumAlgorithm: 'none' });
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  const objectSha = async (e: S3Emulator, key: string) => sha(await (await emulatorClient(e.endpoint).send(new GetObjectCommand({ Bucket, Key: key }))).Body!.transformToByteArray());

  test('the plain MD5 of the whole object (s3rver): the upload is proven by it (level object-md5), never "do not trust"', async () => {
    const f = await file();
    const r = await upload(servers.wholeMd5!, f, 'whole.bin').done();
    assert.equal(r.verification.level, 'object-md5');
    assert.ok(r.verification.checks.some((c) => /MD5 of the whole file/.test(c)), r.verification.checks.join('; '));
    assert.equal(await objectSha(servers.wholeMd5!, 'whole.bin'), sha(f.bytes));
  });

  test('an opaque ETag and nothing else: OBJECT_UNVERIFIED (exit 4 material), not OBJECT_VERIFICATION_FAILED', async () => {
    const f = await file();
    await assert.rejects(upload(servers.opaque!, f, 'opaque.bin').done(), (e: { code?: string; message?: string }) => {
      assert.equal(e.code, 'OBJECT_UNVERIFIED', e.message);
      assert.match(e.message ?? '', /neither a multipart ETag nor the file's MD5/);
      return true;
    });
    assert.equal(await objectSha(servers.opaque!, 'opaque.bin'), sha(f.bytes), 'the object is the file: nothing called it bad');
  });

  test('the command: upload exits 0 on the whole-object MD5, and verify says object-md5 (not multipart-etag); on an opaque ETag both exit 4', async () => {
    for (const [name, e, code] of [['whole', servers.wholeMd5!, 0], ['opaque', servers.opaque!, 4]] as const) {
      const f = await file(11 * 1024 * KiB); // three parts of 5 MiB: a multipart upload
      const env = { ...cliEnv(f.dir), AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey, AWS_ENDPOINT_URL: e.endpoint };
      const up = await runCli(['upload', f.path, `s3://${Bucket}/cli-${name}.bin`, '--part-size', '5MiB', '--checksum', 'none', '--json'], env);
      assert.equal(up.code, code, up.stderr);
      const v = await runCli(['verify', f.path, `s3://${Bucket}/cli-${name}.bin`, '--json'], env);
      assert.equal(v.code, code, v.stderr);
      const last = jsonLines(v.stdout).at(-1) as { verificationLevel?: string; level?: string };
      if (code === 0) assert.equal(last.verificationLevel ?? last.level, 'object-md5', v.stdout);
    }
  });
});
