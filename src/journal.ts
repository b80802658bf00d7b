import { createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, unlink } from 'node:fs/promises';
import { homedir, hostname } from 'node:os';
import { join } from 'node:path';
import { isChecksumAlgorithm, type ChecksumAlgorithm, type ChecksumType } from './checksums.ts';
import { JournalCorruptError, UploadLockedError, type ErrorContext } from './errors.ts';
import type { SourceFingerprint } from './file-source.ts';

export const JOURNAL_SCHEMA = 1;

export interface JournalPart {
  partNumber: number;
  size: number;
  etag: string;
  /** hex MD5 of the bytes we sent (the server checked it against Content-MD5) */
  md5: string;
  /** base64 checksum of the upload's algorithm */
  checksum?: string;
}

/**
 * Everything needed to resume, and nothing secret: no credentials, no SSE-C key (only its MD5,
 * which S3 itself stores, to refuse a resume with a different key).
 */
export interface JournalData {
  schema: typeof JOURNAL_SCHEMA;
  bucket: string;
  key: string;
  uploadId: string;
  endpoint: string;
  partSize: number;
  partCount: number;
  checksumAlgorithm: ChecksumAlgorithm | null;
  checksumType: ChecksumType | null;
  /** false once we know part ETags are not MD5s (SSE-KMS, SSE-C, some servers) */
  etagIsMd5: boolean;
  source: SourceFingerprint;
  sseCustomerKeyMd5: string | null;
  createdAt: string;
  updatedAt: string;
  parts: JournalPart[];
}

export function defaultStateDir(): string {
  if (process.env.PARTWISE_STATE_DIR) return process.env.PARTWISE_STATE_DIR;
  const base = process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(base, 'partwise');
}

/** One journal per (endpoint, bucket, key, source path): a re-run of the same command finds it. */
export function journalPathFor(stateDir: string, id: { endpoint: string; bucket: string; key: string; sourcePath: string }): string {
  const h = createHash('sha256').update(JSON.stringify([id.endpoint, id.bucket, id.key, id.sourcePath])).digest('hex').slice(0, 32);
  return join(stateDir, `${h}.json`);
}

export async function readJournal(path: string): Promise<JournalData | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new JournalCorruptError(path, 'not valid JSON');
  }
  return validate(path, raw);
}

function validate(path: string, raw: unknown): JournalData {
  const bad = (why: string): never => {
    throw new JournalCorruptError(path, why);
  };
  if (typeof raw !== 'object' || raw === null) bad('not an object');
  const j = raw as Record<string, unknown>;
  if (j.schema !== JOURNAL_SCHEMA) bad(`schema ${String(j.schema)} is not ${JOURNAL_SCHEMA} (written by another partwise version?)`);
  for (const f of ['bucket', 'key', 'uploadId', 'endpoint', 'createdAt', 'updatedAt'] as const) if (typeof j[f] !== 'string') bad(`${f} missing`);
  for (const f of ['partSize', 'partCount'] as const) if (!Number.isSafeInteger(j[f]) || (j[f] as number) < 1) bad(`${f} invalid`);
  if (j.checksumAlgorithm !== null && !isChecksumAlgorithm(j.checksumAlgorithm)) bad('checksumAlgorithm invalid');
  if (typeof j.etagIsMd5 !== 'boolean') bad('etagIsMd5 missing');
  const s = j.source as Record<string, unknown> | undefined;
  if (!s || typeof s.path !== 'string' || !Number.isSafeInteger(s.size) || typeof s.mtimeMs !== 'number' || typeof s.ino !== 'number') bad('source fingerprint invalid');
  if (!Array.isArray(j.parts)) bad('parts missing');
  for (const p of j.parts as unknown[]) {
    const q = p as Record<string, unknown>;
    if (!Number.isSafeInteger(q.partNumber) || !Number.isSafeInteger(q.size) || typeof q.etag !== 'string' || typeof q.md5 !== 'string') bad('a part entry is invalid');
  }
  return j as unknown as JournalData;
}

/**
 * Atomic replace: write a temp file beside the journal, fsync it, rename over the journal, fsync
 * the directory. A crash at any instant leaves either the old or the new journal, never a torn one.
 */
export async function writeJournalAtomic(path: string, data: JournalData): Promise<void> {
  const dir = join(path, '..');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(JSON.stringify(data, null, 1) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** Removes leftovers of writes that crashed before their rename. */
export async function removeStaleTemps(path: string): Promise<void> {
  const dir = join(path, '..');
  const base = path.slice(dir.length + 1);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => n.startsWith(`${base}.tmp-`)).map((n) => rm(join(dir, n), { force: true })));
}

export async function deleteJournal(path: string): Promise<void> {
  await rm(path, { force: true });
  await removeStaleTemps(path);
}

/**
 * Serializes journal writes: after every part the latest state is written, but a burst of parts
 * finishing together costs one extra write, not one each.
 */
export class JournalWriter {
  private writing: Promise<void> | undefined;
  private dirty = false;
  private failure: unknown;

  constructor(
    readonly path: string,
    private readonly snapshot: () => JournalData,
  ) {}

  /** Schedules a write of the current state; resolves when a write that includes it is on disk. */
  save(): Promise<void> {
    this.dirty = true;
    if (!this.writing) this.writing = this.drain();
    return this.writing;
  }

  private async drain(): Promise<void> {
    try {
      while (this.dirty) {
        this.dirty = false;
        await writeJournalAtomic(this.path, this.snapshot());
      }
    } catch (err) {
      this.failure = err;
      throw err;
    } finally {
      this.writing = undefined;
    }
  }

  async flush(): Promise<void> {
    while (this.writing) await this.writing.catch(() => undefined);
    if (this.failure) throw this.failure;
  }
}

interface LockInfo {
  pid: number;
  host: string;
  startedAt: string;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * An exclusive lock file beside the journal, so two processes never drive one upload. A lock left
 * by a dead process on this host (kill -9, power loss) is taken over.
 */
export async function acquireLock(journalPath: string, context: ErrorContext): Promise<() => Promise<void>> {
  const lockPath = `${journalPath}.lock`;
  await mkdir(join(lockPath, '..'), { recursive: true, mode: 0o700 });
  const me: LockInfo = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(lockPath, 'wx', 0o600);
      try {
        writeSync(fd, JSON.stringify(me));
      } finally {
        closeSync(fd);
      }
      let released = false;
      return async () => {
        if (released) return;
        released = true;
        await unlink(lockPath).catch(() => undefined);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder: LockInfo | undefined;
    try {
      holder = JSON.parse(await readFile(lockPath, 'utf8')) as LockInfo;
    } catch {
      holder = undefined; // empty or torn: its writer died between create and write
    }
    const stale = !holder || (holder.host === me.host && !pidAlive(holder.pid));
    if (!stale) throw new UploadLockedError(lockPath, { pid: holder!.pid, host: holder!.host }, { ...context, journalPath });
    await unlink(lockPath).catch(() => undefined);
  }
  throw new UploadLockedError(lockPath, { pid: -1, host: 'unknown' }, { ...context, journalPath });
}
