/**
 * The emulator's checksums, deliberately independent of partwise's: @aws-crypto for the CRC32s,
 * the SDK's own JS CRC64NVME, node:crypto for SHA and MD5. Whole-object values are computed over
 * the stored bytes, never by combining part CRCs.
 */
import { createHash } from 'node:crypto';
import { AwsCrc32 } from '@aws-crypto/crc32';
import { AwsCrc32c } from '@aws-crypto/crc32c';
import { Crc64NvmeJs } from '@aws-sdk/checksums/crc';

export const ALGORITHMS = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const;
export type Alg = (typeof ALGORITHMS)[number];

export function isAlg(v: string): v is Alg {
  return (ALGORITHMS as readonly string[]).includes(v);
}

export async function digest(alg: Alg, data: Uint8Array): Promise<Buffer> {
  switch (alg) {
    case 'CRC32': {
      const h = new AwsCrc32();
      h.update(data);
      return Buffer.from(await h.digest());
    }
    case 'CRC32C': {
      const h = new AwsCrc32c();
      h.update(data);
      return Buffer.from(await h.digest());
    }
    case 'CRC64NVME': {
      const h = new Crc64NvmeJs();
      h.update(data);
      return Buffer.from(await h.digest());
    }
    case 'SHA1':
      return createHash('sha1').update(data).digest();
    case 'SHA256':
      return createHash('sha256').update(data).digest();
  }
}

export async function digestB64(alg: Alg, data: Uint8Array): Promise<string> {
  return (await digest(alg, data)).toString('base64');
}

export const md5Hex = (data: Uint8Array) => createHash('md5').update(data).digest('hex');
export const md5B64 = (data: Uint8Array) => createHash('md5').update(data).digest('base64');
