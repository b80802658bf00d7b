import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LocalDigest } from '../src/core/hashing.ts';
import { planParts } from '../src/core/planner.ts';
import { reconcile, type RemotePart } from '../src/core/reconcile.ts';

const plan = planParts(25, { partSize: 10, minPartSize: 1 }); // parts: 10, 10, 5
const md5 = (n: number) => String(n).repeat(32).slice(0, 32);
const ck = (n: number) => Buffer.from([n, n, n, n]);
const local = new Map<number, LocalDigest>([1, 2, 3].map((n) => [n, { md5Hex: md5(n), checksum: ck(n) }]));
const good = (n: number, size = n === 3 ? 5 : 10): RemotePart => ({ partNumber: n, size, etag: `"${md5(n)}"`, checksum: ck(n).toString('base64') });

test('reconcile: one row per situation', () => {
  const rows: {
    name: string;
    remote: RemotePart[];
    algorithm: 'CRC32C' | null;
    etagIsMd5: boolean;
    journal?: Map<number, { etag: string; md5: string }>;
    want: string[];
    basis1?: string[];
  }[] = [
    { name: 'all verified by checksum and ETag', remote: [good(1), good(2), good(3)], algorithm: 'CRC32C', etagIsMd5: true, want: ['verified', 'verified', 'verified'], basis1: ['checksum', 'etag'] },
    { name: 'nothing on the server', remote: [], algorithm: 'CRC32C', etagIsMd5: true, want: ['missing', 'missing', 'missing'] },
    { name: 'wrong size', remote: [good(1), good(2, 9), good(3)], algorithm: 'CRC32C', etagIsMd5: true, want: ['verified', 'size-mismatch', 'verified'] },
    { name: 'ETag differs (no checksum upload)', remote: [good(1), { ...good(2), etag: md5(7), checksum: undefined as never }, good(3)].map((r) => ({ ...r, checksum: undefined })) as RemotePart[], algorithm: null, etagIsMd5: true, want: ['verified', 'etag-mismatch', 'verified'], basis1: ['etag'] },
    { name: 'checksum differs, ETag ignored (not MD5)', remote: [good(1), { ...good(2), etag: 'opaque', checksum: ck(9).toString('base64') }, good(3)], algorithm: 'CRC32C', etagIsMd5: false, want: ['verified', 'checksum-mismatch', 'verified'], basis1: ['checksum'] },
    { name: 'checksum matches but MD5 ETag does not: the failing check wins', remote: [good(1), { ...good(2), etag: md5(8) }, good(3)], algorithm: 'CRC32C', etagIsMd5: true, want: ['verified', 'etag-mismatch', 'verified'] },
    { name: 'opaque ETag, no checksum: unverifiable', remote: [1, 2, 3].map((n) => ({ partNumber: n, size: n === 3 ? 5 : 10, etag: `opaque${n}` })), algorithm: null, etagIsMd5: false, want: ['unverifiable', 'unverifiable', 'unverifiable'] },
    {
      name: 'opaque ETag, no checksum, but the journal saw us upload these bytes with that ETag',
      remote: [1, 2, 3].map((n) => ({ partNumber: n, size: n === 3 ? 5 : 10, etag: `opaque${n}` })),
      algorithm: null,
      etagIsMd5: false,
      journal: new Map([
        [1, { etag: 'opaque1', md5: md5(1) }],
        [2, { etag: 'opaque-other', md5: md5(2) }], // the server's part was replaced since
        [3, { etag: 'opaque3', md5: md5(99) }], // the local bytes changed since
      ]),
      want: ['verified', 'unverifiable', 'unverifiable'],
      basis1: ['journal'],
    },
    { name: 'server lists no checksum on a checksum upload: ETag still verifies', remote: [good(1), good(2), good(3)].map((r) => ({ ...r, checksum: undefined })) as RemotePart[], algorithm: 'CRC32C', etagIsMd5: true, want: ['verified', 'verified', 'verified'], basis1: ['etag'] },
  ];
  for (const r of rows) {
    const rep = reconcile({ plan, remote: r.remote, local, algorithm: r.algorithm, etagIsMd5: r.etagIsMd5, ...(r.journal ? { journal: r.journal } : {}) });
    assert.deepEqual(rep.parts.map((p) => p.status), r.want, r.name);
    if (r.basis1) assert.deepEqual(rep.parts[0]!.basis, r.basis1, `${r.name}: basis`);
    const verified = r.want.flatMap((s, i) => (s === 'verified' ? [i + 1] : []));
    assert.deepEqual(rep.verified, verified, `${r.name}: verified list`);
    assert.deepEqual(rep.toUpload, [1, 2, 3].filter((n) => !verified.includes(n)), `${r.name}: toUpload`);
    assert.equal(rep.bytesVerified + rep.bytesToUpload, 25, `${r.name}: bytes add up`);
  }
});

test('reconcile: extra parts are reported, not trusted', () => {
  const rep = reconcile({ plan, remote: [good(1), good(2), good(3), { partNumber: 4, size: 1, etag: 'x' }, { partNumber: 0, size: 1, etag: 'y' }], local, algorithm: 'CRC32C', etagIsMd5: true });
  assert.deepEqual(rep.extraParts, [0, 4]);
  assert.deepEqual(rep.verified, [1, 2, 3]);
  assert.equal(rep.counts.verified, 3);
});

test('reconcile: a listed part with no local digest is unverifiable', () => {
  const rep = reconcile({ plan, remote: [good(1)], local: new Map(), algorithm: 'CRC32C', etagIsMd5: true });
  assert.deepEqual(rep.parts.map((p) => p.status), ['unverifiable', 'missing', 'missing']);
});
