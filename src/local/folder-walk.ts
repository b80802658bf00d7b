/**
 * The tree walk of a folder job. Names are read as bytes, so an entry is never lost to a decoding
 * (a name that is not UTF-8 used to come back as a look-alike that does not exist, and was dropped
 * as "vanished"). Every entry met is accounted for in exactly one list: a regular file to send, a
 * name S3 cannot take as a key, a folder or entry that could not be read, an entry that is not a
 * regular file (symbolic links are not followed; sockets, FIFOs and devices are not read), or one
 * an exclude pattern matched (counted; a matching folder is not entered and counts once).
 */
import type { Dirent } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { SourceUnreadableError } from '../core/errors.ts';
import { shardOf } from '../core/shared-plan.ts';
import { globMatcher } from '../core/glob.ts';

export interface JobEntry {
  file: string;
  key: string;
}

/** S3's limit on a key's length, in bytes of UTF-8. */
export const S3_MAX_KEY_BYTES = 1024;

export interface FolderListing {
  /** regular files, keys = prefix + relative path with `/` separators */
  entries: JobEntry[];
  /** entries that are not regular files, listed by the rule above, with the reason */
  notRead: { path: string; why: string }[];
  /** names S3 cannot take as keys (not valid UTF-8, or a key over 1,024 bytes): refused by name */
  invalid: { path: string; key: string; why: string }[];
  /** entries that could not be read (a folder not listable, an entry that vanished or cannot be looked at) */
  unreadable: { path: string; key: string; cause: unknown }[];
  /** entries an exclude pattern matched */
  excluded: number;
  /** every entry the walk met: the sum of the five above */
  met: number;
}

/** A name's bytes as text: valid UTF-8 as itself, any other byte as \xNN (for messages, not a path). */
export function escapeName(b: Buffer): string {
  let out = '';
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    const n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (n > 0 && i + n <= b.length) {
      const seq = b.subarray(i, i + n);
      const text = seq.toString('utf8');
      if (Buffer.from(text, 'utf8').equals(seq)) {
        out += text;
        i += n;
        continue;
      }
    }
    out += `\\x${c.toString(16).padStart(2, '0')}`;
    i++;
  }
  return out;
}

/** Whether bytes are valid UTF-8 (decoding replaces what is not, so the round trip tells). */
export function isUtf8(b: Buffer): boolean {
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b);
}

/** Walks a folder by the rules above. An unreadable top folder is the job's failure (thrown). */
export async function listFolder(dir: string, prefix: string, exclude: readonly string[], opts: { shard?: { index: number; count: number } } = {}): Promise<FolderListing> {
  const root = resolve(dir);
  const excluded = globMatcher(exclude);
  const out: FolderListing = { entries: [], notRead: [], invalid: [], unreadable: [], excluded: 0, met: 0 };
  const base = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
  // A shard (one of N workers walking the same tree) accounts for the entries whose relative path
  // hashes to it: every entry in exactly one shard, folders walked by all.
  const shard = opts.shard;
  const mine = (relPath: string) => !shard || shardOf(relPath, shard.count) === shard.index;
  /** `d`: the folder's path; `rel`: its path relative to the root ('' for the root), both valid UTF-8. */
  const walk = async (d: string, rel: string): Promise<void> => {
    let dirents: Dirent<Buffer>[];
    try {
      dirents = await readdir(d, { encoding: 'buffer', withFileTypes: true });
    } catch (err) {
      if (rel === '') throw new SourceUnreadableError(dir, err);
      if (mine(rel)) out.unreadable.push({ path: rel, key: `${base}${rel}/`, cause: err });
      return;
    }
    dirents.sort((a, b) => Buffer.compare(a.name, b.name));
    for (const dirent of dirents) {
      const name = dirent.name;
      const valid = isUtf8(name);
      // Patterns see the name as decoded (an invalid byte as U+FFFD, which `?` matches).
      const text = valid ? name.toString('utf8') : escapeName(name);
      const relPath = rel ? `${rel}/${text}` : text;
      const full = valid ? `${d}/${text}` : Buffer.concat([Buffer.from(`${d}/`, 'utf8'), name]);
      // The kind from the listing itself where the file system gives it, so an excluded entry is
      // never looked at (a temp file gone since the listing, or in a folder that cannot be searched).
      let kind: Pick<Dirent, 'isDirectory' | 'isFile' | 'isSymbolicLink'> = dirent;
      if (!dirent.isDirectory() && !dirent.isFile() && !dirent.isSymbolicLink() && !dirent.isFIFO() && !dirent.isSocket() && !dirent.isBlockDevice() && !dirent.isCharacterDevice()) {
        try {
          kind = await lstat(full); // a file system that does not say (DT_UNKNOWN)
        } catch (err) {
          if (mine(relPath)) out.unreadable.push({ path: relPath, key: base + relPath, cause: err });
          continue;
        }
      }
      const isDir = kind.isDirectory();
      const lossy = name.toString('utf8');
      if (excluded(rel ? `${rel}/${lossy}` : lossy, isDir)) {
        if (mine(relPath)) out.excluded++;
        continue;
      }
      if (isDir && valid && !kind.isSymbolicLink()) {
        await walk(`${d}/${text}`, relPath);
        continue;
      }
      if (!mine(relPath)) continue;
      if (!valid) {
        out.invalid.push({ path: relPath, key: base + relPath + (isDir ? '/' : ''), why: `its name is not valid UTF-8 (S3 keys are UTF-8)${isDir ? '; nothing in this folder was read' : ''}` });
        continue;
      }
      const key = base + relPath;
      if (kind.isSymbolicLink()) out.notRead.push({ path: relPath, why: 'symbolic link (not followed)' });
      else if (!kind.isFile()) out.notRead.push({ path: relPath, why: 'special file (socket, FIFO or device)' });
      else if (Buffer.byteLength(key) > S3_MAX_KEY_BYTES) out.invalid.push({ path: relPath, key, why: `its key would be ${Buffer.byteLength(key)} bytes; S3 allows ${S3_MAX_KEY_BYTES}` });
      else out.entries.push({ file: `${d}/${text}`, key });
    }
  };
  await walk(root, '');
  // A folder that was walked is not an entry of its own (what is in it is); one that could not be is.
  out.met = out.entries.length + out.notRead.length + out.invalid.length + out.unreadable.length + out.excluded;
  return out;
}
