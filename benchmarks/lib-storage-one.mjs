// @aws-sdk/lib-storage as its users run it: a stream body, the given part size and queue size.
// argv: file bucket key partMiB concurrency default|when-required
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createReadStream } from 'node:fs';

const [file, bucket, key, partMiB, conc, mode] = process.argv.slice(2);
const client = new S3Client({ forcePathStyle: true, ...(mode === 'when-required' ? { requestChecksumCalculation: 'WHEN_REQUIRED' } : {}) });
const up = new Upload({ client, params: { Bucket: bucket, Key: key, Body: createReadStream(file) }, partSize: Number(partMiB) * 1024 * 1024, queueSize: Number(conc) });
const out = await up.done();
process.stdout.write(JSON.stringify({ etag: out.ETag }) + '\n');
