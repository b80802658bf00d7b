/**
 * Object settings (storage class, tags, metadata, headers, ACL, Object Lock) and --no-overwrite:
 * the pure decisions as tables, then each read back from the local RGW, a resume that asks for
 * other settings refused, and a second writer never silently replaced.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { AbortMultipartUploadCommand, CreateBucketCommand, GetObjectCommand, GetObjectTaggingCommand, HeadObjectCommand, ListMultipartUploadsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { createUpload, Upload } from '../src/index.ts';
import { S3RequestError } from '../src/core/errors.ts';
import { SdkS3Port, createS3Client } from '../src/s3/adapter.ts';
import { wrapPort } from './helpers/ports.ts';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { compareSettings, guessContentType, objectSettings, sameKmsKey, settingsDiff, settingsProblems, taggingHeader } from '../src/core/object-settings.ts';
import { cliEnv, jsonLines, runCli } from './helpers/cli.ts';
import { uploadThenPause } from './helpers/pause.ts';
import { countingClient, getObjectBytes, loadS3Env, makeBucket, plainClient, randomFile, sha256, tempDir } from './helpers/s3.ts';

const MiB = 1024 * 1024;

test('sameKmsKey: a key id against the ARN S3 names; other ARNs are other keys; an alias cannot be compared', () => {
  const arn = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab';
  const rows: [string, string | undefined, ReturnType<typeof sameKmsKey>][] = [
    [arn, arn, 'same'],
    ['1234abcd-12ab', arn, 'same'],
    ['9999-other', arn, 'different'],
    ['arn:aws:kms:eu-west-1:444455556666:key/1234abcd-12ab', arn, 'different'],
    ['alias/backups', arn, 'unknown'],
    ['arn:aws:kms:eu-west-1:111122223333:alias/backups', arn, 'unknown'],
    ['1234abcd-12ab', undefined, 'unknown'],
  ];
  for (const [asked, named, want] of rows) assert.equal(sameKmsKey(asked, named), want, `${asked} vs ${named}`);
});

test('compareSettings: defaults count (no tags, private, no metadata); a longer retention holds; what cannot be read is unknown, never proof', () => {
  const owner = 'o1';
  const privateAcl = { ownerId: owner, grants: [{ grantee: { type: 'user', id: owner }, permission: 'FULL_CONTROL' }] };
  const publicAcl = { ownerId: owner, grants: [...privateAcl.grants, { grantee: { type: 'group', uri: 'http://acs.amazonaws.com/groups/global/AllUsers' }, permission: 'READ' }] };
  const seen = { contentType: 'application/x-tar', metadata: { Host: 'db1' }, tags: { team: 'ops' }, acl: privateAcl };
  const wanted = { contentType: 'application/x-tar', metadata: { host: 'db1' }, tags: { team: 'ops' } };
  assert.deepEqual(compareSettings(wanted, seen), { differs: [], unknown: [] });
  assert.match(compareSettings({ ...wanted, tags: { team: 'x' } }, seen).differs.join(), /^tags:/);
  assert.match(compareSettings({ contentType: 'application/x-tar', tags: { team: 'ops' } }, seen).differs.join(), /^metadata:/, 'fewer settings asked: the metadata there differs');
  assert.match(compareSettings({ ...wanted, acl: 'public-read' }, seen).differs.join(), /^acl:/);
  assert.deepEqual(compareSettings({ ...wanted, acl: 'public-read' }, { ...seen, acl: publicAcl }), { differs: [], unknown: [] });
  assert.match(compareSettings({ ...wanted, acl: 'bucket-owner-full-control' }, seen).unknown.join(), /^acl/);
  assert.match(compareSettings(wanted, { ...seen, tags: undefined }).unknown.join(), /^tags/);
  assert.match(compareSettings(wanted, { ...seen, acl: undefined }).unknown.join(), /^acl/);
  const lock = { ...wanted, objectLockMode: 'GOVERNANCE' as const, objectLockRetainUntil: '2027-01-01T00:00:00.000Z' };
  assert.deepEqual(compareSettings(lock, { ...seen, objectLockMode: 'GOVERNANCE', objectLockRetainUntil: new Date('2027-02-01T00:00:00Z') }), { differs: [], unknown: [] });
  assert.match(compareSettings(lock, { ...seen, objectLockMode: 'GOVERNANCE', objectLockRetainUntil: new Date('2026-12-31T00:00:00Z') }).differs.join(), /objectLockRetainUntil/);
  assert.deepEqual(compareSettings({ ...wanted, metadata: { host: ' db1 ' } }, seen), { differs: [], unknown: [] }, 'HTTP drops the spaces around a header value');
  assert.match(compareSettings({ ...wanted, serverSideEncryption: 'aws:kms', sseKmsKeyId: 'k-a' }, { ...seen, serverSideEncryption: 'aws:kms', sseKmsKeyId: 'arn:aws:kms:r:1:key/k-b' }).differs.join(), /sseKmsKeyId/);
});

test('guessContentType: from the extension, case-insensitive, octet-stream when unknown', () => {
  const rows: [string, string][] = [
    ['backup.tar', 'application/x-tar'],
    ['dump.SQL', 'application/sql'],
    ['a/b/photo.JPeG', 'image/jpeg'],
    ['data.json', 'application/json'],
    ['archive.tar.zst', 'application/zstd'],
    ['noext', 'application/octet-stream'],
    ['weird.xyz123', 'application/octet-stream'],
  ];
  for (const [file, type] of rows) assert.equal(guessContentType(file), type, file);
});

test('objectSettings: what was asked plus the guessed type; an explicit type wins', () => {
  assert.deepEqual(objectSettings({}, 'x.csv'), { contentType: 'text/csv' });
  assert.deepEqual(objectSettings({ contentType: 'text/plain', tags: {}, metadata: { a: '1' } }, 'x.csv'), { contentType: 'text/plain', metadata: { a: '1' } });
  const until = new Date('2030-01-02T03:04:05Z');
  assert.deepEqual(objectSettings({ objectLockMode: 'GOVERNANCE', objectLockRetainUntil: until, legalHold: false }, 'f'), {
    contentType: 'application/octet-stream',
    objectLockMode: 'GOVERNANCE',
    objectLockRetainUntil: '2030-01-02T03:04:05.000Z',
    legalHold: false,
  });
});

test('settingsProblems: each rule, as a table', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  const rows: [Parameters<typeof settingsProblems>[0], RegExp | null][] = [
    [{}, null],
    [{ storageClass: 'GLACIER' }, null],
    [{ storageClass: 'COLD' as never }, /storage class must be one of/],
    [{ acl: 'everyone' as never }, /acl must be one of/],
    [{ tags: Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, 'v'])) }, /at most 10 tags/],
    [{ tags: { ['k'.repeat(129)]: 'v' } }, /1 to 128 characters/],
    [{ tags: { k: 'v'.repeat(257) } }, /over 256 characters/],
    [{ metadata: { big: 'x'.repeat(2100) } }, /S3 allows 2 KB/],
    [{ metadata: { 'bad key': 'v' } }, /not a valid header name/],
    [{ metadata: { owner: 'héllo' } }, /not printable ASCII/],
    [{ objectLockMode: 'GOVERNANCE' }, /go together/],
    [{ objectLockMode: 'GOVERNANCE', objectLockRetainUntil: new Date('2025-01-01') }, /in the past/],
    [{ objectLockMode: 'GOVERNANCE', objectLockRetainUntil: new Date('nope') }, /not a date/],
    [{ objectLockMode: 'FOREVER' as never, objectLockRetainUntil: new Date('2030-01-01') }, /GOVERNANCE or COMPLIANCE/],
  ];
  for (const [o, want] of rows) {
    const p = settingsProblems(o, now);
    if (want === null) assert.deepEqual(p, [], JSON.stringify(o));
    else assert.match(p.join('; '), want, JSON.stringify(o).slice(0, 80));
  }
});

test('settingsDiff: key order does not matter; every difference is named', () => {
  assert.deepEqual(settingsDiff({ tags: { a: '1', b: '2' }, contentType: 't' }, { contentType: 't', tags: { b: '2', a: '1' } }), []);
  const d = settingsDiff({ tags: { a: '1' }, storageClass: 'STANDARD' }, { tags: { a: '2' }, cacheControl: 'no-cache' });
  assert.equal(d.length, 3);
  assert.match(d.join('\n'), /cacheControl: created with \(not set\), this run asks "no-cache"/);
  assert.match(d.join('\n'), /storageClass: created with "STANDARD", this run asks \(not set\)/);
  assert.match(d.join('\n'), /tags: created with \{"a":"1"\}, this run asks \{"a":"2"\}/);
});

test('taggingHeader URL-encodes keys and values', () => {
  assert.equal(taggingHeader({ 'a b': 'c&d', 'x/y': '1=2' }), 'a%20b=c%26d&x%2Fy=1%3D2');
});

test('on RGW: tags, metadata, guessed type, headers, storage class and ACL are what the object carries', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-settings');
  const dir = await tempDir();
  const f = await randomFile(dir, 12 * MiB, 'dump.json');
  const { client, counts } = countingClient();
  const inputs: Record<string, unknown>[] = [];
  client.middlewareStack.add((next, context) => async (args) => {
    if (context.commandName === 'CreateMultipartUploadCommand') inputs.push(args.input as Record<string, unknown>);
    return next(args);
  }, { step: 'initialize', name: 'captureCreate' });
  const r = await createUpload({
    client,
    file: f.path,
    bucket,
    key: 'db/dump.json',
    stateDir: dir,
    partSize: 5 * MiB,
    tags: { team: 'data ops', 'path/like': 'a=b&c' },
    metadata: { origin: 'nightly', 'backup-id': '42' },
    cacheControl: 'max-age=600',
    contentEncoding: 'identity',
    contentDisposition: 'attachment; filename="dump.json"',
    storageClass: 'STANDARD',
    acl: 'private',
  }).done();
  assert.equal(r.verification.level, 'full-object-checksum');
  assert.equal(counts.CreateMultipartUpload, 1);
  assert.equal(inputs[0]!.StorageClass, 'STANDARD');
  assert.equal(inputs[0]!.ACL, 'private');
  const s3 = plainClient();
  const tags = (await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'db/dump.json' }))).TagSet ?? [];
  assert.deepEqual(Object.fromEntries(tags.map((t) => [t.Key, t.Value])), { team: 'data ops', 'path/like': 'a=b&c' });
  const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'db/dump.json' }));
  assert.equal(h.ContentType, 'application/json');
  assert.deepEqual(h.Metadata, { origin: 'nightly', 'backup-id': '42' });
  assert.equal(h.CacheControl, 'max-age=600');
  assert.equal(h.ContentEncoding, 'identity');
  assert.equal(h.ContentDisposition, 'attachment; filename="dump.json"');
  assert.equal(sha256(await getObjectBytes(bucket, 'db/dump.json')), f.sha256);
});

test('on RGW: a resume that asks for other settings is refused before anything is sent; the same settings resume', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-settings');
  const dir = await tempDir();
  const f = await randomFile(dir, 15 * MiB);
  const opts = { file: f.path, bucket, key: 'k.bin', stateDir: dir, partSize: 5 * MiB, tags: { tier: 'gold' }, metadata: { v: '1' } };
  await uploadThenPause(opts, 1);
  const { client, counts } = countingClient();
  await assert.rejects(createUpload({ client, ...opts, tags: { tier: 'silver' } }).done(), (e: { code?: string; message?: string; resumable?: boolean }) => {
    assert.equal(e.code, 'SETTINGS_DIFFER');
    assert.match(e.message!, /tags: created with \{"tier":"gold"\}, this run asks \{"tier":"silver"\}/);
    return true;
  });
  assert.equal(counts.UploadPart, undefined, 'nothing sent');
  assert.equal(counts.CreateMultipartUpload, undefined, 'no new upload');
  const r = await createUpload({ client, ...opts }).done();
  assert.equal(r.resumed, true);
  assert.equal(r.partsSkipped, 1);
  const tags = (await plainClient().send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'k.bin' }))).TagSet ?? [];
  assert.deepEqual(tags.map((t) => `${t.Key}=${t.Value}`), ['tier=gold']);
});

test('on RGW: Object Lock retention and legal hold are set on the object', async () => {
  loadS3Env();
  const s3 = plainClient();
  const bucket = `pw-lock-${Date.now().toString(36)}`;
  await s3.send(new CreateBucketCommand({ Bucket: bucket, ObjectLockEnabledForBucket: true }));
  const dir = await tempDir();
  const f = await randomFile(dir, 6 * MiB);
  const until = new Date(Date.now() + 86_400_000);
  until.setMilliseconds(0);
  const r = await createUpload({ file: f.path, bucket, key: 'locked.bin', stateDir: dir, partSize: 5 * MiB, objectLockMode: 'GOVERNANCE', objectLockRetainUntil: until, legalHold: true }).done();
  assert.equal(r.partCount, 2);
  const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'locked.bin' }));
  assert.equal(h.ObjectLockMode, 'GOVERNANCE');
  assert.equal(h.ObjectLockRetainUntilDate?.getTime(), until.getTime());
  assert.equal(h.ObjectLockLegalHoldStatus, 'ON');
});

test('on RGW: --no-overwrite refuses an existing object before Create, and sends nothing when the object is already this file', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-noover');
  const dir = await tempDir();
  const f = await randomFile(dir, 6 * MiB);
  const s3 = plainClient();
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'taken', Body: 'someone else' }));
  const { client, counts } = countingClient();
  await assert.rejects(createUpload({ client, file: f.path, bucket, key: 'taken', stateDir: dir, noOverwrite: true }).done(), (e: { code?: string; resumable?: boolean }) => e.code === 'OBJECT_EXISTS' && e.resumable === false);
  assert.equal(counts.CreateMultipartUpload, undefined);
  assert.equal((await getObjectBytes(bucket, 'taken')).toString(), 'someone else');
  await createUpload({ file: f.path, bucket, key: 'mine', stateDir: dir, partSize: 5 * MiB }).done();
  const again = countingClient();
  const r = await createUpload({ client: again.client, file: f.path, bucket, key: 'mine', stateDir: dir, noOverwrite: true }).done();
  assert.equal(r.bytesSent, 0);
  assert.equal(again.counts.UploadPart, undefined);
  // With settings asked for, the object there cannot be checked for them (tags are not in HEAD): refused.
  await assert.rejects(createUpload({ file: f.path, bucket, key: 'mine', stateDir: dir, noOverwrite: true, tags: { a: 'b' } }).done(), (e: { code?: string }) => e.code === 'OBJECT_EXISTS');
});

test('on RGW: discovery does not adopt an upload when the run asks for object settings; it says so and begins anew', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-settings');
  const dir = await tempDir();
  const f = await randomFile(dir, 11 * MiB);
  const opts = { file: f.path, bucket, key: 'k.bin', partSize: 5 * MiB };
  const { uploadId } = await uploadThenPause({ ...opts, stateDir: join(dir, 'first') }, 1);
  const up = createUpload({ ...opts, stateDir: join(dir, 'second'), discover: true, tags: { a: 'b' } });
  const warnings: string[] = [];
  up.on('warning', (w) => warnings.push(`${w.code}: ${w.message}`));
  const r = await up.done();
  assert.notEqual(r.uploadId, uploadId);
  assert.equal(r.partsSkipped, 0);
  assert.ok(warnings.some((w) => w.startsWith('NOT_ADOPTED') && w.includes(uploadId)), warnings.join('\n'));
  assert.throws(() => createUpload({ ...opts, stateDir: dir, uploadId, tags: { a: 'b' } }), (e: { code?: string }) => e.code === 'INVALID_OPTIONS');
});

test('on RGW: --no-overwrite with a writer that gets there mid-upload: Complete refused (If-None-Match), the other object intact, the upload kept', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-noover');
  const dir = await tempDir();
  const f = await randomFile(dir, 11 * MiB);
  const s3 = plainClient();
  const up = createUpload({ file: f.path, bucket, key: 'race', stateDir: dir, partSize: 5 * MiB, concurrency: 1, noOverwrite: true });
  let wrote: Promise<unknown> | undefined;
  up.on('part-done', () => (wrote ??= s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'race', Body: 'the other writer' }))));
  up.on('phase', (p) => {
    if (p.phase === 'complete') assert.ok(wrote, 'the other write started before Complete');
  });
  await assert.rejects(up.done(), (e: { code?: string; resumable?: boolean; message?: string }) => e.code === 'OBJECT_EXISTS' && e.resumable === true && /--upload-id/.test(e.message ?? ''));
  await wrote;
  assert.equal((await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'race' })).then((o) => o.Body!.transformToString())), 'the other writer');
  const open = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  assert.equal(open.Uploads?.filter((u) => u.Key === 'race').length, 1, 'the upload is kept for the user to decide');
});

test('CLI: object settings flags reach the object; bad ones are usage errors (exit 2)', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-settings-cli');
  const dir = await tempDir();
  const f = await randomFile(dir, 1 * MiB, 'notes.txt');
  const env = cliEnv(dir);
  const ok = await runCli(['upload', f.path, `s3://${bucket}/n.txt`, '--tag', 'a=1', '--tag', 'b=x=y', '--metadata', 'm=v', '--cache-control', 'no-cache', '--no-overwrite', '--max-rate', '50MiB/s', '--json'], env);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(jsonLines(ok.stdout).at(-1)!.event, 'complete');
  const s3 = plainClient();
  const tags = (await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'n.txt' }))).TagSet ?? [];
  assert.deepEqual(tags.map((t) => `${t.Key}=${t.Value}`).sort(), ['a=1', 'b=x=y']);
  const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'n.txt' }));
  assert.equal(h.ContentType, 'text/plain');
  assert.deepEqual(h.Metadata, { m: 'v' });
  assert.equal(h.CacheControl, 'no-cache');
  const bad: [string[], RegExp][] = [
    [['--tag', 'novalue'], /--tag takes key=value/],
    [['--storage-class', 'COLD'], /--storage-class must be one of/],
    [['--acl', 'everyone'], /--acl must be one of/],
    [['--max-rate', 'fast'], /--max-rate must be a rate/],
    [['--max-rate', '1KiB/s'], /at least 64KiB\/s/],
    [['--sse-kms-key-id', 'k'], /goes with --sse aws:kms/],
    [['--object-lock-mode', 'governance'], /go together/],
  ];
  for (const [args, msg] of bad) {
    const r = await runCli(['upload', f.path, `s3://${bucket}/x`, ...args], env);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, msg);
  }
});

test('with object settings asked for, nothing unprovable passes: an unrecorded journal, a failed Complete or a vanished upload next to an identical object, SSE changed on resume', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-settings');
  const dir = await tempDir();
  const f = await randomFile(dir, 11 * MiB);
  const s3 = plainClient();
  const base = { file: f.path, bucket, partSize: 5 * MiB };

  // A journal without settings (adopted, or from before they were recorded) cannot resume with settings.
  const old = { ...base, key: 'old', stateDir: join(dir, 'old') };
  await uploadThenPause(old, 1);
  const journalFile = (await readdir(old.stateDir)).find((n) => n.endsWith('.json'))!;
  const jj = JSON.parse(await readFile(join(old.stateDir, journalFile), 'utf8')) as Record<string, unknown>;
  delete jj.settings;
  await writeFile(join(old.stateDir, journalFile), JSON.stringify(jj));
  await assert.rejects(createUpload({ ...old, tags: { a: 'b' } }).done(), (e: { code?: string; message?: string }) => e.code === 'SETTINGS_DIFFER' && /not recorded/.test(e.message ?? ''));
  // Encryption is a setting too: a journal that recorded none refuses a resume asking for SSE-S3.
  const plain = { ...base, key: 'plain', stateDir: join(dir, 'plain') };
  await uploadThenPause(plain, 1);
  await assert.rejects(createUpload({ ...plain, serverSideEncryption: 'AES256' }).done(), (e: { code?: string; message?: string }) => e.code === 'SETTINGS_DIFFER' && /serverSideEncryption/.test(e.message ?? ''));

  // Complete fails while an identical untagged object is at the key: not taken for this upload's.
  await createUpload({ ...base, key: 'twin', stateDir: join(dir, 'twin0') }).done();
  const inner = new SdkS3Port(createS3Client());
  const denied = wrapPort(inner, {
    completeMultipartUpload: async () => {
      throw new S3RequestError({ operation: 'CompleteMultipartUpload', s3Code: 'AccessDenied', httpStatus: 403, message: 'denied' });
    },
  });
  await assert.rejects(new Upload({ ...base, s3: denied, key: 'twin', stateDir: join(dir, 'twin1'), tags: { legal: 'hold' } }).done(), (e: { code?: string }) => e.code === 'COMPLETE_FAILED');

  // The upload vanished (aborted) and an identical untagged object is at the key: not "already complete".
  const gone = { ...base, key: 'twin', stateDir: join(dir, 'twin2'), tags: { retain: '7y' } };
  const { uploadId } = await uploadThenPause(gone, 1);
  await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'twin', UploadId: uploadId }));
  await assert.rejects(createUpload(gone).done(), (e: { code?: string; message?: string }) => e.code === 'UPLOAD_GONE' && /carries other object settings \(tags/.test(e.message ?? ''));
  const tags = (await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: 'twin' }))).TagSet ?? [];
  assert.deepEqual(tags, []);

  // status says what upload would do: no adoption with settings asked for.
  const adoptable = { ...base, key: 'adopt', stateDir: join(dir, 'a1') };
  await uploadThenPause(adoptable, 1);
  const st = await new Upload({ ...adoptable, s3: inner, stateDir: join(dir, 'a2'), discover: true, tags: { a: 'b' } }).status();
  assert.equal(st.discovery?.chosen, undefined);
});

test('--no-overwrite on a resume: a foreign object at the key is refused before any part is sent', async () => {
  loadS3Env();
  const bucket = await makeBucket('pw-noover');
  const dir = await tempDir();
  const f = await randomFile(dir, 16 * MiB);
  const opts = { file: f.path, bucket, key: 'k', stateDir: dir, partSize: 5 * MiB };
  await uploadThenPause(opts, 1);
  await plainClient().send(new PutObjectCommand({ Bucket: bucket, Key: 'k', Body: 'foreign' }));
  const { client, counts } = countingClient();
  await assert.rejects(createUpload({ client, ...opts, noOverwrite: true }).done(), (e: { code?: string }) => e.code === 'OBJECT_EXISTS');
  assert.equal(counts.UploadPart, undefined);
  assert.equal((await getObjectBytes(bucket, 'k')).toString(), 'foreign');
});
