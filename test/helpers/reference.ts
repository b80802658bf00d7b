/**
 * Reference digests that share no code with partwise's fast path (node:crypto, @node-rs/crc32,
 * hash-wasm CRC64): @aws-crypto for CRC32/CRC32C/SHA-256, the SDK's JS CRC64NVME, hash-wasm for
 * SHA-1 and MD5. The tests, the emulator and the benchmarks all compare against these.
 */
import { AwsCrc32 } from '@aws-crypto/crc32';
import { AwsCrc32c } from '@aws-crypto/crc32c';
import { Sha256 } from '@aws-crypto/sha256-js';
import { Crc64NvmeJs } from '@aws-sdk/checksums/crc';
import { md5, sha1 } from 'hash-wasm';

export const ALGORITHMS = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const;
export type Alg = (typeof ALGORITHMS)[number];

export function isAlg(v: string): v is Alg {
  return (ALGORITHMS as readonly string[]).includes(v);
}

export async function referenceDigest(alg: Alg | 'MD5', data: Uint8Array): Promise<Buffer> {
  if (alg === 'SHA1') return Buffer.from(await sha1(data), 'hex');
  if (alg === 'MD5') return Buffer.from(await md5(data), 'hex');
  const h = alg === 'CRC32' ? new AwsCrc32() : alg === 'CRC32C' ? new AwsCrc32c() : alg === 'SHA256' ? new Sha256() : new Crc64NvmeJs();
  h.update(data);
  return Buffer.from(await h.digest());
}
