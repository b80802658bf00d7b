import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import * as zlib from 'node:zlib';

/** S3 additional checksum algorithms partwise can use for a multipart upload. */
export const CHECKSUM_ALGORITHMS = ['CRC64NVME', 'CRC32C', 'CRC32', 'SHA256', 'SHA1'] as const;
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];
export type ChecksumType = 'FULL_OBJECT' | 'COMPOSITE';

/**
 * CRC32C by default: the most verification per CPU-second. Every part is already checked by
 * Content-MD5 (server side) and its MD5 ETag, so the extra checksum's job is an independent check
 * that also survives SSE-KMS / SSE-C; CRC32C does that at ~3 GB/s natively here, against ~1.3 GB/s
 * for CRC64NVME (WASM), and the upload benchmark shows the difference (benchmarks/RESULTS.md).
 * Its full-object value is derived from part CRCs, and every checksum-capable S3 server has it.
 */
export const DEFAULT_CHECKSUM_ALGORITHM: ChecksumAlgorithm = 'CRC32C';

export function isChecksumAlgorithm(v: unknown): v is ChecksumAlgorithm {
  return typeof v === 'string' && (CHECKSUM_ALGORITHMS as readonly string[]).includes(v);
}

/**
 * CRCs are uploaded as FULL_OBJECT (on AWS, COMPOSITE is only the default for CRC32/CRC32C; RGW
 * makes every CRC FULL_OBJECT regardless), so the same expected value holds on both. SHA
 * algorithms can only be COMPOSITE.
 */
export function checksumTypeFor(alg: ChecksumAlgorithm): ChecksumType {
  return alg === 'SHA1' || alg === 'SHA256' ? 'COMPOSITE' : 'FULL_OBJECT';
}

export function isCrc(alg: ChecksumAlgorithm): alg is 'CRC32' | 'CRC32C' | 'CRC64NVME' {
  return alg === 'CRC32' || alg === 'CRC32C' || alg === 'CRC64NVME';
}

/** Incremental hash over a part's bytes; digest() is the raw big-endian digest S3 base64-encodes. */
export interface Hasher {
  update(data: Uint8Array): void;
  digest(): Buffer;
  /** gives the hasher up without a digest (a failed read): a pooled WASM instance goes back */
  dispose?(): void;
}

type HasherFactory = () => Hasher;

/** Which implementation is active for each algorithm (reported by benchmarks and diagnostics). */
export const activeImplementations: Record<string, string> = {};

const require = createRequire(import.meta.url);

interface NodeRsCrc32 {
  crc32(input: Uint8Array, initial?: number): number;
  crc32c(input: Uint8Array, initial?: number): number;
}

function loadNodeRs(): NodeRsCrc32 | undefined {
  if (process.env.PARTWISE_NO_NATIVE === '1') return undefined;
  try {
    // A prebuilt N-API addon; optional, because a platform without a prebuild must still work.
    return require('@node-rs/crc32') as NodeRsCrc32;
  } catch {
    return undefined;
  }
}

function numberCrcHasher(fn: (data: Uint8Array, prev: number) => number): HasherFactory {
  return () => {
    let crc = 0;
    return {
      update(data) {
        crc = fn(data, crc);
      },
      digest() {
        const out = Buffer.alloc(4);
        out.writeUInt32BE(crc >>> 0);
        return out;
      },
    };
  };
}

function nodeCryptoHasher(name: string): HasherFactory | undefined {
  try {
    createHash(name).update('probe').digest(); // throws under an OpenSSL FIPS provider for md5
    return () => {
      const h = createHash(name);
      return { update: (d) => void h.update(d), digest: () => h.digest() };
    };
  } catch {
    return undefined;
  }
}

interface WasmHasher {
  init(): unknown;
  update(d: Uint8Array): unknown;
  digest(f: 'binary'): Uint8Array;
}

const factories = new Map<string, HasherFactory>();
/** WASM hashers' on-demand makers; the others' factories never run out */
const acquirers = new Map<string, () => Promise<Hasher>>();
const loading = new Map<string, Promise<void>>();
type HashName = ChecksumAlgorithm | 'MD5';
const ALL_HASHES: readonly HashName[] = ['MD5', ...CHECKSUM_ALGORITHMS];

// hash-wasm is imported only when a WASM implementation is needed (CRC64NVME, or a fallback): its
// modules and the instances made up front cost a verification worker ~50 ms at start.
let hashWasm: Promise<typeof import('hash-wasm')> | undefined;
const wasm = () => (hashWasm ??= import('hash-wasm'));

function set(name: string, impl: string, f: HasherFactory | { sync: HasherFactory; acquire: () => Promise<Hasher> }): void {
  if (typeof f === 'function') factories.set(name, f);
  else {
    factories.set(name, f.sync);
    acquirers.set(name, f.acquire);
  }
  activeImplementations[name] = impl;
}

async function loadOne(name: HashName): Promise<void> {
  const rs = name === 'CRC32' || name === 'CRC32C' ? loadNodeRs() : undefined;
  switch (name) {
    case 'MD5': {
      const md5 = nodeCryptoHasher('md5');
      if (md5) set('MD5', 'node:crypto', md5);
      else set('MD5', 'hash-wasm', await wasmFactory(async () => (await wasm()).createMD5() as Promise<WasmHasher>));
      return;
    }
    case 'SHA256':
    case 'SHA1': {
      const f = nodeCryptoHasher(name.toLowerCase());
      if (!f) throw new Error(`node:crypto has no ${name.toLowerCase()}`);
      set(name, 'node:crypto', f);
      return;
    }
    case 'CRC32C':
      if (rs) set('CRC32C', '@node-rs/crc32', numberCrcHasher((d, p) => rs.crc32c(d, p)));
      else set('CRC32C', 'hash-wasm', await wasmFactory(async () => (await wasm()).createCRC32(0x82f63b78) as Promise<WasmHasher>));
      return;
    case 'CRC32': {
      const zcrc = (zlib as unknown as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;
      if (rs) set('CRC32', '@node-rs/crc32', numberCrcHasher((d, p) => rs.crc32(d, p)));
      else if (typeof zcrc === 'function') set('CRC32', 'node:zlib', numberCrcHasher((d, p) => zcrc(d, p)));
      else set('CRC32', 'hash-wasm', await wasmFactory(async () => (await wasm()).createCRC32() as Promise<WasmHasher>));
      return;
    }
    case 'CRC64NVME':
      // The reflected NVMe polynomial; hash-wasm's default CRC-64 is a different one (ECMA/XZ).
      set('CRC64NVME', 'hash-wasm', await wasmFactory(async () => (await wasm()).createCRC64('9a6c9329ac4bc9b5') as Promise<WasmHasher>));
      return;
  }
}

/**
 * Picks the fastest working implementation of each hash (measured in benchmarks/RESULTS.md): node:crypto for MD5/SHA, @node-rs/crc32 for CRC32/CRC32C, hash-wasm for
 * CRC64NVME; each with a fallback that needs no native code. Loads the named hashes (default: all);
 * each is loaded once.
 */
export async function loadHashers(names: Iterable<HashName | undefined> = ALL_HASHES): Promise<void> {
  const waits: Promise<void>[] = [];
  for (const name of names) {
    if (!name) continue;
    let p = loading.get(name);
    if (!p) {
      p = loadOne(name);
      loading.set(name, p);
    }
    waits.push(p);
  }
  await Promise.all(waits);
}

/**
 * hash-wasm instances are created asynchronously, so a small free list is made up front and the
 * synchronous factory serves hashes done in one synchronous run (a whole buffer: create, update,
 * digest). A hasher held across reads (a part streamed from the file, several at once at high
 * concurrency) is taken with `acquire`, which makes an instance when none is free.
 */
async function wasmFactory(create: () => Promise<WasmHasher>): Promise<{ sync: HasherFactory; acquire: () => Promise<Hasher> }> {
  const free: WasmHasher[] = [];
  for (let i = 0; i < 4; i++) free.push(await create());
  const refill = () => {
    if (free.length < 2) void Promise.all([create(), create()]).then((xs) => free.push(...xs));
  };
  const use = (inst: WasmHasher): Hasher => {
    inst.init();
    let back = false;
    const giveBack = () => {
      if (!back) free.push(inst);
      back = true;
    };
    return {
      update: (d) => void inst.update(d),
      digest: () => {
        const out = Buffer.from(inst.digest('binary'));
        giveBack();
        return out;
      },
      dispose: giveBack,
    };
  };
  return {
    sync: () => {
      const inst = free.pop();
      refill();
      if (!inst) throw new Error('hash-wasm instances exhausted (more than 4 concurrent hashes of one algorithm on one thread)');
      return use(inst);
    },
    // Never the last two free ones: a synchronous hash (one at a time per thread) must find one
    // while many streamed parts hold theirs.
    acquire: async () => use(free.length > 2 ? free.pop()! : await create()),
  };
}

export function createHasher(name: ChecksumAlgorithm | 'MD5'): Hasher {
  const f = factories.get(name);
  if (!f) throw new Error(`hashers not loaded (call loadHashers() first) or unknown algorithm ${name}`);
  return f();
}

/** A hasher to hold across awaits (reads of a streamed part): never runs out, whatever the concurrency. */
export async function acquireHasher(name: ChecksumAlgorithm | 'MD5'): Promise<Hasher> {
  const a = acquirers.get(name);
  return a ? a() : createHasher(name);
}

// ---------------------------------------------------------------------------------------------
// Whole-object values derived from per-part digests, so the file is never read twice.

const CRC_PARAMS = {
  CRC32: { width: 32n, poly: 0xedb88320n },
  CRC32C: { width: 32n, poly: 0x82f63b78n },
  CRC64NVME: { width: 64n, poly: 0x9a6c9329ac4bc9b5n },
} as const;

const x2nTables = new Map<string, bigint[]>();

/** a(x)·b(x) mod P(x) for reflected CRC polynomials (zlib's multmodp, generalised to 64 bits). */
function multModP(a: bigint, b: bigint, width: bigint, poly: bigint): bigint {
  let m = 1n << (width - 1n);
  let p = 0n;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1n)) === 0n) break;
    }
    m >>= 1n;
    b = b & 1n ? (b >> 1n) ^ poly : b >> 1n;
  }
  return p;
}

function x2nTable(alg: keyof typeof CRC_PARAMS): bigint[] {
  let t = x2nTables.get(alg);
  if (!t) {
    const { width, poly } = CRC_PARAMS[alg];
    t = [1n << (width - 2n)]; // x^1
    for (let n = 1; n < 64; n++) t.push(multModP(t[n - 1]!, t[n - 1]!, width, poly));
    x2nTables.set(alg, t);
  }
  return t;
}

/** CRC of A‖B from crc(A), crc(B) and len(B): how S3 "linearizes" part CRCs into a FULL_OBJECT value. */
export function crcCombine(alg: 'CRC32' | 'CRC32C' | 'CRC64NVME', crcA: bigint, crcB: bigint, lenB: number): bigint {
  const { width, poly } = CRC_PARAMS[alg];
  const table = x2nTable(alg);
  // x^(8·lenB) mod P, by squaring
  let p = 1n << (width - 1n);
  let n = BigInt(lenB);
  let k = 3;
  while (n > 0n) {
    if (n & 1n) p = multModP(table[k % 64]!, p, width, poly);
    n >>= 1n;
    k++;
  }
  return multModP(p, crcA, width, poly) ^ crcB;
}

export interface PartDigest {
  size: number;
  /** raw checksum digest of the part (big-endian), for the upload's algorithm */
  checksum: Buffer;
}

/** Expected FULL_OBJECT checksum (base64) of the object made of these parts in order. */
export function fullObjectChecksum(alg: 'CRC32' | 'CRC32C' | 'CRC64NVME', parts: PartDigest[]): string {
  const bytes = alg === 'CRC64NVME' ? 8 : 4;
  let acc: bigint | undefined;
  for (const p of parts) {
    const v = BigInt('0x' + (p.checksum.toString('hex') || '0'));
    acc = acc === undefined ? v : crcCombine(alg, acc, v, p.size);
  }
  const out = Buffer.alloc(bytes);
  if (bytes === 8) out.writeBigUInt64BE(acc ?? 0n);
  else out.writeUInt32BE(Number(acc ?? 0n));
  return out.toString('base64');
}

/** Expected COMPOSITE checksum: base64(H(concat of binary part digests)) + "-N". */
export function compositeChecksum(alg: ChecksumAlgorithm, parts: PartDigest[]): string {
  const h = createHasher(alg);
  for (const p of parts) h.update(p.checksum);
  return `${h.digest().toString('base64')}-${parts.length}`;
}

/** S3's multipart ETag: hex(MD5(concat of binary part MD5s)) + "-N" (unencrypted / SSE-S3 only). */
export function multipartEtag(partMd5Hex: string[]): string {
  const h = createHash('md5');
  for (const m of partMd5Hex) h.update(Buffer.from(m, 'hex'));
  return `${h.digest('hex')}-${partMd5Hex.length}`;
}

export function stripQuotes(etag: string | undefined): string {
  return (etag ?? '').replace(/^"+|"+$/g, '').replace(/^W\//, '');
}

/** True for an ETag that is a plain 32-hex-digit MD5 (what S3 gives unencrypted/SSE-S3 parts). */
export function looksLikeMd5(etag: string | undefined): boolean {
  return /^[0-9a-f]{32}$/i.test(stripQuotes(etag));
}

/** What the server (or the request) says about encryption, and the ETag it returned, if any. */
export interface EtagSignals {
  /** the server-side encryption in effect: AES256, aws:kms, aws:kms:dsse, … */
  serverSideEncryption?: string | undefined;
  /** set when SSE-C was used (in the request or echoed by the server) */
  sseCustomerAlgorithm?: string | undefined;
  etag?: string | undefined;
}

/**
 * The one answer to "are this upload's part ETags MD5s of the part bytes?". Only positive
 * evidence says no: SSE-KMS/DSSE-KMS or SSE-C (S3 documents their ETags as not MD5s), or an ETag
 * that is not 32 hex digits. A part whose MD5-shaped ETag merely differs from its MD5 is a part
 * stored wrong, never a reason to stop trusting ETags.
 */
export function etagsAreMd5(s: EtagSignals): boolean {
  if ((s.serverSideEncryption ?? '').startsWith('aws:kms')) return false;
  if (s.sseCustomerAlgorithm) return false;
  if (s.etag !== undefined && !looksLikeMd5(s.etag)) return false;
  return true;
}
