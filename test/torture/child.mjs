// One partwise upload in its own process, for the crash torture. Plain JavaScript on the built
// package (fast to start). Every part attempt is announced with a synchronous write *before* its
// request goes out, so the parent can bound what a kill costs. With `hangAt`, it announces that
// moment ("at <moment>") and, where the moment is a state rather than an instant, waits there.
import { writeSync } from 'node:fs';
import { SdkS3Port, Upload, createS3Client } from '../../dist/src/index.js';

const a = JSON.parse(process.env.PARTWISE_CHILD_ARGS);
const say = (line) => writeSync(1, `${line}\n`);
const hang = () => new Promise(() => undefined);
const inner = new SdkS3Port(createS3Client());
const s3 = Object.create(inner);
s3.createMultipartUpload = async (...args) => {
  const out = await inner.createMultipartUpload(...args);
  say(`created ${out.uploadId}`);
  if (a.hangAt === 'after-create') {
    say('at after-create');
    return hang();
  }
  return out;
};
// A kill at a random instant (0-200 ms after the plan) must land while the upload runs: each part
// waits 60 ms first, so the 10 parts at concurrency 3 take longer than that window on any machine
// (a fast one finished first, and the round proved nothing).
if (a.hangAt === 'random') {
  s3.uploadPart = async (...args) => {
    await new Promise((r) => setTimeout(r, 60));
    return inner.uploadPart(...args);
  };
}
s3.completeMultipartUpload = async (...args) => {
  if (a.hangAt === 'complete-in-flight') {
    const call = inner.completeMultipartUpload(...args);
    say('at complete-in-flight');
    return call;
  }
  const out = await inner.completeMultipartUpload(...args);
  if (a.hangAt === 'after-complete') {
    say('at after-complete');
    return hang();
  }
  return out;
};
const up = new Upload({ s3, file: a.file, bucket: a.bucket, key: a.key, stateDir: a.stateDir, partSize: a.partSize, minPartSize: 1, concurrency: a.concurrency, discover: true });
let started = 0;
up.on('plan', (e) => say(`plan ${e.uploadId}`));
up.on('part-start', (e) => {
  say(`start ${e.partNumber} ${e.size}`);
  if (a.hangAt === 'mid-part' && ++started === 2) say('at mid-part');
});
up.on('phase', (e) => {
  if (e.phase === 'verify' && a.hangAt === 'verify') say('at verify');
});
try {
  await up.done();
  say('complete');
} catch (err) {
  say(`error ${err.code ?? ''} ${err.message}`);
  process.exitCode = 1;
}
