import assert from 'node:assert/strict';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createHasher, loadHashers } from '../src/core/checksums.ts';
import { digestFdRangeSync } from '../src/local/file-hashing.ts';
import { tempDir } from './helpers/s3.ts';

test('a range hash that fails mid-read gives its hasher back: WASM hashers (CRC64NVME) do not run out after failed reads', async () => {
  await loadHashers(['CRC64NVME', 'MD5']);
  const path = join(await tempDir(), 'short.bin');
  writeFileSync(path, Buffer.alloc(1000, 7));
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(4096);
  try {
    // Each asks for more than the file holds ("the file shrank"), in one synchronous run, as a
    // hash thread works through its queue; a hasher not given back would be lost each time.
    for (let i = 0; i < 8; i++) assert.throws(() => digestFdRangeSync(fd, 0, 2000, 'CRC64NVME', buf, undefined, false), /file shrank/);
    const d = digestFdRangeSync(fd, 0, 1000, 'CRC64NVME', buf, undefined, false);
    const h = createHasher('CRC64NVME');
    h.update(Buffer.alloc(1000, 7));
    assert.deepEqual(d.checksum, h.digest());
  } finally {
    closeSync(fd);
  }
});
