/**
 * Layer local/: state and bytes on this machine: the source file and its fingerprint, an upload's
 * journal (this file) and a folder job's, the lock, the tree walk, the hash threads, part buffers.
 * It may import core/, never s3/ (the two are siblings: a shape both need lives in core/).
 */
import { createHash } from 'node:crypto';
import type { ObjectSettings } from '../core/object-settings.ts';
import { chmod, mkdir, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { isChecksumAlgorithm, type ChecksumAlgorithm, type ChecksumType } from '../core/checksums.ts';
import { JournalCorruptError, StateUnwritableError } from '../core/errors.ts';
import type { SourceFingerprint } from './file-source.ts';
import type { LocalDigest } from '../core/hashing.ts';

/** 2: the source fingerprint has ctime. A journal of another schema is refused (move it aside with --fresh). */
export const JOURNAL_SCHEMA = 2;

export interface JournalPart {
  partNumber: number;
  size: number;
  etag: string;
  /** hex MD5 of the bytes we sent (the server checked it against Content-MD5); absent when the checksum was the evidence */
  md5?: string;
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
  /** true once the server echoed a part's checksum: it stores and checks them, so MD5 is not needed */
  serverChecksums?: boolean;
  source: SourceFingerprint;
  sseCustomerKeyMd5: string | null;
  /** what the object was created with (fixed at Create); absent in journals from before 0.2 */
  settings?: ObjectSettings;
  createdAt: string;
  updatedAt: string;
  parts: JournalPart[];
}

/** What this machine recorded of each part it uploaded: enough to know the object without re-reading the file. */
export function digestsFromJournal(j: JournalData): Map<number, LocalDigest> {
  return new Map(j.parts.map((p) => [p.partNumber, { ...(p.md5 ? { md5Hex: p.md5 } : {}), ...(p.checksum ? { checksum: Buffer.from(p.checksum, 'base64') } : {}) }]));
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
  return replayLog(path, validate(path, raw));
}

/**
 * The part log beside the journal: one line per acknowledged part, appended (so a part costs the
 * same to record whether it is the 1st or the 10,000th), each line with a hash of itself. The
 * journal proper is rewritten whole only at begin, resume and adoption (compaction), which also
 * empties the log.
 */
const logPath = (journalPath: string) => `${journalPath}.log`;

interface LogRecord {
  /** the upload the record belongs to (a log left by another upload is ignored) */
  u: string;
  part: JournalPart;
  /** false once the server's ETags proved not to be MD5s */
  etagIsMd5: boolean;
  /** true once the server echoed a part checksum */
  sc?: boolean;
}

const lineHash = (json: string) => createHash('sha256').update(json).digest('hex').slice(0, 16);

export function logLine(r: LogRecord): string {
  const json = JSON.stringify(r);
  return `${json}\t${lineHash(json)}\n`;
}

/**
 * The journal plus every whole record of its log. A line whose hash does not match (a write torn
 * by a crash, which can only be the last) ends the replay: the parts before it are the journal.
 */
async function replayLog(path: string, j: JournalData): Promise<JournalData> {
  let text: string;
  try {
    text = await readFile(logPath(path), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return j;
    throw err;
  }
  const parts = new Map(j.parts.map((p) => [p.partNumber, p]));
  let etagIsMd5 = j.etagIsMd5;
  let serverChecksums = j.serverChecksums === true;
  for (const line of text.split('\n')) {
    const tab = line.lastIndexOf('\t');
    if (tab < 0 || lineHash(line.slice(0, tab)) !== line.slice(tab + 1)) break;
    let r: LogRecord;
    try {
      r = JSON.parse(line.slice(0, tab)) as LogRecord;
    } catch {
      break;
    }
    if (r.u !== j.uploadId) continue;
    const q = r.part as unknown as Record<string, unknown>;
    if (!Number.isSafeInteger(q.partNumber) || !Number.isSafeInteger(q.size) || typeof q.etag !== 'string' || (q.md5 !== undefined && typeof q.md5 !== 'string')) break;
    parts.set(r.part.partNumber, r.part);
    if (r.etagIsMd5 === false) etagIsMd5 = false;
    if (r.sc === true) serverChecksums = true;
  }
  return { ...j, etagIsMd5, ...(serverChecksums ? { serverChecksums } : {}), parts: [...parts.values()].sort((a, b) => a.partNumber - b.partNumber) };
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
  if (!s || typeof s.path !== 'string' || !Number.isSafeInteger(s.size) || typeof s.mtimeMs !== 'number' || typeof s.ctimeMs !== 'number' || typeof s.ino !== 'number' || typeof s.dev !== 'number') {
    bad('source fingerprint invalid');
  }
  if (!Array.isArray(j.parts)) bad('parts missing');
  for (const p of j.parts as unknown[]) {
    const q = p as Record<string, unknown>;
    if (!Number.isSafeInteger(q.partNumber) || !Number.isSafeInteger(q.size) || typeof q.etag !== 'string' || (q.md5 !== undefined && typeof q.md5 !== 'string')) bad('a part entry is invalid');
  }
  return j as unknown as JournalData;
}

let written = 0;

/** Bytes this process has written to journals and part logs: the cost per part the benchmark reports. */
export function journalBytesWritten(): number {
  return written;
}

/**
 * Atomic replace: write a temp file beside the journal, fsync it, rename over the journal, fsync
 * the directory. A crash at any instant leaves either the old or the new journal, never a torn one.
 */
export async function writeJournalAtomic(path: string, data: JournalData): Promise<void> {
  const dir = join(path, '..');
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const fh = await open(tmp, 'w', 0o600);
    try {
      const text = JSON.stringify(data, null, 1) + '\n';
      await fh.writeFile(text);
      written += Buffer.byteLength(text);
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
    // Compacted: the journal holds every part now. A crash before this leaves records it already has.
    await rm(logPath(path), { force: true });
  } catch (err) {
    // The journal on disk is still the previous one, whole: the upload stays resumable.
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new StateUnwritableError(dir, err, { bucket: data.bucket, key: data.key, uploadId: data.uploadId, journalPath: path });
  }
}

/**
 * The state folder exists and is private: created 0700; one that already existed with group or
 * other access is narrowed to 0700 when it is ours and not a shared folder (sticky, like /tmp).
 */
export async function prepareStateDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const st = await stat(dir);
    const mine = typeof process.getuid !== 'function' || st.uid === process.getuid();
    const shared = (st.mode & 0o1000) !== 0;
    if ((st.mode & 0o077) !== 0 && mine && !shared) await chmod(dir, 0o700);
  } catch (err) {
    throw new StateUnwritableError(dir, err);
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
  await rm(logPath(path), { force: true });
  await removeIntent(path);
  await removeStaleTemps(path);
}

/**
 * Written before CreateMultipartUpload, removed once the journal names the upload: a process
 * stopped in between leaves this, so the next run knows to look for (and adopt) the upload it
 * created. It holds no secret: bucket, key and a time.
 */
export interface Intent {
  bucket: string;
  key: string;
  createdAt: string;
}

const intentPath = (journalPath: string) => `${journalPath}.intent`;

export async function writeIntent(journalPath: string, intent: Intent): Promise<void> {
  const p = intentPath(journalPath);
  const tmp = `${p}.tmp-${process.pid}`;
  try {
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify(intent));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, p);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new StateUnwritableError(join(p, '..'), err, { bucket: intent.bucket, key: intent.key });
  }
}

export async function readIntent(journalPath: string): Promise<Intent | undefined> {
  try {
    const raw = JSON.parse(await readFile(intentPath(journalPath), 'utf8')) as Intent;
    return typeof raw.createdAt === 'string' && typeof raw.key === 'string' ? raw : undefined;
  } catch {
    return undefined; // absent, or torn by a crash mid-write: no intent
  }
}

export async function removeIntent(journalPath: string): Promise<void> {
  await rm(intentPath(journalPath), { force: true });
}

/**
 * Moves an unreadable journal out of the way, keeping it for inspection (it may name an upload
 * still open on the server). Returns where it went.
 */
export async function setJournalAside(path: string): Promise<string> {
  const aside = `${path}.unreadable-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  await rename(path, aside);
  await rename(logPath(path), `${aside}.log`).catch(() => undefined);
  return aside;
}

/**
 * Records acknowledged parts in the part log: appended and synced, with parts that finish together
 * written in one append. The cost of a part is its own line, whatever the part count.
 */
export class JournalWriter {
  private queue: string[] = [];
  private writing: Promise<void> | undefined;
  private failure: unknown;

  constructor(
    readonly path: string,
    private readonly context: { bucket: string; key: string; uploadId: string },
  ) {}

  /** Schedules the record; resolves when a write that includes it is on disk. */
  record(part: JournalPart, etagIsMd5: boolean, serverChecksums = false): Promise<void> {
    this.queue.push(logLine({ u: this.context.uploadId, part, etagIsMd5, ...(serverChecksums ? { sc: true } : {}) }));
    if (!this.writing) this.writing = this.drain();
    return this.writing;
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length) {
        const lines = this.queue.join('');
        this.queue = [];
        await appendSynced(logPath(this.path), lines).catch((err: unknown) => {
          throw new StateUnwritableError(join(this.path, '..'), err, { ...this.context, journalPath: this.path });
        });
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

async function appendSynced(path: string, text: string): Promise<void> {
  const fh = await open(path, 'a', 0o600);
  try {
    await fh.writeFile(text);
    written += Buffer.byteLength(text);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}
