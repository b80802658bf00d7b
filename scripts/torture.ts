// npm run torture [-- --rounds N]: the crash torture against the local RADOS Gateway. Prints the
// figures and keeps the latest in RELIABILITY.md; exits 1 if any round lost data or left a mess.
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { figures, renderFigures, runTorture, torturePlan } from '../test/torture/run.ts';
import { makeBucket, plainClient } from '../test/helpers/s3.ts';

const { values } = parseArgs({ options: { rounds: { type: 'string' }, seed: { type: 'string' } } });
const rounds = Number(values.rounds ?? 30);
const seed = Number(values.seed ?? Date.now() % 100_000);
const bucket = await makeBucket('pw-torture');
const t0 = Date.now();
const results = await runTorture({ client: plainClient(), bucket, plan: torturePlan(rounds, seed), seed, log: (l) => process.stdout.write(`${l}\n`) });
const f = figures(results);
const meta = `${new Date().toISOString()}, ${rounds} rounds (seed ${seed}), files of 10 parts of 1 MiB, concurrency 3, SIGKILL; ${((Date.now() - t0) / 1000).toFixed(0)} s on ${cpus().length} × ${cpus()[0]?.model ?? '?'}, Node ${process.version}, Ceph RGW 20 (local).`;
const table = renderFigures(f, meta);
process.stdout.write(`\n${table}\n`);
await writeFile(
  new URL('../RELIABILITY.md', import.meta.url),
  `# Reliability: crash torture\n\n\`npm run torture\` (${'`'}-- --rounds N${'`'} for more) uploads a multi-part file to the local RADOS Gateway, kills the uploading process with SIGKILL at a chosen moment (after CreateMultipartUpload but before the first journal write; with parts in flight; during a journal write, between its temp file and the rename; during the resume's verification; while Complete is in flight; after Complete landed but before the journal is removed; at a random instant), sometimes twice in a row, then reruns the same upload until it exits 0. Latest run:\n\n${table}\n`,
);
const bad = f.identical !== f.rounds || f.unreadableJournals || f.roundsOverBound || f.openUploadsLeft || f.errors.length;
process.exit(bad ? 1 : 0);
