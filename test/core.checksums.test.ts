import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as zlib from 'node:zlib';
import { before, describe, test } from 'node:test';
import {
  activeImplementations,
  compositeChecksum,
  createHasher,
  crcCombine,
  fullObjectChecksum,
  loadHashers,
  etagsAreMd5,
  multipartEtag,
  type ChecksumAlgorithm,
} from '../src/core/checksums.ts';
import { digestBuffer } from '../src/core/hashing.ts';
import { referenceDigest } from './helpers/reference.ts';

const reference = referenceDigest;

const ALGS: ChecksumAlgorithm[] = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'];

function fast(alg: ChecksumAlgorithm | 'MD5', data: Uint8Array, chunk = data.length || 1): Buffer {
  const h = createHasher(alg);
  for (let off = 0; off < data.length; off += chunk) h.update(data.subarray(off, off + chunk));
  return h.digest();
}

describe('checksums', () => {
  before(() => loadHashers());

  test('check values for "123456789"', () => {
    const nine = Buffer.from('123456789');
    assert.equal(fast('CRC32', nine).toString('hex'), 'cbf43926');
    assert.equal(fast('CRC32C', nine).toString('hex'), 'e3069283');
    assert.equal(fast('CRC64NVME', nine).toString('hex'), 'ae8b14860a799888');
    assert.equal(fast('SHA256', nine).toString('hex'), '15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225');
    assert.equal(fast('MD5', nine).toString('hex'), '25f9e794323b453885f5181f1b624d0b');
  });

  test('fast path equals the independent reference on random data, sizes and chunkings', async () => {
    for (const size of [0, 1, 7, 1000, 65_539, 1_048_577, 3_000_001]) {
      const data = randomBytes(size + 5).subarray(5); // an unaligned view
      for (const alg of [...ALGS, 'MD5'] as const) {
        const want = await reference(alg, data);
        assert.deepEqual(fast(alg, data), want, `${alg} size ${size} one-shot`);
        assert.deepEqual(fast(alg, data, 65_521), want, `${alg} size ${size} chunked`);
      }
    }
  });

  test('reports which implementation is active', () => {
    for (const alg of [...ALGS, 'MD5']) assert.ok(activeImplementations[alg], `${alg} has an implementation`);
  });

  test('crcCombine of two parts equals the CRC of their concatenation', async () => {
    for (const alg of ['CRC32', 'CRC32C', 'CRC64NVME'] as const) {
      for (const [la, lb] of [[0, 5], [5, 0], [1, 1], [1000, 12_345], [65_536, 3], [300_000, 1_048_576]] as const) {
        const a = randomBytes(la);
        const b = randomBytes(lb);
        const ca = BigInt('0x' + (await reference(alg, a)).toString('hex'));
        const cb = BigInt('0x' + (await reference(alg, b)).toString('hex'));
        const whole = BigInt('0x' + (await reference(alg, Buffer.concat([a, b]))).toString('hex'));
        assert.equal(crcCombine(alg, ca, cb, lb), whole, `${alg} ${la}+${lb}`);
      }
    }
  });

  test('fullObjectChecksum of many parts equals the CRC of the whole file', async () => {
    const sizes = [5000, 5000, 5000, 17, 1];
    const parts = sizes.map((n) => randomBytes(n));
    for (const alg of ['CRC32', 'CRC32C', 'CRC64NVME'] as const) {
      const digests = parts.map((p) => ({ size: p.length, checksum: fast(alg, p) }));
      assert.equal(fullObjectChecksum(alg, digests), (await reference(alg, Buffer.concat(parts))).toString('base64'), alg);
    }
  });

  test('composite checksum is H(concat of binary part digests)-N', async () => {
    const parts = [randomBytes(100), randomBytes(200), randomBytes(3)];
    for (const alg of ALGS) {
      const digests = parts.map((p) => ({ size: p.length, checksum: fast(alg, p) }));
      const want = (await reference(alg, Buffer.concat(digests.map((d) => d.checksum)))).toString('base64') + '-3';
      assert.equal(compositeChecksum(alg, digests), want, alg);
    }
  });

  test('multipart ETag is md5(concat of binary part md5s)-N', () => {
    const parts = [randomBytes(10), randomBytes(20)];
    const md5s = parts.map((p) => createHash('md5').update(p).digest());
    const want = createHash('md5').update(Buffer.concat(md5s)).digest('hex') + '-2';
    assert.equal(multipartEtag(md5s.map((m) => m.toString('hex'))), want);
  });

  test('digestBuffer gives MD5 plus the chosen checksum, and no checksum for none', async () => {
    const data = randomBytes(4096);
    const d = digestBuffer(data, 'CRC32C');
    assert.equal(d.md5Hex, createHash('md5').update(data).digest('hex'));
    assert.deepEqual(d.checksum, await reference('CRC32C', data));
    assert.equal(digestBuffer(data, undefined).checksum, undefined);
  });
});

test('without the native addon, the fallbacks load and give the same values', () => {
  const script = `
    import { activeImplementations, createHasher, loadHashers } from ${JSON.stringify(new URL('../src/core/checksums.ts', import.meta.url).href)};
    await loadHashers();
    const nine = Buffer.from('123456789');
    const out = {};
    for (const a of ['CRC32', 'CRC32C', 'CRC64NVME', 'MD5']) { const h = createHasher(a); h.update(nine); out[a] = [activeImplementations[a], h.digest().toString('hex')]; }
    process.stdout.write(JSON.stringify(out));
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: { ...process.env, PARTWISE_NO_NATIVE: '1' }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as Record<string, [string, string]>;
  assert.deepEqual(out.CRC32C, ['hash-wasm', 'e3069283']);
  assert.deepEqual(out.CRC32, [typeof (zlib as { crc32?: unknown }).crc32 === 'function' ? 'node:zlib' : 'hash-wasm', 'cbf43926']);
  assert.deepEqual(out.CRC64NVME, ['hash-wasm', 'ae8b14860a799888']);
  assert.equal(out.MD5![1], '25f9e794323b453885f5181f1b624d0b');
});

test('etagsAreMd5: only positive evidence says part ETags are not MD5s', () => {
  const md5 = '"9e107d9d372bb6826bd81d3542a419d6"';
  const rows: { name: string; s: Parameters<typeof etagsAreMd5>[0]; want: boolean }[] = [
    { name: 'plain upload, MD5-shaped ETag', s: { etag: md5 }, want: true },
    { name: 'SSE-S3 (AES256)', s: { serverSideEncryption: 'AES256', etag: md5 }, want: true },
    { name: 'nothing known yet', s: {}, want: true },
    { name: 'SSE-KMS', s: { serverSideEncryption: 'aws:kms', etag: md5 }, want: false },
    { name: 'DSSE-KMS', s: { serverSideEncryption: 'aws:kms:dsse' }, want: false },
    { name: 'SSE-C', s: { sseCustomerAlgorithm: 'AES256', etag: md5 }, want: false },
    { name: 'an ETag that is not 32 hex digits', s: { etag: '"opaque-etag-1"' }, want: false },
    { name: 'a multipart-style ETag', s: { etag: '"9e107d9d372bb6826bd81d3542a419d6-3"' }, want: false },
  ];
  for (const r of rows) assert.equal(etagsAreMd5(r.s), r.want, r.name);
});
