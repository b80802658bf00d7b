/**
 * Upload and jobs, object settings on a rerun: what the last run asked for is what the object has.
 * Fewer settings, a rolling Object Lock date, --no-overwrite after a kill, another KMS key. On the
 * local RGW (the KMS key on the S3 emulator, which names keys as S3 does; RGW here has no KMS).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { CreateBucketCommand, GetObjectAclCommand, GetObjectTaggingCommand, HeadObjectCommand, ListObjectVersionsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { FolderJob, PausedError, S3RequestError, SdkS3Port, createS3Client, createUpload, type S3Port } from '../src/index.ts';
import { Upload } from '../src/upload/engine.ts';
import { emulatorClient } from './emulator/client.ts';
import { S3Emulator } from './emulator/server.ts';
import { wrapPort } from './helpers/ports.ts';
import { countingClient, getObjectBytes, loadS3Env, makeBucket, plainClient, randomFile, sha256, tempDir } from './helpers/s3.ts';

const MiB = 1024 * 1024;
const ALL_USERS = 'http://acs.amazonaws.com/groups/global/AllUsers';

async function isPublic(bucket: string, key: string): Promise<boolean> {
  const acl = await plainClient().send(new GetObjectAclCommand({ Bucket: bucket, Key: key }));
  return (acl.Grants ?? []).some((g) => g.Grantee?.URI === ALL_USERS && g.Permission === 'READ');
}

async function smallAndLarge() {
  const dir = await tempDir();
  await writeFile(join(dir, 'small.txt'), randomBytes(1000));
  await writeFile(join(dir, 'big.bin'), randomBytes(12 * MiB));
  return dir;
}

test('a folder job rerun with fewer settings (no --acl, no --metadata) gives every file, small or large, the settings asked now', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-fewer');
  const dir = await smallAndLarge();
  const state = await tempDir();
  const run = (extra: object) => new FolderJob({ s3: new SdkS3Port(countingClient().client), dir, bucket, prefix: 'f/', stateDir: state, partSize: 5 * MiB, ...extra }).done();
  const first = await run({ acl: 'public-read', metadata: { mistake: 'yes' } });
  assert.equal(first.uploaded, 2, JSON.stringify(first.outcomes));
  for (const key of ['f/small.txt', 'f/big.bin']) {
    assert.equal(await isPublic(bucket, key), true, `${key} public after the first run`);
    assert.deepEqual((await plainClient().send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).Metadata, { mistake: 'yes' });
  }
  const second = await run({});
  assert.equal(second.uploaded, 2, JSON.stringify(second.outcomes));
  for (const key of ['f/small.txt', 'f/big.bin']) {
    assert.equal(await isPublic(bucket, key), false, `${key} private after the rerun without --acl`);
    assert.deepEqual((await plainClient().send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).Metadata ?? {}, {}, `${key} without the metadata`);
    assert.equal(sha256(await getObjectBytes(bucket, key)), sha256(await readFile(join(dir, key.slice(2)))));
  }
  const third = await run({});
  assert.equal(third.skipped, 2, 'and then nothing to send');
});

test('a folder job with a rolling Object Lock date ("today + N days"): a later date extends the retention in place, nothing is sent again and no copy is added; an earlier one changes nothing', async () => {
  loadS3Env();
  const s3 = plainClient();
  const bucket = `pw-roll-${randomBytes(4).toString('hex')}`;
  await s3.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
  const dir = await smallAndLarge();
  const state = await tempDir();
  const day = (n: number) => {
    const d = new Date(Date.now() + n * 86_400_000);
    d.setMilliseconds(0);
    return d;
  };
  const run = (until: Date) => {
    const { client, counts } = countingClient();
    return new FolderJob({ s3: new SdkS3Port(client), dir, bucket, prefix: 'r/', stateDir: state, partSize: 5 * MiB, objectLockMode: 'GOVERNANCE', objectLockRetainUntil: until })
      .done()
      .then((r) => ({ r, counts }));
  };
  const first = await run(day(30));
  assert.equal(first.r.uploaded, 2);
  // One instant for "the later date": computed again, it could fall in the next second on a slow machine.
  const later = day(31);
  const second = await run(later);
  assert.equal(second.r.skipped, 2, JSON.stringify(second.r.outcomes));
  assert.equal(second.r.uploaded, 0);
  assert.equal(second.counts.PutObject ?? 0, 0);
  assert.equal(second.counts.CreateMultipartUpload ?? 0, 0);
  assert.equal(second.counts.PutObjectRetention, 2);
  for (const key of ['r/small.txt', 'r/big.bin']) {
    const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    assert.equal(h.ObjectLockRetainUntilDate?.getTime(), later.getTime(), `${key} locked until the later date`);
  }
  const versions = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket }));
  assert.equal(versions.Versions?.length, 2, 'one version of each file: no locked copy added');
  const third = await run(day(29));
  assert.equal(third.r.skipped, 2);
  assert.equal(third.counts.PutObjectRetention ?? 0, 0, 'an earlier date: the object is already locked longer');
  const fourth = await run(later);
  assert.equal(fourth.counts.PutObjectRetention ?? 0, 0, 'the same date: nothing to extend');
});

/** A port that lets Complete (or PutObject) land on the server, then stops the run as if it were killed before it could record it. */
function killedAfterLanding(inner: S3Port, ac: AbortController, op: 'complete' | 'put'): S3Port {
  const stopped = (operation: string) => {
    ac.abort();
    return new S3RequestError({ operation, s3Code: 'ECONNRESET' });
  };
  return wrapPort(
    inner,
    op === 'complete'
      ? {
          completeMultipartUpload: async (input, req, signal) => {
            await inner.completeMultipartUpload(input, req, signal);
            throw stopped('CompleteMultipartUpload');
          },
        }
      : {
          putObject: async (input, req, signal) => {
            await inner.putObject(input, req, signal);
            throw stopped('PutObject');
          },
        },
  );
}

test('--no-overwrite with a setting, stopped just after the object landed: the rerun reads the settings back and finishes ("already complete"), never blocked by its own object', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-noover-kill');
  const dir = await tempDir();
  const f = await randomFile(dir, 11 * MiB);
  const opts = { file: f.path, bucket, key: 'tagged.bin', stateDir: dir, partSize: 5 * MiB, noOverwrite: true, tags: { team: 'ops' }, metadata: { host: 'db1' } };
  const ac = new AbortController();
  const inner = new SdkS3Port(plainClient());
  await assert.rejects(new Upload({ ...opts, s3: killedAfterLanding(inner, ac, 'complete'), signal: ac.signal }).done(), PausedError);
  assert.equal((await readdir(dir)).filter((n) => n.endsWith('.json')).length, 1, 'the journal is kept');
  const { client, counts } = countingClient();
  const r = await createUpload({ client, ...opts }).done();
  assert.equal(r.alreadyComplete, true);
  assert.equal(counts.UploadPart ?? 0, 0);
  assert.equal(counts.CompleteMultipartUpload ?? 0, 0);
  assert.ok((counts.GetObjectTagging ?? 0) >= 1, 'the tags were read back');
  assert.equal(sha256(await getObjectBytes(bucket, 'tagged.bin')), f.sha256);
  // An object with the same bytes but other tags is someone else's: still refused.
  await assert.rejects(createUpload({ ...opts, stateDir: await tempDir(), tags: { team: 'other' } }).done(), (e: { code?: string }) => e.code === 'OBJECT_EXISTS');
  const tags = (await plainClient().send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'tagged.bin' }))).TagSet ?? [];
  assert.deepEqual(tags.map((t) => `${t.Key}=${t.Value}`), ['team=ops']);
});

for (const checksum of ['crc32c', 'none'] as const) {
  test(`a folder job with --no-overwrite and ${checksum === 'none' ? '--checksum none' : 'a setting'}, stopped just after a small file landed: the rerun proves it (${checksum === 'none' ? 'MD5 ETag' : 'checksum and settings read back'}) and records it`, async () => {
    loadS3Env();
    const bucket = await makeBucket('pw-noover-kill');
    const dir = await tempDir();
    await writeFile(join(dir, 'a.txt'), randomBytes(3000));
    const state = await tempDir();
    const extra = checksum === 'none' ? { checksumAlgorithm: 'none' as const } : { metadata: { host: 'db1' } };
    const ac = new AbortController();
    const inner = new SdkS3Port(plainClient());
    const first = await new FolderJob({ s3: killedAfterLanding(inner, ac, 'put'), dir, bucket, prefix: 'n/', stateDir: state, noOverwrite: true, signal: ac.signal, ...extra }).done();
    assert.equal(first.uploaded, 0, JSON.stringify(first.outcomes));
    const again = await new FolderJob({ s3: new SdkS3Port(countingClient().client), dir, bucket, prefix: 'n/', stateDir: state, noOverwrite: true, ...extra }).done();
    assert.equal(again.failed, 0, JSON.stringify(again.outcomes));
    assert.equal(again.skipped, 1);
    assert.match(again.outcomes[0]!.how, /already there/);
    const third = await new FolderJob({ s3: new SdkS3Port(countingClient().client), dir, bucket, prefix: 'n/', stateDir: state, noOverwrite: true, ...extra }).done();
    assert.equal(third.skipped, 1, 'recorded: the next run confirms it from the journal');
  });
}

test('a folder job with --no-overwrite and a setting: an object with the same bytes but other settings at the key is someone else\'s (OBJECT_EXISTS), untouched', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-noover-kill');
  const dir = await tempDir();
  const bytes = randomBytes(3000);
  await writeFile(join(dir, 'a.txt'), bytes);
  await plainClient().send(new PutObjectCommand({ Bucket: bucket, Key: 'o/a.txt', Body: bytes, Metadata: { host: 'other' } }));
  const r = await new FolderJob({ s3: new SdkS3Port(countingClient().client), dir, bucket, prefix: 'o/', stateDir: await tempDir(), noOverwrite: true, metadata: { host: 'db1' } }).done();
  assert.equal(r.failed, 1);
  assert.equal(r.outcomes[0]!.error?.code, 'OBJECT_EXISTS');
  assert.deepEqual((await plainClient().send(new HeadObjectCommand({ Bucket: bucket, Key: 'o/a.txt' }))).Metadata, { host: 'other' });
});

test('the KMS key is compared: an object under key A is not "already complete" for a run asking key B; the same key is; an alias cannot be compared, so no shortcut; an upload is not adopted for a key asked', async () => {
  const emu = await S3Emulator.start({ minPartSize: 1024 });
  try {
    await emulatorClient(emu.endpoint).send(new CreateBucketCommand({ Bucket: 'kms' }));
    const s3 = () => new SdkS3Port(createS3Client({ endpoint: emu.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }));
    const dir = await tempDir();
    const f = await randomFile(dir, 5000);
    const up = (kmsKey: string, extra: object = {}) => new Upload({ s3: s3(), file: f.path, bucket: 'kms', key: 'k', partSize: 1024, minPartSize: 1, stateDir: join(dir, randomBytes(4).toString('hex')), discover: true, serverSideEncryption: 'aws:kms', sseKmsKeyId: kmsKey, ...extra }).done();
    const a = await up('key-a');
    assert.equal(a.alreadyComplete, false);
    const creates = () => emu.count('CreateMultipartUpload');
    const before = creates();
    const b = await up('key-b');
    assert.equal(b.alreadyComplete, false, 'another key: sent again');
    assert.equal(creates() - before, 1);
    const same = await up('arn:aws:kms:us-east-1:111122223333:key/key-b');
    assert.equal(same.alreadyComplete, true, 'the same key, named by its ARN');
    assert.equal(creates() - before, 1);
    const alias = await up('alias/backups');
    assert.equal(alias.alreadyComplete, false, 'an alias cannot be compared with the key ARN the object names: no shortcut');
    // An upload under key A, interrupted; a run asking key B does not adopt it.
    const ac = new AbortController();
    const state = join(dir, 'first');
    const first = new Upload({ s3: s3(), file: f.path, bucket: 'kms', key: 'k2', partSize: 1024, minPartSize: 1, stateDir: state, concurrency: 1, serverSideEncryption: 'aws:kms', sseKmsKeyId: 'key-a', signal: ac.signal });
    first.on('part-done', () => ac.abort());
    await assert.rejects(first.done(), PausedError);
    const other = new Upload({ s3: s3(), file: f.path, bucket: 'kms', key: 'k2', partSize: 1024, minPartSize: 1, stateDir: join(dir, 'second'), discover: true, serverSideEncryption: 'aws:kms', sseKmsKeyId: 'key-b' });
    const warnings: string[] = [];
    other.on('warning', (w) => warnings.push(w.code));
    const r = await other.done();
    assert.equal(r.resumed, false);
    assert.ok(warnings.includes('NOT_ADOPTED'), warnings.join());
  } finally {
    await emu.close();
  }
});
