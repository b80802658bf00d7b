import { open, realpath, stat, type FileHandle } from 'node:fs/promises';
import { getDefaultHighWaterMark } from 'node:stream';
import { loadHashers, type ChecksumAlgorithm } from '../core/checksums.ts';
import { SourceChangedError, SourceUnreadableError, type ErrorContext } from '../core/errors.ts';
import { computesMd5, digestBuffer, type LocalDigest } from '../core/hashing.ts';
import { digestFileRange } from './file-hashing.ts';
import type { PlannedPart } from '../core/planner.ts';
import type { PartBody } from '../core/part-body.ts';

/**
 * Identifies the bytes a journal's parts came from; any change means the parts can't be trusted.
 * ctime is in it because a rewrite in place can keep size and mtime (`touch -r`, tools that
 * preserve times) but cannot set ctime back: the kernel moves it on every write.
 */
export interface SourceFingerprint {
  path: string;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  dev: number;
}

export async function fingerprint(path: string): Promise<SourceFingerprint> {
  try {
    const real = await realpath(path);
    const st = await stat(real, { bigint: true });
    if (st.isDirectory()) throw new Error('it is a directory, and this takes one file (the command uploads a folder as a job: partwise upload <folder> s3://<bucket>/<prefix>/)');
    if (!st.isFile()) throw new Error('it is not a regular file (a device, socket or pipe cannot be re-read to resume)');
    // Nanosecond times as numbers of ms with the fraction: two writes in one millisecond differ.
    const ms = (ns: bigint) => Number(ns / 1000n) / 1000;
    return { path: real, size: Number(st.size), mtimeMs: ms(st.mtimeNs), ctimeMs: ms(st.ctimeNs), ino: Number(st.ino), dev: Number(st.dev) };
  } catch (err) {
    throw new SourceUnreadableError(path, err);
  }
}

/**
 * Lists how the file's contents may have changed between two fingerprints (empty when unchanged):
 * size, modification time, and ctime, which every write and every replacement moves (a file moved
 * over it, or copied with its times kept, has a new ctime). The inode and device are not in it: a
 * remount (loop, LVM, USB, NFS, overlay) renumbers them for the same bytes; see `identityMoved`.
 */
export function fingerprintDifferences(was: SourceFingerprint, now: SourceFingerprint): string[] {
  const out: string[] = [];
  if (was.size !== now.size) out.push(`size ${was.size} → ${now.size}`);
  if (was.mtimeMs !== now.mtimeMs) out.push(`modified ${new Date(was.mtimeMs).toISOString()} → ${new Date(now.mtimeMs).toISOString()}`);
  else if (was.ctimeMs !== now.ctimeMs) out.push(`rewritten or re-attributed at ${new Date(now.ctimeMs).toISOString()} with its modification time kept`);
  return out;
}

/**
 * The same contents under another device or inode number (a remount): not a reason to refuse a
 * resume, but one to trust nothing recorded of the file, so every part is verified from it again.
 */
export function identityMoved(was: SourceFingerprint, now: SourceFingerprint): boolean {
  return was.ino !== now.ino || was.dev !== now.dev;
}

/**
 * The one check that the file still holds the bytes a journal describes. Called before a resume
 * trusts anything, when a part fails, and before Complete, so a change never yields a mixed object.
 */
export async function assertSourceUnchanged(was: SourceFingerprint, file: string, context: ErrorContext, step?: string): Promise<void> {
  const diffs = fingerprintDifferences(was, await fingerprint(file));
  if (diffs.length) throw new SourceChangedError(file, diffs, context, step);
}

export async function openSource(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (err) {
    throw new SourceUnreadableError(path, err);
  }
}

/** Reads exactly `length` bytes at `offset` (into `buf` when given, else a fresh buffer). */
export async function readRange(fh: FileHandle, offset: number, length: number, buf: Buffer = Buffer.allocUnsafe(length)): Promise<Buffer> {
  let done = 0;
  while (done < length) {
    // Reads stay well under 2 GiB: Node 20 aborts the process on a single read of 2^31 bytes or more.
    const { bytesRead } = await fh.read(buf, done, Math.min(length - done, 1 << 30), offset + done);
    if (bytesRead === 0) throw new Error(`unexpected end of file at offset ${offset + done} (the file shrank during the upload)`);
    done += bytesRead;
  }
  return buf;
}

const SLICE = 1024 * 1024;

/**
 * What a streamed part is read through: one arena per request in flight, cycled in RING slices of
 * 256 KiB (smaller slices cost measurably more CPU; larger arenas only memory). Memory for part
 * bytes is then concurrency × 1 MiB whatever the part size.
 */
export const ARENA_BYTES = 1024 * 1024;
const RING = 4;

/**
 * A part body streamed from the file; each call of `chunks` reads it afresh. With an arena the
 * reads cycle through its slices. The request pipe asks for a slice only once the socket has taken
 * all but the previous one (backpressure: a 256 KiB write always fills the socket's 16–64 KiB
 * high-water mark), so at most two slices are held when a third is read into. Only the first call
 * uses the arena: a failed request's last read may still land in it, so a retry reads into a fresh
 * one. Whatever happens here, the server checks what it received against the digests sent first.
 */
function fileRangeBody(fh: FileHandle, offset: number, length: number, arena?: Buffer): PartBody {
  let calls = 0;
  return {
    length,
    async *chunks() {
      // The ring relies on the pipe asking for a slice only once the socket took all but the one
      // before: a process whose default high-water mark holds a whole slice reads further ahead.
      const ringSafe = getDefaultHighWaterMark(false) < Math.floor((arena?.length ?? 0) / RING);
      const ring = arena && ringSafe ? (calls++ === 0 ? arena : Buffer.allocUnsafeSlow(arena.length)) : undefined;
      const slice = ring ? Math.floor(ring.length / RING) : SLICE;
      let done = 0;
      for (let i = 0; done < length; i++) {
        const n = Math.min(slice, length - done);
        // Without an arena, a fresh buffer per slice: the HTTP layer may still hold the previous one.
        const buf = ring ? ring.subarray((i % RING) * slice, (i % RING) * slice + n) : Buffer.allocUnsafe(n);
        const { bytesRead } = await fh.read(buf, 0, n, offset + done);
        if (bytesRead === 0) throw new Error(`unexpected end of file at offset ${offset + done} (the file shrank during the upload)`);
        done += bytesRead;
        yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
      }
    },
  };
}

export interface PreparedPart {
  body: PartBody;
  digest: LocalDigest;
  /** the arena a streamed part's first request reads through: back to its pool only after that request succeeded */
  arena?: Buffer;
}

/**
 * A part's bytes and digest, read inside its concurrency slot. Up to `streamAbove` bytes the part
 * is held in memory (hashed and sent from one buffer, reused on a retry); above it, it is hashed in
 * a first pass over the file and streamed from the file in a second (the page cache makes the
 * second read cheap), both through an arena taken from `arena` when given, so memory does not grow with the part size.
 * The server checks what it receives against the precomputed MD5 and checksum, so a change between
 * the passes is refused by the server, not stored. The arena goes back to its pool only after a
 * request that succeeded: a failed one may still be reading into it.
 */
export async function preparePart(
  fh: FileHandle,
  part: PlannedPart,
  alg: ChecksumAlgorithm | null,
  streamAbove: number,
  from: { reuse?: PreparedPart; alloc?: (size: number) => Buffer; md5?: boolean; arena?: (size: number) => Buffer } = {},
): Promise<PreparedPart> {
  const md5 = from.md5 !== false;
  // Each run loads the hashers it uses, here where parts are hashed for sending (not all up front:
  // CRC64NVME's WASM costs ~30 ms of every start that never uses it).
  await loadHashers([alg ?? undefined, computesMd5(alg, md5) ? 'MD5' : undefined]);
  if (part.size > streamAbove) {
    const arena = from.arena?.(ARENA_BYTES);
    const digest = await digestFileRange(fh, part.offset, part.size, alg ?? undefined, arena, undefined, md5);
    return { body: fileRangeBody(fh, part.offset, part.size, arena), digest, ...(arena ? { arena } : {}) };
  }
  const prior = from.reuse && Buffer.isBuffer(from.reuse.body) && from.reuse.body.length === part.size ? from.reuse.body : undefined;
  const buf = await readRange(fh, part.offset, part.size, prior ?? from.alloc?.(part.size));
  return { body: buf, digest: digestBuffer(buf, alg ?? undefined, md5) };
}

export function sameDigest(a: LocalDigest, b: LocalDigest): boolean {
  return a.md5Hex === b.md5Hex && (a.checksum === undefined ? b.checksum === undefined : b.checksum !== undefined && a.checksum.equals(b.checksum));
}
