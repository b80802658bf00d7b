/**
 * The lock beside a journal, so two processes never drive one upload (or one folder job). A lock
 * file names its holder (host, PID, the boot and PID namespace it runs in, and a nonce unique to
 * the acquisition) and is kept fresh by a heartbeat while held. A holder is taken over only when it
 * is provably gone: a dead PID on this host, where the PID means the same process (the same boot
 * and PID namespace, and not the caller's own PID); anywhere else on this host (the caller's own
 * PID, as a restarted container that is PID 1 again sees it, another PID namespace, another boot)
 * a heartbeat silent for LOCK_STALE_MS. Another host's locks are never taken over.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { link, open, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { StateUnwritableError, UploadLockedError, type ErrorContext, type LockedWork } from '../core/errors.ts';
import { prepareStateDir } from './journal.ts';

interface LockInfo {
  pid: number;
  host: string;
  startedAt: string;
  /** unique per acquisition: who holds a lock file is decided by this, never by the path alone */
  nonce: string;
  /** this boot of the machine (Linux's boot_id): nothing from an earlier boot is alive */
  bootId?: string;
  /** the PID namespace the PID means something in (a container has its own) */
  pidNs?: string;
}

interface Holder {
  info: LockInfo | undefined;
  /** what identifies this lock instance: its nonce, or for an unparseable file its inode */
  tag: string;
  mtimeMs: number;
}

/** How often a held lock's file is touched, and how long without a touch makes it stale where its PID cannot be asked after. */
export const LOCK_HEARTBEAT_MS = 2_000;
export const LOCK_STALE_MS = 10_000;

const readOr = (read: () => string): string | undefined => {
  try {
    return read().trim() || undefined;
  } catch {
    return undefined; // not Linux, or no /proc: the rules that need it are not used
  }
};
const BOOT_ID = readOr(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8'));
const PID_NS = readOr(() => readlinkSync('/proc/self/ns/pid'));

/** Nonces of the locks this process holds or is acquiring: a lock naming this PID with another nonce is an earlier life of the PID. */
const mine = new Set<string>();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readHolder(path: string): Promise<Holder | undefined> {
  try {
    const [text, st] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    try {
      const info = JSON.parse(text) as LockInfo;
      // Locks written before nonces existed are told apart by their inode.
      if (Number.isInteger(info.pid) && typeof info.host === 'string') return { info, tag: typeof info.nonce === 'string' ? info.nonce : `ino${st.ino}`, mtimeMs: st.mtimeMs };
    } catch {
      /* unparseable: see judge */
    }
    return { info: undefined, tag: `ino${st.ino}`, mtimeMs: st.mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** live, stale, or (another PID namespace, heartbeat recent) only time will tell. */
type Verdict = 'live' | 'stale' | 'watch';

/**
 * Lock files are created whole (a complete temp file linked into place), so an unparseable one is
 * not a writer caught mid-write; it is left by an older version or a damaged disk, and counts as
 * stale once old. Another host's processes cannot be seen from here: its locks are live. On this
 * host a holder's PID is asked after only where it means the same process: the same boot and PID
 * namespace, and not this process's own PID. Otherwise only the heartbeat can tell: the holder may
 * be another thread of this process (worker threads share the PID), an earlier life of the PID (a
 * restarted container), another container, or another machine of the same name sharing the
 * folder; silent for LOCK_STALE_MS, it is gone (after a reboot or a kill, long since).
 */
function judge(h: Holder, me: LockInfo, now = Date.now()): Verdict {
  const silent = now - h.mtimeMs > LOCK_STALE_MS;
  if (!h.info) return silent ? 'stale' : 'live';
  const i = h.info;
  if (i.host !== me.host) return 'live';
  if (i.pid === me.pid && mine.has(i.nonce)) return 'live';
  const samePids = (!i.bootId || !me.bootId || i.bootId === me.bootId) && (!i.pidNs || !me.pidNs || i.pidNs === me.pidNs);
  if (samePids && i.pid !== me.pid) return pidAlive(i.pid) ? 'live' : 'stale';
  return silent ? 'stale' : 'watch';
}

/** A holder only its heartbeat can speak for: waits until it beats (live) or has been silent long enough (stale). */
async function watch(path: string, h: Holder, me: LockInfo): Promise<Verdict> {
  for (;;) {
    // A live holder beats every LOCK_HEARTBEAT_MS: looked at a little more often than that, until it is stale.
    await new Promise((r) => setTimeout(r, Math.max(50, Math.min(LOCK_HEARTBEAT_MS + 250, h.mtimeMs + LOCK_STALE_MS + 50 - Date.now()))));
    const now = await readHolder(path);
    if (!now || now.tag !== h.tag) return 'stale'; // released or replaced meanwhile: try again from the top
    if (now.mtimeMs !== h.mtimeMs) return 'live';
    const v = judge(now, me);
    if (v !== 'watch') return v;
  }
}

const errCode = (err: unknown) => (err as NodeJS.ErrnoException).code;

/** Unlinks `path` only if it is still the lock instance `tag` (safe: nobody replaces a live holder's file). */
async function unlinkIfTag(path: string, tag: string): Promise<void> {
  const h = await readHolder(path);
  if (h?.tag === tag) await unlink(path).catch(() => undefined);
}

/**
 * Replaces the stale lock instance `stale` at `path` with ours (the file `ours`), atomically with
 * respect to every other process trying the same: the right to replace instance X is itself an
 * exclusive file, `path.claim-X`, created by link (which fails if it exists). Only the process
 * holding the claim renames over `path`, and only after checking `path` is still instance X. A
 * claim left by a claimer that died is stale in turn and taken over the same way.
 */
async function replaceStale(path: string, stale: Holder, ours: string, me: LockInfo, depth: number): Promise<boolean> {
  const claim = `${path}.claim-${stale.tag}`;
  try {
    await link(ours, claim);
  } catch (err) {
    if (errCode(err) !== 'EEXIST' || depth >= 3) return false;
    const c = await readHolder(claim);
    // A claim lives for milliseconds: one that only a heartbeat could speak for is judged by its age alone.
    if (!c || judge(c, me) !== 'stale') return false; // a live claimer is finishing the takeover
    if (!(await replaceStale(claim, c, ours, me, depth + 1))) return false;
  }
  try {
    const now = await readHolder(path);
    if (now?.tag !== stale.tag) return false; // someone else replaced it first
    const staged = `${ours}.r`;
    await link(ours, staged);
    await rename(staged, path);
    return true;
  } finally {
    await unlinkIfTag(claim, me.nonce);
  }
}

/**
 * An exclusive lock file beside the journal. A lock left by a holder that is gone (kill -9, power
 * loss, a restarted container) is taken over; two processes racing to take over the same one never
 * both win. While held, its file is touched every LOCK_HEARTBEAT_MS. Release removes the lock only
 * while it is ours.
 */
export interface LockWait {
  /** called once, when the lock is first found held by a live process */
  onWait: (holder: { pid: number; host: string }) => void;
  signal?: AbortSignal;
}

/** Touches the lock file only if it is still ours, through one open descriptor: a lock replaced between the look and the touch is never touched. */
async function beat(lockPath: string, nonce: string): Promise<boolean> {
  const fh = await open(lockPath, 'r');
  try {
    const info = JSON.parse(await fh.readFile('utf8')) as Partial<LockInfo>;
    if (info.nonce !== nonce) return false;
    const now = new Date();
    await fh.utimes(now, now);
    return true;
  } finally {
    await fh.close();
  }
}

/**
 * `wait`: a lock held by a live process is waited for (polled every LOCK_HEARTBEAT_MS) instead of
 * refused, for work a scheduler may run twice at once; the wait ends with UPLOAD_LOCKED only when
 * the holder's heartbeat has been silent for 3 × LOCK_STALE_MS (another host that died holding it).
 */
export async function acquireLock(journalPath: string, context: ErrorContext, what: LockedWork = 'upload', wait?: LockWait): Promise<() => Promise<void>> {
  const lockPath = `${journalPath}.lock`;
  await prepareStateDir(join(lockPath, '..'));
  const me: LockInfo = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), nonce: randomBytes(12).toString('hex'), ...(BOOT_ID ? { bootId: BOOT_ID } : {}), ...(PID_NS ? { pidNs: PID_NS } : {}) };
  const ours = `${lockPath}.new-${me.nonce}`;
  mine.add(me.nonce);
  try {
    const fh = await open(ours, 'wx', 0o600);
    try {
      await fh.writeFile(JSON.stringify(me));
    } finally {
      await fh.close();
    }
  } catch (err) {
    mine.delete(me.nonce);
    await rm(ours, { force: true }).catch(() => undefined);
    throw new StateUnwritableError(join(lockPath, '..'), err, context);
  }
  const held = () => {
    // Touched only while it is still ours: a holder that was paused past LOCK_STALE_MS and lost the
    // lock must not keep its new holder's file looking alive for it.
    const timer = setInterval(() => {
      void beat(lockPath, me.nonce)
        .then((ours) => ours || clearInterval(timer))
        .catch(() => undefined);
    }, LOCK_HEARTBEAT_MS);
    timer.unref();
    return once(async () => {
      clearInterval(timer);
      await unlinkIfTag(lockPath, me.nonce);
      mine.delete(me.nonce);
    });
  };
  let waited = false;
  try {
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        await link(ours, lockPath);
        return held();
      } catch (err) {
        if (errCode(err) !== 'EEXIST') throw err;
      }
      const holder = await readHolder(lockPath);
      if (!holder) continue; // released in between
      let verdict = judge(holder, me);
      if (verdict === 'watch') verdict = await watch(lockPath, holder, me);
      const who = holder.info ? { pid: holder.info.pid, host: holder.info.host } : { pid: -1, host: 'unknown (unreadable lock file)' };
      if (verdict === 'live' && wait && Date.now() - holder.mtimeMs <= 3 * LOCK_STALE_MS) {
        if (!waited) wait.onWait(who);
        waited = true;
        wait.signal?.throwIfAborted();
        await sleep(LOCK_HEARTBEAT_MS, undefined, wait.signal ? { signal: wait.signal } : {}).catch((err) => {
          throw wait.signal?.reason ?? err;
        });
        attempt--;
        continue;
      }
      if (verdict === 'live') {
        throw new UploadLockedError(lockPath, holder.info ? { pid: holder.info.pid, host: holder.info.host } : { pid: -1, host: 'unknown (unreadable lock file)' }, { ...context, journalPath }, what);
      }
      if (await replaceStale(lockPath, holder, ours, me, 0)) return held();
      await new Promise((r) => setTimeout(r, 5 + attempt * 5)); // another process is mid-takeover
    }
    throw new UploadLockedError(lockPath, { pid: -1, host: 'unknown (takeover kept racing)' }, { ...context, journalPath }, what);
  } catch (err) {
    mine.delete(me.nonce);
    throw err;
  } finally {
    await rm(ours, { force: true });
  }
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined;
  return () => (p ??= fn());
}
