import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { JournalCorruptError, UploadLockedError } from '../src/core/errors.ts';
import { acquireLock } from '../src/local/lock.ts';
import { JOURNAL_SCHEMA, JournalWriter, journalPathFor, logLine, readJournal, removeStaleTemps, writeJournalAtomic, type JournalData } from '../src/local/journal.ts';
import { tempDir } from './helpers/s3.ts';

function sample(uploadId = 'up-1', parts = 0): JournalData {
  return {
    schema: JOURNAL_SCHEMA,
    bucket: 'b',
    key: 'k',
    uploadId,
    endpoint: 'http://127.0.0.1:7490',
    partSize: 5 * 1024 * 1024,
    partCount: 3,
    checksumAlgorithm: 'CRC32C',
    checksumType: 'FULL_OBJECT',
    etagIsMd5: true,
    source: { path: '/x', size: 11, mtimeMs: 1, ctimeMs: 1, ino: 2, dev: 3 },
    sseCustomerKeyMd5: null,
    createdAt: 'now',
    updatedAt: 'now',
    parts: Array.from({ length: parts }, (_, i) => ({ partNumber: i + 1, size: 5, etag: `e${i}`, md5: `m${i}` })),
  };
}

test('journal: written atomically with mode 0600, read back equal', async () => {
  const dir = await tempDir();
  const p = journalPathFor(join(dir, 'state'), { endpoint: 'e', bucket: 'b', key: 'k', sourcePath: '/x' });
  await writeJournalAtomic(p, sample('u', 2));
  assert.deepEqual(await readJournal(p), sample('u', 2));
  assert.equal((await stat(p)).mode & 0o777, 0o600);
  assert.equal((await stat(join(dir, 'state'))).mode & 0o777, 0o700);
  assert.deepEqual((await readdir(join(dir, 'state'))).filter((n) => n.includes('.tmp-')), [], 'no temp file left');
});

test('journal: a torn temp file from a crashed write never replaces the good journal', async () => {
  const dir = await tempDir();
  const p = join(dir, 'j.json');
  await writeJournalAtomic(p, sample('good', 1));
  const good = await readFile(p, 'utf8');
  // A writer killed after writing half its temp file, before the rename:
  const torn = JSON.stringify(sample('newer', 2)).slice(0, 40);
  await writeFile(`${p}.tmp-99999-abcdef`, torn);
  assert.equal((await readJournal(p))!.uploadId, 'good');
  assert.equal(await readFile(p, 'utf8'), good);
  await removeStaleTemps(p);
  assert.deepEqual(await readdir(dir), ['j.json']);
});

test('journal: a process killed in the middle of a write loop leaves a valid journal', async () => {
  const dir = await tempDir();
  const p = join(dir, 'j.json');
  const script = `
    import { writeJournalAtomic } from ${JSON.stringify(new URL('../src/local/journal.ts', import.meta.url).href)};
    const base = ${JSON.stringify(sample('x'))};
    for (let i = 0; ; i++) {
      await writeJournalAtomic(${JSON.stringify(p)}, { ...base, uploadId: 'v' + i, parts: Array.from({ length: i % 50 }, (_, k) => ({ partNumber: k + 1, size: 5, etag: 'e', md5: 'm' })) });
      if (i === 20) process.stdout.write('writing');
    }
  `;
  // SIGKILL at some instant inside a loop of back-to-back journal writes, several times.
  for (let round = 0; round < 3; round++) {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const first = await Promise.race([once(child.stdout!, 'data').then(() => 'data'), once(child, 'exit').then(() => 'exit')]);
    assert.equal(first, 'data', 'the writer child started');
    await new Promise((r) => setTimeout(r, 50 + round * 37));
    child.kill('SIGKILL');
    await once(child, 'exit');
    const j = await readJournal(p);
    assert.ok(j, 'a journal exists');
    assert.match(j.uploadId, /^v\d+$/);
    assert.ok(Number(j.uploadId.slice(1)) >= 20);
    assert.equal(j.parts.length, Number(j.uploadId.slice(1)) % 50);
  }
});

test('journal: garbage and unknown schemas are typed errors', async () => {
  const dir = await tempDir();
  const p = join(dir, 'j.json');
  await writeFile(p, '{"schema":1,"bucket":');
  await assert.rejects(readJournal(p), JournalCorruptError);
  await writeFile(p, JSON.stringify({ ...sample(), schema: 99 }));
  await assert.rejects(readJournal(p), (e: unknown) => e instanceof JournalCorruptError && e.code === 'JOURNAL_CORRUPT');
  // A schema-1 journal (no ctime in its fingerprint) could not catch a rewrite that kept mtime.
  await writeFile(p, JSON.stringify({ ...sample(), schema: 1 }));
  await assert.rejects(readJournal(p), JournalCorruptError);
  const { ctimeMs: _dropped, ...noCtime } = sample().source;
  await writeFile(p, JSON.stringify({ ...sample(), source: noCtime }));
  await assert.rejects(readJournal(p), (e: unknown) => e instanceof JournalCorruptError && /fingerprint/.test(e.message));
  assert.equal(await readJournal(join(dir, 'absent.json')), undefined);
});

const part = (n: number, etag = `e${n}`) => ({ partNumber: n, size: 5, etag, md5: `m${n}` });

test('part log: a burst of records is appended (coalesced), replayed over the journal, and compacted by the next full write', async () => {
  const dir = await tempDir();
  const p = join(dir, 'j.json');
  await writeJournalAtomic(p, sample('w', 0));
  const w = new JournalWriter(p, { bucket: 'b', key: 'k', uploadId: 'w' });
  await Promise.all(Array.from({ length: 20 }, (_, i) => w.record(part(i + 1), true)));
  await w.flush();
  const j = (await readJournal(p))!;
  assert.deepEqual(j.parts.map((x) => x.partNumber), Array.from({ length: 20 }, (_, i) => i + 1));
  assert.equal((await stat(`${p}.log`)).mode & 0o777, 0o600);
  // A part sent again is recorded again: the latest record wins.
  await w.record(part(3, 'again'), false);
  const k = (await readJournal(p))!;
  assert.equal(k.parts.find((x) => x.partNumber === 3)!.etag, 'again');
  assert.equal(k.etagIsMd5, false, 'a record can only turn ETag trust off');
  await writeJournalAtomic(p, k);
  assert.deepEqual((await readdir(dir)).sort(), ['j.json'], 'compaction empties the log');
  assert.deepEqual(await readJournal(p), k);
});

test('part log: a torn last line (a crash mid-append) is ignored; records of another upload are ignored', async () => {
  const dir = await tempDir();
  const p = join(dir, 'j.json');
  await writeJournalAtomic(p, sample('w', 0));
  const lines = [logLine({ u: 'w', part: part(1), etagIsMd5: true }), logLine({ u: 'other', part: part(2), etagIsMd5: false }), logLine({ u: 'w', part: part(3), etagIsMd5: true })];
  const torn = logLine({ u: 'w', part: part(4), etagIsMd5: true }).slice(0, 30);
  await writeFile(`${p}.log`, lines.join('') + torn);
  const j = (await readJournal(p))!;
  assert.deepEqual(j.parts.map((x) => x.partNumber), [1, 3]);
  assert.equal(j.etagIsMd5, true);
  // A line altered on disk (its hash no longer matches) ends the replay there.
  await writeFile(`${p}.log`, lines[0]! + lines[2]!.replace('"m3"', '"mX"'));
  assert.deepEqual((await readJournal(p))!.parts.map((x) => x.partNumber), [1]);
});

test('part log: a process killed in the middle of appending leaves a readable journal with a prefix of the parts', async () => {
  const dir = await tempDir();
  const p = join(dir, 'j.json');
  await writeJournalAtomic(p, sample('k', 0));
  const script = `
    import { JournalWriter } from ${JSON.stringify(new URL('../src/local/journal.ts', import.meta.url).href)};
    const w = new JournalWriter(${JSON.stringify(p)}, { bucket: 'b', key: 'k', uploadId: 'k' });
    for (let n = 1; ; n++) {
      await w.record({ partNumber: n, size: 5, etag: 'e' + n, md5: 'm' + n }, true);
      if (n === 20) process.stdout.write('writing');
    }
  `;
  for (let round = 0; round < 3; round++) {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(child.stdout!, 'data');
    await new Promise((r) => setTimeout(r, 30 + round * 41));
    child.kill('SIGKILL');
    await once(child, 'exit');
    const j = (await readJournal(p))!;
    const numbers = j.parts.map((x) => x.partNumber);
    assert.ok(numbers.length >= 20);
    assert.deepEqual(numbers, Array.from({ length: numbers.length }, (_, i) => i + 1), 'a prefix, no hole');
    await writeJournalAtomic(p, sample('k', 0)); // the next round starts from a compacted journal
  }
});

test('part log: recording 10,000 parts costs the same per part, and writes a few MiB in all (not O(parts²))', async () => {
  const dir = await tempDir();
  const p = join(dir, 'j.json');
  await writeJournalAtomic(p, { ...sample('big', 0), partCount: 10_000 });
  const w = new JournalWriter(p, { bucket: 'b', key: 'k', uploadId: 'big' });
  // What the process wrote, whatever way (the kernel's count of bytes passed to write calls): a
  // log rewritten whole per part would write gigabytes and still end the same size.
  const wrote = () => Number(/^wchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))![1]);
  const before = wrote();
  for (let n = 1; n <= 10_000; n++) await w.record({ partNumber: n, size: 65536, etag: 'd41d8cd98f00b204e9800998ecf8427e', md5: 'd41d8cd98f00b204e9800998ecf8427e', checksum: 'AAAAAA==' }, true);
  const written = wrote() - before;
  const bytes = (await stat(`${p}.log`)).size;
  assert.ok(bytes < 4 * 1024 * 1024, `${bytes} bytes in the log for 10,000 parts`);
  assert.ok(written < 2 * bytes + 1024 * 1024, `${written} bytes written for a ${bytes}-byte log`);
  assert.equal((await readJournal(p))!.parts.length, 10_000);
});

test('lock: a second holder is refused; a lock left by a dead process is taken over', async () => {
  const dir = await tempDir();
  const p = join(dir, 'j.json');
  const release = await acquireLock(p, {});
  await assert.rejects(acquireLock(p, {}), (e: unknown) => e instanceof UploadLockedError && e.holder.pid === process.pid);
  await release();
  const again = await acquireLock(p, {});
  await again();

  // kill -9 leaves its lock behind; find a PID that is surely dead
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
  await writeFile(`${p}.lock`, JSON.stringify({ pid: Number(dead), host: hostname(), startedAt: 'then' }));
  const taken = await acquireLock(p, {});
  assert.equal(JSON.parse(await readFile(`${p}.lock`, 'utf8')).pid, process.pid);
  await taken();
});
