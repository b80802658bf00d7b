/**
 * Defect 2 of the engine issue: parts of 2 GiB or more aborted the process on Node 20 (a single
 * read of 2^31 bytes). Every part size S3 allows must work with memory bounded independent of the
 * part size: peak RSS ≤ 100 MiB + concurrency × min(part size, 64 MiB).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { GiB, MiB } from '../src/index.ts';
import { tempDir } from './helpers/s3.ts';

test('a 2 GiB part (sparse file, sink server checking Content-MD5) uploads in bounded memory, in a process of its own', async () => {
  const dir = await tempDir();
  const file = join(dir, 'sparse.bin');
  const size = 2 * GiB + 3 * MiB;
  const fh = await open(file, 'w');
  await fh.truncate(size); // sparse: no disk used, reads as zeros
  await fh.close();
  const concurrency = 2;
  const partSize = 2 * GiB;
  const r = spawnSync(process.execPath, ['--import', 'tsx', new URL('./fixtures/large-part-child.ts', import.meta.url).pathname], {
    env: { ...process.env, PARTWISE_CHILD_ARGS: JSON.stringify({ file, stateDir: dir, partSize, concurrency }) },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `exit ${r.status} signal ${r.signal}: ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.equal(out.partCount, 2);
  assert.equal(out.bytesSent, size);
  assert.equal(out.level, 'multipart-etag');
  const bound = 100 * MiB + concurrency * Math.min(partSize, 64 * MiB);
  assert.ok(out.maxRssBytes <= bound, `peak RSS ${(out.maxRssBytes / MiB).toFixed(0)} MiB > bound ${(bound / MiB).toFixed(0)} MiB`);
});

test('a folder job with 3 GiB parts: a 2 GiB+ file below the part size goes up as one PutObject, streamed from the file, in the same bounded memory', async () => {
  const dir = await tempDir();
  const data = join(dir, 'data');
  await mkdir(data);
  const file = join(data, 'sparse.bin');
  const size = 2 * GiB + 3 * MiB;
  const fh = await open(file, 'w');
  await fh.truncate(size);
  await fh.close();
  const concurrency = 2;
  const partSize = 3 * GiB;
  const r = spawnSync(process.execPath, ['--import', 'tsx', new URL('./fixtures/large-part-child.ts', import.meta.url).pathname], {
    env: { ...process.env, PARTWISE_CHILD_ARGS: JSON.stringify({ file, stateDir: join(dir, 'state'), partSize, concurrency, folder: true }) },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `exit ${r.status} signal ${r.signal}: ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.equal(out.failed, 0, JSON.stringify(out.outcomes));
  assert.equal(out.uploaded, 1);
  assert.equal(out.bytesSent, size);
  const bound = 100 * MiB + concurrency * Math.min(partSize, 64 * MiB);
  assert.ok(out.maxRssBytes <= bound, `peak RSS ${(out.maxRssBytes / MiB).toFixed(0)} MiB > bound ${(bound / MiB).toFixed(0)} MiB`);
});
