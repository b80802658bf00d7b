// One partwise upload (the built library) that writes a V8 heap snapshot and its memoryUsage()
// once half the file is acknowledged: where a running upload's memory is.
// argv: file bucket key partMiB concurrency stateDir snapshotPath
import { writeHeapSnapshot } from 'node:v8';
import { createUpload } from '../dist/src/index.js';

const [file, bucket, key, partMiB, conc, stateDir, snap] = process.argv.slice(2);
const up = createUpload({ file, bucket, key, partSize: Number(partMiB) * 2 ** 20, concurrency: Number(conc), stateDir });
let usage;
up.on('progress', (p) => {
  if (usage || p.fractionDone < 0.5) return;
  usage = process.memoryUsage();
  writeHeapSnapshot(snap);
});
await up.done();
process.stdout.write(JSON.stringify({ usage, maxRssMiB: process.resourceUsage().maxRSS / 1024 }) + '\n');
