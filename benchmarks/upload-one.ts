/**
 * One upload in a fresh process, so CPU time and peak RSS belong to that upload alone.
 * Prints one JSON line: { ms, cpuMs, maxRssMiB, etag }.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { Upload as LibUpload } from '@aws-sdk/lib-storage';
import { createReadStream } from 'node:fs';
import { createUpload } from '../src/index.ts';
import { loadS3Env } from '../test/helpers/s3.ts';

loadS3Env();
const [tool, file, bucket, key, partMiB, conc, stateDir] = process.argv.slice(2) as [string, string, string, string, string, string, string];
const partSize = Number(partMiB) * 1024 * 1024;
const concurrency = Number(conc);
const t0 = performance.now();
let etag = '';
if (tool.startsWith('partwise')) {
  const checksumAlgorithm = tool === 'partwise-none' ? 'none' : tool === 'partwise-crc64nvme' ? 'CRC64NVME' : 'CRC32C';
  const r = await createUpload({ file, bucket, key, partSize, concurrency, stateDir, checksumAlgorithm }).done();
  etag = r.etag;
} else {
  // lib-storage, as its users run it: a stream body, the same part size and concurrency.
  const client = new S3Client({ forcePathStyle: true, ...(tool === 'lib-storage-default' ? {} : { requestChecksumCalculation: 'WHEN_REQUIRED' as const }) });
  const up = new LibUpload({ client, params: { Bucket: bucket, Key: key, Body: createReadStream(file) }, partSize, queueSize: concurrency });
  const out = await up.done();
  etag = String(out.ETag ?? '');
}
const ms = performance.now() - t0;
const u = process.resourceUsage();
process.stdout.write(JSON.stringify({ ms, cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000, maxRssMiB: u.maxRSS / 1024, etag }) + '\n');
