import assert from 'node:assert/strict';
import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { StateUnwritableError } from '../src/core/errors.ts';
import { JobJournal, readJobState, type DoneRecord, type JournalFiles } from '../src/local/job-journal.ts';
import { tempDir } from './helpers/s3.ts';

const rec = (key: string): DoneRecord => ({ key, file: `/src/${key}`, size: 1, mtimeMs: 1, ctimeMs: 1, etag: 'e' });

test('job journal: a record synced in one batch stays reported synced when a later batch fails; the next batch is written on a line of its own', async () => {
  const path = join(await tempDir(), 'jobs', 'j.jsonl');
  let opens = 0;
  // The third open is the second batch's (the first is open(), the second the first batch's): its
  // write stops after a few bytes, as a full disk or an I/O error leaves it.
  const files: JournalFiles = {
    mkdir,
    open: (async (...args: Parameters<typeof open>) => {
      const fh = await open(...args);
      if (++opens !== 3) return fh;
      return {
        writeFile: async (text: string) => {
          await fh.writeFile(text.slice(0, 10));
          throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
        },
        datasync: () => fh.datasync(),
        close: () => fh.close(),
      };
    }) as unknown as typeof open,
  };
  const j = new JobJournal(path, files);
  await j.open();
  const first = j.append(rec('a'));
  // The first batch is taken on the next turn; what is appended after that goes in a second batch.
  await new Promise((resolve) => setImmediate(resolve));
  const second = j.append(rec('b'));
  const [a, b] = await Promise.allSettled([first, second]);
  assert.equal(a.status, 'fulfilled', 'the first batch was synced: its record is not reported failed');
  assert.equal(b.status, 'rejected');
  assert.ok((b as PromiseRejectedResult).reason instanceof StateUnwritableError);
  assert.equal(opens, 3);
  await j.append(rec('c'));
  assert.deepEqual([...(await readJobState(path)).done.keys()].sort(), ['a', 'c']);
});
