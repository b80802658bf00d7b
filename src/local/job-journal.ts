/**
 * A folder job's journal: one appended, synced line per finished file (what was sent and what the
 * server stored), so a rerun knows which files are done without touching them again; one before a
 * file's multipart upload begins, so a rerun that no longer finds the file knows an upload of it
 * may be left on the server. Each line carries a hash of itself: a torn last line (a crash
 * mid-append) is ignored, never misread.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { StateUnwritableError } from '../core/errors.ts';

export interface DoneRecord {
  key: string;
  file: string;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  etag: string;
  /** the object settings it was sent with (a stable text): other settings send it again */
  settings?: string;
  /** the object's stored checksum (full-object or composite value) and its algorithm */
  checksum?: string;
  algorithm?: string;
  /** the Object Lock retain-until date it was sent or extended with (ISO 8601) */
  retainUntil?: string;
}

/** A file's multipart upload is beginning (its own journal at `journalPath` will name it). */
export interface StartedRecord {
  kind: 'started';
  key: string;
  file: string;
  journalPath: string;
}

/** What a started record announced is settled (its upload aborted, or nothing left of it). */
export interface DroppedRecord {
  kind: 'dropped';
  key: string;
}

export type JobRecord = DoneRecord | StartedRecord | DroppedRecord;

export interface JobState {
  /** finished files by key: the last record of a key wins */
  done: Map<string, DoneRecord>;
  /** multipart uploads begun and not yet finished or dropped, by key */
  started: Map<string, StartedRecord>;
}

const hashOf = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 16);

export function jobJournalPath(stateDir: string, id: { endpoint: string; bucket: string; prefix: string; source: string }): string {
  const h = createHash('sha256').update(JSON.stringify([id.endpoint, id.bucket, id.prefix, id.source])).digest('hex').slice(0, 32);
  return join(stateDir, 'jobs', `${h}.jsonl`);
}

/** What the journal records, by key. Lines that do not check out are skipped. */
export async function readJobState(path: string): Promise<JobState> {
  const out: JobState = { done: new Map(), started: new Map() };
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw new StateUnwritableError(dirname(path), err, { journalPath: path });
  }
  for (const line of text.split('\n')) {
    const i = line.lastIndexOf(' ');
    if (i < 0) continue;
    const body = line.slice(0, i);
    if (hashOf(body) !== line.slice(i + 1)) continue;
    try {
      // Records from before kinds existed are finished files.
      const r = JSON.parse(body) as JobRecord;
      if (!('kind' in r)) {
        out.done.set(r.key, r);
        out.started.delete(r.key);
      } else if (r.kind === 'started') out.started.set(r.key, r);
      else if (r.kind === 'dropped') out.started.delete(r.key);
    } catch {
      /* a line that hashed right but is not JSON cannot happen; skip it anyway */
    }
  }
  return out;
}

/** The file calls the journal makes (tests hand in ones that fail on demand). */
export interface JournalFiles {
  open: typeof open;
  mkdir: typeof mkdir;
}

interface Pending {
  line: string;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * Appends records, each synced before its promise resolves; records that arrive while a write is
 * under way go together in the next one (one fsync for many small files). Each record's promise
 * settles with its own batch: a later batch failing does not take back one already synced.
 */
export class JobJournal {
  private queue: Pending[] = [];
  private draining = false;

  private needsNewline = false;

  constructor(
    readonly path: string,
    private readonly files: JournalFiles = { open, mkdir },
  ) {}

  /** Checks the journal can be written (before anything is sent) and ends a torn last line. */
  async open(): Promise<void> {
    try {
      await this.files.mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      const fh = await this.files.open(this.path, 'a+', 0o600);
      try {
        const { size } = await fh.stat();
        if (size > 0) {
          const last = Buffer.alloc(1);
          await fh.read(last, 0, 1, size - 1);
          // A crash mid-append left a line without its end: the next record must not join it.
          this.needsNewline = last[0] !== 0x0a;
        }
      } finally {
        await fh.close();
      }
    } catch (err) {
      throw new StateUnwritableError(dirname(this.path), err, { journalPath: this.path });
    }
  }

  append(r: JobRecord): Promise<void> {
    const body = JSON.stringify(r);
    const done = new Promise<void>((resolve, reject) => this.queue.push({ line: `${body} ${hashOf(body)}\n`, resolve, reject }));
    if (!this.draining) void this.drain();
    return done;
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      // Let the callers of this tick join the batch.
      await new Promise((resolve) => setImmediate(resolve));
      while (this.queue.length) {
        const batch = this.queue;
        this.queue = [];
        try {
          await this.write((this.needsNewline ? '\n' : '') + batch.map((p) => p.line).join(''));
          this.needsNewline = false;
          for (const p of batch) p.resolve();
        } catch (err) {
          // A failed append may have left part of its text: the next record starts on a new line
          // (a torn line fails its hash and is skipped when read).
          this.needsNewline = true;
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private async write(text: string): Promise<void> {
    try {
      await this.files.mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      const fh = await this.files.open(this.path, 'a', 0o600);
      try {
        await fh.writeFile(text);
        await fh.datasync();
      } finally {
        await fh.close();
      }
    } catch (err) {
      throw new StateUnwritableError(
        dirname(this.path),
        err,
        { journalPath: this.path },
        'The file was sent and verified, but the job journal could not record it, so the next run checks it again; free space or fix the folder, then run the job again',
      );
    }
  }
}
