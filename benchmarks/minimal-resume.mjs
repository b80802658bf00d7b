/**
 * The least a verifying resume can do on this stack (Node, @aws-sdk/client-s3, @node-rs/crc32,
 * hash threads: one fewer than the cores), as a floor for partwise's own resume in section 3. It is given what a
 * real client cannot know: exactly which parts the server holds (job.held, read from the server
 * after the kill), so it sends the missing parts as soon as the SDK is loaded, without waiting for
 * the listing. It keeps only the work no verifying client can skip: start, hash every held part
 * from the file (CRC32C) and compare it with the server's listing, send the missing parts with
 * their CRC32C, Complete. No journal, lock, events, retries, HEAD or checks of its own.
 *   node benchmarks/minimal-resume.mjs job.json   (the endpoint and keys from the AWS_* environment)
 */
import { openSync, readFileSync, readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const partCount = Math.ceil(job.size / job.partSize);
const rangeOf = (n) => [(n - 1) * job.partSize, Math.min(job.partSize, job.size - (n - 1) * job.partSize)];

// Hashing first: it needs nothing from the SDK, so it runs while the SDK loads. One thread fewer
// than the cores (at least one): the main thread sends and the gateway shares the cores, and on 2
// cores one hash thread finished sooner than two (benchmarks/RESULTS.md, section 3).
const next = new Int32Array(new SharedArrayBuffer(4));
const hashed = Promise.all(
  Array.from({ length: Math.max(1, availableParallelism() - 1) }, () => {
    const w = new Worker(new URL('./minimal-resume-worker.cjs', import.meta.url), { workerData: { file: job.file, parts: job.held, partSize: job.partSize, size: job.size, next } });
    return new Promise((resolve, reject) => (w.once('message', resolve), w.once('error', reject)));
  }),
).then((all) => Object.assign({}, ...all));

const { S3Client, ListPartsCommand, UploadPartCommand, CompleteMultipartUploadCommand } = await import('@aws-sdk/client-s3');
const { crc32c } = await import('@node-rs/crc32');
const s3 = new S3Client({ forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED', maxAttempts: 1 });
const upload = { Bucket: job.bucket, Key: job.key, UploadId: job.uploadId };
const listed = s3.send(new ListPartsCommand({ ...upload, MaxParts: 10000 }));
const held = new Set(job.held);
const missing = [];
for (let n = 1; n <= partCount; n++) if (!held.has(n)) missing.push(n);

const fd = openSync(job.file, 'r');
const sent = new Map();
let i = 0;
await Promise.all(
  Array.from({ length: job.concurrency }, async () => {
    const buf = Buffer.allocUnsafe(job.partSize);
    for (let n = missing[i++]; n !== undefined; n = missing[i++]) {
      const [offset, length] = rangeOf(n);
      const body = buf.subarray(0, readSync(fd, buf, 0, length, offset));
      const crc = Buffer.alloc(4);
      crc.writeUInt32BE(crc32c(body) >>> 0);
      // A stream, as partwise sends it: a Buffer body makes the SDK sign the payload (a SHA-256 of it).
      const slices = function* () {
        for (let o = 0; o < length; o += 1 << 20) yield body.subarray(o, Math.min(length, o + (1 << 20)));
      };
      const r = await s3.send(new UploadPartCommand({ ...upload, PartNumber: n, Body: Readable.from(slices()), ContentLength: length, ChecksumAlgorithm: 'CRC32C', ChecksumCRC32C: crc.toString('base64') }));
      sent.set(n, { ETag: r.ETag, ChecksumCRC32C: r.ChecksumCRC32C });
    }
  }),
);

const [digests, list] = await Promise.all([hashed, listed]);
const onServer = new Map((list.Parts ?? []).map((p) => [p.PartNumber, p]));
for (const n of job.held) {
  if (onServer.get(n)?.ChecksumCRC32C !== digests[n]) throw new Error(`part ${n}: the server's CRC32C does not match the file's`);
}
const Parts = [];
for (let n = 1; n <= partCount; n++) {
  // What this run sent wins: a part in flight at the kill may have landed after job.held was read.
  const p = sent.get(n) ?? onServer.get(n);
  Parts.push({ PartNumber: n, ETag: p.ETag, ChecksumCRC32C: p.ChecksumCRC32C });
}
await s3.send(new CompleteMultipartUploadCommand({ ...upload, MultipartUpload: { Parts } }));
console.log(JSON.stringify({ event: 'complete', bytesSent: missing.reduce((a, n) => a + rangeOf(n)[1], 0), partsVerified: job.held.length }));
