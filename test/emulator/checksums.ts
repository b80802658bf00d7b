/**
 * The emulator's checksums come from the reference implementations, never from partwise's, and its
 * whole-object values are computed over the stored bytes, never by combining part CRCs.
 */
import { createHash } from 'node:crypto';
import { referenceDigest, type Alg } from '../helpers/reference.ts';

export { ALGORITHMS, isAlg, type Alg } from '../helpers/reference.ts';

export const digest = (alg: Alg, data: Uint8Array): Promise<Buffer> => referenceDigest(alg, data);

export async function digestB64(alg: Alg, data: Uint8Array): Promise<string> {
  return (await referenceDigest(alg, data)).toString('base64');
}

// Content-MD5 and ETags are MD5 by protocol; node:crypto is fine for the emulator's own bookkeeping.
export const md5Hex = (data: Uint8Array) => createHash('md5').update(data).digest('hex');
export const md5B64 = (data: Uint8Array) => createHash('md5').update(data).digest('base64');
