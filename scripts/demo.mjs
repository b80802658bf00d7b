// npm run demo: the first five minutes of partwise on the local S3 server.
// Makes a large file, starts an upload, interrupts it part-way (as Ctrl-C would), resumes it
// (the verified parts are skipped), and verifies the object against the file without downloading it.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

// The SDK's notice about its future Node requirement is noise here.
process.removeAllListeners('warning');

const root = fileURLToPath(new URL('..', import.meta.url));
const env = { ...process.env };
for (const line of readFileSync(`${root}.local-s3/env`, 'utf8').split('\n')) {
  const m = /^export ([A-Z_]+)=(.*)$/.exec(line);
  if (m) env[m[1]] = m[2];
}
env.PARTWISE_STATE_DIR ??= `${root}.local-s3/demo-state`;
const size = Number(process.env.PARTWISE_DEMO_MIB ?? 512) * 1024 * 1024;
const dir = `${root}.local-s3/demo`;
const file = `${dir}/backup.bin`;
const bucket = 'partwise-demo';
const dest = `s3://${bucket}/backups/backup.bin`;
const bin = `${root}dist/src/bin.js`;
const say = (s) => process.stdout.write(`\n\x1b[1m== ${s}\x1b[0m\n`);

await mkdir(dir, { recursive: true });
if (!existsSync(file) || (await stat(file)).size !== size) {
  say(`making a ${size / 1024 / 1024} MiB test file: ${file}`);
  const fh = await open(file, 'w');
  for (let off = 0; off < size; off += 16 * 1024 * 1024) await fh.write(randomBytes(Math.min(16 * 1024 * 1024, size - off)));
  await fh.close();
}
const s3 = new S3Client({ forcePathStyle: true, endpoint: env.AWS_ENDPOINT_URL, region: env.AWS_REGION, credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY } });
await s3.send(new CreateBucketCommand({ Bucket: bucket })).catch((e) => {
  if (e.name !== 'BucketAlreadyOwnedByYou' && e.name !== 'BucketAlreadyExists') throw e;
});

const run = (args, opts = {}) => spawn(process.execPath, [bin, ...args], { env, stdio: 'inherit', ...opts });
const exit = (child) => new Promise((resolve) => child.on('exit', (code) => resolve(code)));

const parts = Math.ceil(size / (8 * 1024 * 1024));
const stopAt = Math.max(1, Math.floor(parts * 0.6));
say(`partwise upload ${file} ${dest} --part-size 8MiB --fresh   (interrupted after ${stopAt} of ${parts} parts)`);
const first = run(['upload', file, dest, '--part-size', '8MiB', '--concurrency', '2', '--fresh', '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
let done = 0;
for await (const line of createInterface({ input: first.stdout })) {
  const e = JSON.parse(line);
  if (e.event === 'part-done' && ++done === stopAt) {
    process.stdout.write(`   ${done} parts acknowledged; sending SIGINT, as Ctrl-C would\n`);
    first.kill('SIGINT');
  }
}
const firstCode = await exit(first);
process.stdout.write(`   exit code ${firstCode} (130: interrupted, resumable)\n`);
if (firstCode !== 130) process.exit(1);

say(`partwise status ${file} ${dest}   (what a resume would do)`);
if ((await exit(run(['status', file, dest]))) !== 0) process.exit(1);

say(`partwise upload ${file} ${dest}   (the same command again: verify, skip, send the rest)`);
if ((await exit(run(['upload', file, dest, '--part-size', '8MiB', '--concurrency', '2'])) !== 0)) process.exit(1);

say(`partwise verify ${file} ${dest}   (no download)`);
process.exit(await exit(run(['verify', file, dest])));
