// Hash thread of minimal-resume.mjs: CRC32C of whole parts, read in 4 MiB pieces, taken from a shared counter.
const { readSync, openSync } = require('node:fs');
const { parentPort, workerData } = require('node:worker_threads');
const { crc32c } = require('@node-rs/crc32');

const { file, parts, partSize, size, next } = workerData;
const fd = openSync(file, 'r');
const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
const out = {};
for (let i = Atomics.add(next, 0, 1); i < parts.length; i = Atomics.add(next, 0, 1)) {
  const n = parts[i];
  const end = Math.min(n * partSize, size);
  let crc = 0;
  for (let off = (n - 1) * partSize; off < end; ) {
    const got = readSync(fd, buf, 0, Math.min(buf.length, end - off), off);
    crc = crc32c(buf.subarray(0, got), crc);
    off += got;
  }
  const b = Buffer.alloc(4);
  b.writeUInt32BE(crc >>> 0);
  out[n] = b.toString('base64');
}
parentPort.postMessage(out);
