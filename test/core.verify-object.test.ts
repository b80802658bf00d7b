import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { verifyObject } from '../src/upload/inspect.ts';
import { SdkS3Port, createS3Client } from '../src/s3/adapter.ts';
import { emulatorClient } from './emulator/client.ts';
import { S3Emulator } from './emulator/server.ts';
import { tempDir } from './helpers/s3.ts';
import { createHasher, loadHashers } from '../src/core/checksums.ts';
import type { HeadOutput } from '../src/s3/port.ts';
import { expectedValues, judgeObject, judgeParts, provesBytes, type ExpectedObject } from '../src/core/verify-object.ts';

before(() => loadHashers());

function setup(alg: 'CRC32C' | 'SHA256' | null, withMd5 = true) {
  const parts = [randomBytes(100), randomBytes(100), randomBytes(7)];
  const e: ExpectedObject = {
    size: 207,
    algorithm: alg,
    partDigests: parts.map((p) => {
      if (!alg) return { size: p.length, checksum: Buffer.alloc(0) };
      const h = createHasher(alg);
      h.update(p);
      return { size: p.length, checksum: h.digest() };
    }),
  };
  if (withMd5) {
    e.partMd5Hex = parts.map((p) => {
      const h = createHasher('MD5');
      h.update(p);
      return h.digest().toString('hex');
    });
  }
  return { e, v: expectedValues(e) };
}

test('judgeObject: one row per situation', () => {
  const crc = setup('CRC32C');
  const sha = setup('SHA256');
  const none = setup(null);
  const kms = setup('CRC32C', false);
  const head = (h: Partial<HeadOutput>): HeadOutput => ({ size: 207, etag: '', checksums: {}, ...h });
  const rows: { name: string; e: ExpectedObject; head: HeadOutput; level?: string; bad?: RegExp; plain?: string; values?: ReturnType<typeof expectedValues> }[] = [
    { name: 'CRC full object + ETag', e: crc.e, head: head({ etag: `"${crc.v.etag}"`, checksums: { CRC32C: crc.v.fullObject! }, checksumType: 'FULL_OBJECT' }), level: 'full-object-checksum' },
    { name: 'CRC full object labelled -1 (RGW, single part)', e: crc.e, head: head({ etag: crc.v.etag!, checksums: { CRC32C: `${crc.v.fullObject}-3` } }), level: 'full-object-checksum' },
    { name: 'CRC composite (AWS default for CRC32C)', e: crc.e, head: head({ etag: crc.v.etag!, checksums: { CRC32C: crc.v.composite! }, checksumType: 'COMPOSITE' }), level: 'composite-checksum' },
    { name: 'SHA composite with -N', e: sha.e, head: head({ etag: sha.v.etag!, checksums: { SHA256: sha.v.composite! } }), level: 'composite-checksum' },
    { name: 'SHA composite without -N (GetObjectAttributes style)', e: sha.e, head: head({ etag: sha.v.etag!, checksums: { SHA256: sha.v.composite!.replace(/-3$/, '') }, checksumType: 'COMPOSITE' }), level: 'composite-checksum' },
    { name: 'no checksum: multipart ETag', e: none.e, head: head({ etag: `"${none.v.etag}"` }), level: 'multipart-etag' },
    { name: 'opaque ETag (SSE-KMS), checksum', e: kms.e, head: head({ etag: '"opaque"', checksums: { CRC32C: kms.v.fullObject! } }), level: 'full-object-checksum' },
    { name: 'opaque ETag, no checksum from the server: size only', e: kms.e, head: head({ etag: '"opaque"' }), level: 'size' },
    { name: 'wrong size', e: none.e, head: head({ size: 206, etag: none.v.etag! }), bad: /size/ },
    { name: 'wrong ETag', e: none.e, head: head({ etag: 'd41d8cd98f00b204e9800998ecf8427e-3' }), bad: /ETag/ },
    { name: 'wrong CRC', e: crc.e, head: head({ etag: crc.v.etag!, checksums: { CRC32C: 'AAAAAA==' } }), bad: /CRC32C/ },
    { name: 'wrong composite', e: sha.e, head: head({ etag: sha.v.etag!, checksums: { SHA256: 'AAAA-3' } }), bad: /SHA256/ },
    // A plain ETag where a multipart one was expected (s3rver: the whole MD5; GCS: opaque): neither a match nor a mismatch.
    { name: 'plain ETag where a multipart one was expected', e: none.e, head: head({ etag: '"5a0926d454e7c85cbe4cffc76f39682a"' }), level: 'size', plain: '5a0926d454e7c85cbe4cffc76f39682a' },
    { name: 'plain ETag, and a CRC that proves the object', e: crc.e, head: head({ etag: 'aa', checksums: { CRC32C: crc.v.fullObject! } }), level: 'full-object-checksum', plain: 'aa' },
    { name: 'the whole file\'s MD5 expected and shown', e: none.e, head: head({ etag: '"0123456789abcdef0123456789abcdef"' }), values: { etag: '0123456789abcdef0123456789abcdef' }, level: 'object-md5' },
    { name: 'the whole file\'s MD5 expected, another plain ETag shown (opaque, or other bytes)', e: none.e, head: head({ etag: 'ffffffffffffffffffffffffffffffff' }), values: { etag: '0123456789abcdef0123456789abcdef' }, level: 'size', plain: 'ffffffffffffffffffffffffffffffff' },
  ];
  for (const r of rows) {
    const j = r.values ? judgeObject(r.head, r.e, r.values) : judgeObject(r.head, r.e);
    assert.equal(j.plainEtag, r.plain, `${r.name}: plainEtag`);
    if (r.bad) {
      assert.equal(j.mismatches.length, 1, `${r.name}: one mismatch`);
      assert.match(j.mismatches[0]!, r.bad, r.name);
    } else {
      assert.deepEqual(j.mismatches, [], r.name);
      assert.equal(j.level, r.level, r.name);
    }
  }
});

test('judgeParts: per-part checksums from GetObjectAttributes, one row per situation', () => {
  const crc = setup('CRC32C');
  const listed = crc.e.partDigests.map((d, i) => ({ partNumber: i + 1, size: d.size, checksum: d.checksum.toString('base64') }));
  const rows: { name: string; listed: typeof listed; ok: boolean; bad?: RegExp }[] = [
    { name: 'all parts match', listed, ok: true },
    { name: 'no parts listed: no evidence, no mismatch', listed: [], ok: false },
    { name: 'no checksums listed: no evidence, no mismatch', listed: listed.map(({ partNumber, size }) => ({ partNumber, size })) as typeof listed, ok: false },
    { name: 'fewer parts than the upload has: a mismatch, not silence', listed: listed.slice(0, 2), ok: false, bad: /lists 2 parts, the upload has 3/ },
    { name: 'more parts than the upload has', listed: [...listed, { partNumber: 4, size: 1, checksum: 'AAAAAA==' }], ok: false, bad: /lists 4 parts/ },
    { name: 'one part differs', listed: listed.map((p, i) => (i === 1 ? { ...p, checksum: 'AAAAAA==' } : p)), ok: false, bad: /part 2/ },
    { name: 'a checksum for some parts but not all', listed: listed.map((p, i) => (i === 1 ? { partNumber: p.partNumber, size: p.size } : p)) as typeof listed, ok: false, bad: /some parts but not all/ },
  ];
  for (const r of rows) {
    const j = judgeParts(r.listed, crc.e);
    assert.equal(j.ok, r.ok, r.name);
    if (r.bad) assert.match(j.mismatches.join('; '), r.bad, r.name);
    else assert.deepEqual(j.mismatches, [], r.name);
  }
});

test('provesBytes: size alone never proves an object', () => {
  assert.equal(provesBytes({ level: 'size', checks: ['size 207'], mismatches: [] }), false);
  assert.equal(provesBytes({ level: 'multipart-etag', checks: ['ETag x'], mismatches: [] }), true);
  assert.equal(provesBytes({ level: 'full-object-checksum', checks: ['c'], mismatches: ['size: server 1, local 2'] }), false);
});

test('verify learns every part\'s size (not part 1\'s times N): an object with unequal parts is proven by its ETag and checksum; where sizes cannot be learned, never "does not match" on a guess', async () => {
  const emu = await S3Emulator.start({ minPartSize: 1024 });
  try {
    const sdk = emulatorClient(emu.endpoint);
    await sdk.send(new CreateBucketCommand({ Bucket: 'uneq' }));
    const dir = await tempDir();
    const sizes = [6000, 4000, 5000];
    const bytes = randomBytes(sizes.reduce((a, b) => a + b, 0));
    const file = join(dir, 'f.bin');
    await writeFile(file, bytes);
    const b64 = (alg: 'CRC32C', data: Buffer) => {
      const h = createHasher(alg);
      h.update(data);
      return h.digest().toString('base64');
    };
    // Another tool's upload, with parts of its own sizes.
    const put = async (key: string, type: 'FULL_OBJECT' | 'COMPOSITE' | null) => {
      const { UploadId } = await sdk.send(new CreateMultipartUploadCommand({ Bucket: 'uneq', Key: key, ...(type ? { ChecksumAlgorithm: 'CRC32C' as const, ChecksumType: type } : {}) }));
      const parts = [];
      let off = 0;
      for (const [i, size] of sizes.entries()) {
        const data = bytes.subarray(off, off + size);
        off += size;
        const crc = b64('CRC32C', data);
        const r = await sdk.send(new UploadPartCommand({ Bucket: 'uneq', Key: key, UploadId, PartNumber: i + 1, Body: data, ...(type ? { ChecksumCRC32C: crc } : {}) }));
        parts.push({ PartNumber: i + 1, ETag: r.ETag!, ...(type ? { ChecksumCRC32C: crc } : {}) });
      }
      await sdk.send(new CompleteMultipartUploadCommand({ Bucket: 'uneq', Key: key, UploadId, MultipartUpload: { Parts: parts } }));
    };
    await put('full', 'FULL_OBJECT');
    await put('composite', 'COMPOSITE');
    await put('plain', null);
    const s3 = new SdkS3Port(createS3Client({ endpoint: emu.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } }));
    // (No checksum asked: the server applied its default, CRC64NVME of the whole object, as AWS does.)
    for (const [key, level] of [['full', 'full-object-checksum'], ['composite', 'composite-checksum'], ['plain', 'full-object-checksum']] as const) {
      const r = await verifyObject(s3, { file, bucket: 'uneq', key });
      assert.deepEqual(r.mismatches, [], key);
      assert.equal(r.proven, true, `${key}: ${r.why}`);
      assert.equal(r.level, level, key);
      assert.equal(r.partCount, 3);
      assert.ok(r.checks.some((c) => c.startsWith('ETag ')), `${key}: the multipart ETag of the learned layout matches: ${r.checks.join('; ')}`);
    }
    // Part sizes that cannot be learned (HEAD of a part refused, no part list): the full-object CRC
    // still proves the object; nothing else is called a mismatch.
    await emu.withFault({ op: 'HeadObject', partNumber: 2, times: 1000, action: { type: 'error', status: 403, code: 'AccessDenied' } }, async () => {
      const full = await verifyObject(s3, { file, bucket: 'uneq', key: 'full' });
      assert.equal(full.proven, true);
      assert.deepEqual(full.mismatches, []);
      // No part list for it either (no checksum was asked): its ETag cannot be computed, and is not called a mismatch.
      const plain = await verifyObject(s3, { file, bucket: 'uneq', key: 'plain' });
      assert.deepEqual(plain.mismatches, [], 'an ETag that depends on an unknown layout is not a mismatch');
      assert.equal(plain.proven, true, 'the full-object CRC needs no layout');
      assert.ok(!plain.checks.some((c) => c.startsWith('ETag ')));
    });
  } finally {
    await emu.close();
  }
});
