/**
 * npm run bench: prints tables and writes them to benchmarks/RESULTS.md, with benchmarks/chart.svg.
 * Against the local RGW, every client with the same part size and concurrency, rounds in
 * alternating order, medians with min–max, ratios from this run only.
 *   1. hash throughput on this machine (what each implementation does on one core)
 *   2. full upload of 1 GiB at (4, 16 MiB) and (8, 64 MiB): MB/s, client CPU-s/GiB, peak RSS
 *   3. resume after a kill at 50% and 90%: time to finish and bytes re-sent
 *   4. resume verification (`partwise status`) next to this machine's hashing limit
 *   5. 10,000 parts: per-1,000 time, journal bytes, ListParts requests on resume
 *   6. where a partwise upload's CPU and memory go (--cpu-prof, heap snapshot)
 *   7. a folder of many small files
 *   8. one object from N workers: aggregate rate against N × a per-worker cap; the cost of coordination
 *   9. a WAN through benchmarks/wan-proxy.mjs: every tool at its defaults against the link cap
 * Each upload runs as its users run it, in its own process, under GNU time.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { AbortMultipartUploadCommand, DeleteObjectCommand, DeleteObjectsCommand, ListMultipartUploadsCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { createCRC32 } from 'hash-wasm';
import { activeImplementations, createHasher, loadHashers } from '../src/core/checksums.ts';
import { createUpload } from '../src/index.ts';
import { journalBytesWritten } from '../src/local/journal.ts';
import { allParts, planParts } from '../src/core/planner.ts';
import { uploadThenPause } from '../test/helpers/pause.ts';
import { referenceDigest } from '../test/helpers/reference.ts';
import { countingClient, loadS3Env, makeBucket, plainClient, tempDir } from '../test/helpers/s3.ts';
import { chartSvg, type Panel } from './chart.ts';
import { eventTimeline, fmt, killAt, median, serverCpuS, serverListing, spread, timed, type Cost, type Moment } from './measure.ts';
import { summarizeCpu, summarizeHeap } from './profile-summary.ts';
import { makeTools, type Command, type Setting } from './tools.ts';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const out: string[] = [];
const print = (s = '') => {
  console.log(s);
  out.push(s);
};
const here = (p: string) => new URL(p, import.meta.url).pathname;

execFileSync('bash', [here('./setup-peers.sh')], { stdio: 'inherit' });
loadS3Env();
await loadHashers();
const uploadMiB = Number(process.env.BENCH_MIB ?? 1024);
const verifyMiB = Number(process.env.BENCH_VERIFY_MIB ?? 2048);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const work = await tempDir('partwise-bench-');
// The work folder holds GiBs of data and the peers' config (s3cmd's holds the secret key): gone even on failure.
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const stateDir = join(work, 'state');
const tools = makeTools(work, stateDir);
const tool = (name: string) => tools.find((t) => t.name === name)!;
const s3: S3Client = plainClient();
const bucket = await makeBucket('pw-bench');

// ------------------------------------------------------------------ versions
const req = createRequire(import.meta.url);
const version = (cmd: string, args: string[]) => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0]!.trim();
  } catch {
    return 'unknown';
  }
};
// The local server's chroot and its config inside it (scripts/s3-server.sh).
const CHROOT = '/var/lib/partwise/ceph-sid';
const CEPH_CONF = '/lab/partwise/ceph.conf';
const rgwVersion = version('chroot', [CHROOT, 'radosgw', '--version']);
print(`# partwise benchmarks`);
print();
print(`Run ${new Date().toISOString()} on ${cpus().length} × ${cpus()[0]?.model ?? '?'} (shared with the gateway), \`npm run bench\`.`);
print(`MB/s = 10^6 bytes/s; GB/s = 10^9 bytes/s. ${rounds} rounds in alternating order (A B C … C B A …); medians, with min–max in brackets.`);
print();
print(`| component | version |`);
print(`|---|---|`);
print(`| partwise | ${(JSON.parse(readFileSync(here('../package.json'), 'utf8')) as { version: string }).version} (built, \`node dist/src/bin.js\`), Node ${process.version} |`);
print(`| @aws-sdk/client-s3, @aws-sdk/lib-storage | ${(req('@aws-sdk/client-s3/package.json') as { version: string }).version}, ${(req('@aws-sdk/lib-storage/package.json') as { version: string }).version} |`);
print(`| aws-cli (Debian) | ${version('/usr/bin/aws', ['--version'])} |`);
print(`| rclone (Debian) | ${version('rclone', ['version'])} |`);
print(`| s3cmd (Debian) | ${version('s3cmd', ['--version'])} |`);
// The frontend's options change request latency (tcp_nodelay: ~40 ms per short XML response without it).
const frontends = (() => {
  try {
    return readFileSync(CHROOT + CEPH_CONF, 'utf8').match(/^rgw frontends = (.*)$/m)?.[1] ?? 'unknown';
  } catch {
    return 'unknown (not the local server)';
  }
})();
print(`| server | Ceph RADOS Gateway on 127.0.0.1 (memstore): ${rgwVersion}; \`rgw frontends = ${frontends}\` |`);
print();
const summaryAt = out.length; // the targets table goes here once measured

// ------------------------------------------------------------------ files
async function writeRandom(path: string, mib: number): Promise<void> {
  const fh = await open(path, 'w');
  for (let o = 0; o < mib; o += 16) await fh.write(randomBytes(16 * MiB));
  await fh.close();
}
const file = join(work, 'upload.bin');
const bigFile = join(work, 'verify.bin');
await writeRandom(file, uploadMiB);
await writeRandom(bigFile, verifyMiB);
const size = uploadMiB * MiB;

const gc = () => {
  try {
    execFileSync('chroot', [CHROOT, 'radosgw-admin', '-c', CEPH_CONF, 'gc', 'process', '--include-all'], { stdio: 'ignore' });
  } catch {
    /* not our local server: nothing to collect */
  }
};
/** The server holds a GiB per upload in memory: each object and any upload left open goes at once. */
async function cleanPrefix(prefix: string): Promise<void> {
  for (;;) {
    const l = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    const keys = (l.Contents ?? []).map((o) => ({ Key: o.Key! }));
    if (!keys.length) break;
    await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
  }
  gc();
}
async function clean(key: string): Promise<void> {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  const ups = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
  for (const u of ups.Uploads ?? []) if (u.Key === key) await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: u.UploadId! }));
  gc();
}
let seq = 0;
const freshKey = (name: string) => `b/${name.replace(/\W+/g, '-')}-${seq++}`;

// ------------------------------------------------------------------ 1. hashing
print(`## 1. Hash throughput, one core, 64 MiB in memory`);
print();
print(`| algorithm | implementation | MB/s | vs @aws-crypto / SDK JS |`);
print(`|---|---|---:|---:|`);
async function throughput(fn: (b: Buffer) => unknown, b: Buffer, runs = 5): Promise<number> {
  fn(b);
  const rates: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn(b);
    rates.push(b.length / 1e6 / ((performance.now() - t) / 1000));
  }
  return median(rates);
}
const buf = randomBytes(64 * MiB);
const small = buf.subarray(0, 16 * MiB);
const viaHasher = (alg: Parameters<typeof createHasher>[0]) => (b: Buffer) => {
  const h = createHasher(alg);
  for (let o = 0; o < b.length; o += MiB) h.update(b.subarray(o, o + MiB));
  return h.digest();
};
const wasmCrc32c = await createCRC32(0x82f63b78);
const ref = {
  SHA256: await throughput((b) => referenceDigest('SHA256', b), small, 3),
  CRC32C: await throughput((b) => referenceDigest('CRC32C', b), small, 3),
  CRC32: await throughput((b) => referenceDigest('CRC32', b), small, 3),
  CRC64NVME: await throughput((b) => referenceDigest('CRC64NVME', b), small, 3),
};
const crc32cRate = await throughput(viaHasher('CRC32C'), buf);
const hashRows: [string, string, number, number | undefined][] = [
  ['MD5', `${activeImplementations.MD5} (partwise)`, await throughput(viaHasher('MD5'), buf), undefined],
  ['SHA256', `${activeImplementations.SHA256} (partwise)`, await throughput(viaHasher('SHA256'), buf), ref.SHA256],
  ['SHA256', '@aws-crypto/sha256-js', ref.SHA256, ref.SHA256],
  ['CRC32C', `${activeImplementations.CRC32C} (partwise default)`, crc32cRate, ref.CRC32C],
  ['CRC32C', 'hash-wasm (fallback without the native addon)', await throughput((b) => (wasmCrc32c.init(), wasmCrc32c.update(b), wasmCrc32c.digest()), buf), ref.CRC32C],
  ['CRC32C', '@aws-crypto/crc32c', ref.CRC32C, ref.CRC32C],
  ['CRC32', `${activeImplementations.CRC32} (partwise)`, await throughput(viaHasher('CRC32'), buf), ref.CRC32],
  ['CRC32', '@aws-crypto/crc32', ref.CRC32, ref.CRC32],
  ['CRC64NVME', `${activeImplementations.CRC64NVME} (partwise)`, await throughput(viaHasher('CRC64NVME'), buf), ref.CRC64NVME],
  ['CRC64NVME', '@aws-sdk SDK Crc64NvmeJs', ref.CRC64NVME, ref.CRC64NVME],
];
for (const [a, impl, rate, r] of hashRows) print(`| ${a} | ${impl} | ${fmt(rate)} | ${r ? `${fmt(rate / r, 1)}×` : ''} |`);
print();
print(`CRC32C is the default: it is the fastest checksum S3 stores per part, ${fmt(crc32cRate / hashRows[8]![2], 1)}× CRC64NVME's best implementation here, and with the server's stored part checksums it is the evidence on its own (MD5 is then not computed).`);
print();

// ------------------------------------------------------------------ 2. full uploads
const settings: Setting[] = [
  { partMiB: 16, concurrency: 4 },
  { partMiB: 64, concurrency: 8 },
];
const uploaders = tools;
const full = new Map<string, Cost[]>();
const fullKey = (s: Setting, t: string) => `${s.concurrency}x${s.partMiB}/${t}`;
for (const s of settings) {
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 ? [...uploaders].reverse() : uploaders;
    for (const t of order) {
      const key = freshKey(t.name);
      const c = timed(t.upload(file, bucket, key, s), work);
      const list = full.get(fullKey(s, t.name)) ?? [];
      list.push(c);
      full.set(fullKey(s, t.name), list);
      await clean(key);
    }
  }
}
const peers = uploaders.filter((t) => !t.name.startsWith('partwise'));
const awsRss = (s: Setting) => Math.max(...full.get(fullKey(s, 'aws-cli'))!.map((c) => c.rssMiB));
const mbps = (c: Cost) => size / 1e6 / c.wallS;
const cpuPerGiB = (c: Cost) => c.cpuS / (size / GiB);
for (const s of settings) {
  print(`## 2. Full upload of ${uploadMiB} MiB: ${s.partMiB} MiB parts, concurrency ${s.concurrency}`);
  print();
  print(`Wall time includes process start. CPU-seconds and peak RSS are the client's own (GNU time); the gateway runs on the same ${cpus().length} cores, so MB/s mostly tracks total CPU.`);
  print();
  print(`| client | what it checks | MB/s | client CPU-s per GiB | peak RSS MiB |`);
  print(`|---|---|---:|---:|---:|`);
  for (const t of uploaders) {
    const xs = full.get(fullKey(s, t.name))!;
    print(`| ${t.name} | ${t.checks}${t.note ? `; ${t.note}` : ''} | ${spread(xs.map(mbps))} | ${spread(xs.map(cpuPerGiB), 2)} | ${fmt(Math.max(...xs.map((x) => x.rssMiB)))} |`);
  }
  print();
  print(`Memory target for partwise here: aws-cli's peak RSS in this run + 32 MiB = ${fmt(awsRss(s) + 32)} MiB (parts are not held: each request in flight reads through a 1 MiB arena, whatever the part size).`);
  print();
}
const med = (s: Setting, t: string, f: (c: Cost) => number) => median(full.get(fullKey(s, t))!.map(f));
const s0 = settings[0]!;

// 1 GiB parts: what holding a part would cost most. A file of 4 parts, partwise and aws-cli only.
const hugeMiB = Number(process.env.BENCH_HUGE_MIB ?? 4096);
const huge: Setting = { partMiB: 1024, concurrency: 4 };
const hugeRuns = new Map<string, Cost[]>();
{
  const hugeFile = join(work, 'huge.bin');
  await writeRandom(hugeFile, hugeMiB);
  const who = [tool('partwise'), tool('aws-cli')];
  for (let round = 0; round < rounds; round++) {
    for (const t of round % 2 ? [...who].reverse() : who) {
      const key = freshKey(`huge-${t.name}`);
      const c = timed(t.upload(hugeFile, bucket, key, huge), work);
      hugeRuns.set(t.name, [...(hugeRuns.get(t.name) ?? []), c]);
      await clean(key);
    }
  }
  rmSync(hugeFile, { force: true });
  print(`## 2. Full upload of ${fmt(hugeMiB)} MiB: 1 GiB parts, concurrency 4`);
  print();
  print(`| client | MB/s | client CPU-s per GiB | peak RSS MiB |`);
  print(`|---|---:|---:|---:|`);
  for (const t of who) {
    const xs = hugeRuns.get(t.name)!;
    print(`| ${t.name} | ${spread(xs.map((c) => (hugeMiB * MiB) / 1e6 / c.wallS))} | ${spread(xs.map((c) => c.cpuS / (hugeMiB / 1024)), 2)} | ${fmt(Math.max(...xs.map((x) => x.rssMiB)))} |`);
  }
  print();
}
const hugeRss = (name: string) => Math.max(...hugeRuns.get(name)!.map((c) => c.rssMiB));

// ------------------------------------------------------------------ 3. resume after a kill
interface ResumeRun {
  held: number;
  cost: Cost;
  resent: number;
  /** CPU-seconds the gateway used meanwhile */
  serverCpu: number;
}
/** partwise's own account of a resume (its --json complete line): engine time and the hashing phase. */
function engineTimes(stdout: string): { engineMs: number; hashMs: number; hashBytes: number; headStartBytes: number } | undefined {
  const last = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { durationMs?: number; reconcile?: { hashing?: { ms: number; bytes: number; headStartBytes: number } } };
  const h = last.reconcile?.hashing;
  return last.durationMs === undefined ? undefined : { engineMs: last.durationMs, hashMs: h?.ms ?? 0, hashBytes: h?.bytes ?? 0, headStartBytes: h?.headStartBytes ?? 0 };
}
const resumers = [tool('partwise'), tool('s3cmd')];
/**
 * The floor for partwise's resume: benchmarks/minimal-resume.mjs, the same stack doing only the
 * work no verifying resume can skip, told which parts the server holds. Killed as partwise is.
 */
const MINIMAL = 'minimal';
/** A resume run under GNU time, with the CPU the gateway used meanwhile. */
function timedWithGateway(c: Command): { cost: Cost; serverCpu: number } {
  const cpu0 = serverCpuS();
  const cost = timed(c, work);
  return { cost, serverCpu: serverCpuS() - cpu0 };
}
async function minimalResume(fraction: number): Promise<ResumeRun> {
  const key = freshKey('minimal-resume');
  try {
    const held = await killAt(tool('partwise').upload(file, bucket, key, s0), s3, bucket, key, size, fraction, s0.concurrency * s0.partMiB * MiB);
    const listing = await serverListing(s3, bucket, key);
    const job = join(work, 'minimal-job.json');
    writeFileSync(job, JSON.stringify({ file, bucket, key, uploadId: listing.uploadId, partSize: s0.partMiB * MiB, size, concurrency: s0.concurrency, held: listing.parts }));
    const { cost, serverCpu } = timedWithGateway({ cmd: process.execPath, args: [here('./minimal-resume.mjs'), job], env: process.env });
    const resent = (JSON.parse(cost.stdout.trim().split('\n').at(-1)!) as { bytesSent: number }).bytesSent;
    return { held, cost, resent, serverCpu };
  } finally {
    await clean(key);
  }
}
const resumeRuns = new Map<string, ResumeRun[]>();
const addRun = (k: string, r: ResumeRun) => resumeRuns.set(k, [...(resumeRuns.get(k) ?? []), r]);
for (const fraction of [0.5, 0.9]) {
  for (let round = 0; round < rounds; round++) {
    const names = [...resumers.map((t) => t.name), MINIMAL];
    for (const name of round % 2 ? names.reverse() : names) {
      if (name === MINIMAL) {
        addRun(`${fraction}/${MINIMAL}`, await minimalResume(fraction));
        continue;
      }
      const t = tool(name);
      const key = freshKey(`${t.name}-resume`);
      const inFlight = (t.name === 's3cmd' ? 1 : s0.concurrency) * s0.partMiB * MiB;
      const held = await killAt(t.upload(file, bucket, key, s0), s3, bucket, key, size, fraction, inFlight);
      const { cost, serverCpu } = timedWithGateway(t.resume!(file, bucket, key, s0));
      addRun(`${fraction}/${t.name}`, { held, cost, resent: t.resentBytes!(cost.stdout, cost.stderr, size, s0), serverCpu });
      await clean(key);
    }
  }
}
print(`## 3. Finishing after a SIGKILL at 50% and 90%, ${s0.partMiB} MiB parts, concurrency ${s0.concurrency}`);
print();
print(`The kill comes when ListParts shows the share less half of what the client has in flight; "server held" is what ListParts shows once the client is gone, the state the resume starts from.`);
print();
print(`"× full" divides the time to finish by the same client's own full-upload median from section 2 (same run). Clients without a resume start over: their time to finish is their full upload, and they send the whole file again.`);
print();
print(`"The least a verifying resume can do here" is \`benchmarks/minimal-resume.mjs\`, killed as partwise is: the same stack (Node, @aws-sdk/client-s3, @node-rs/crc32 on worker threads: one fewer than the cores, as one finished sooner than two here) doing only what no resume that verifies can skip: start, hash each part the server holds and compare it with the server's listing, send the missing parts with their CRC32C, Complete. It has no journal, lock, events, retries or HEAD, and it is told which parts the server holds, so it sends them without waiting for the listing. Its time is the floor for partwise's on this machine.`);
print();
print(`| client | killed at | server held after the kill | time to finish, s | × full | re-sent MiB |`);
print(`|---|---:|---:|---:|---:|---:|`);
const resumeRatio = new Map<string, number>();
/** One row: `name`'s runs at `fraction`, as a share of `fullOf`'s full-upload median. */
const resumeRow = (fraction: number, name: string, label: string, fullOf: string) => {
  const xs = resumeRuns.get(`${fraction}/${name}`)!;
  const ratio = median(xs.map((x) => x.cost.wallS)) / med(s0, fullOf, (c) => c.wallS);
  resumeRatio.set(`${fraction}/${name}`, ratio);
  print(`| ${label} | ${fraction * 100}% | ${spread(xs.map((x) => (100 * x.held) / size))}% | ${spread(xs.map((x) => x.cost.wallS), 2)} | ${fmt(ratio, 2)} | ${spread(xs.map((x) => x.resent / MiB))} |`);
};
for (const fraction of [0.5, 0.9]) {
  for (const t of resumers) resumeRow(fraction, t.name, `${t.name}${t.name === 's3cmd' ? ' --continue-put' : ''}`, t.name);
  resumeRow(fraction, MINIMAL, "the least a verifying resume can do here (× partwise's full upload)", 'partwise');
  for (const t of peers.filter((p) => !resumers.includes(p))) {
    print(`| ${t.name} (starts over) | ${fraction * 100}% | | ${fmt(med(s0, t.name, (c) => c.wallS), 2)} | 1.00 | ${fmt(uploadMiB)} |`);
  }
}
print();
{
  const runs = resumeRuns.get('0.9/partwise')!.map((x) => ({ wall: x.cost.wallS * 1000, ...engineTimes(x.cost.stdout)! }));
  const wall = median(runs.map((r) => r.wall));
  const engine = median(runs.map((r) => r.engineMs));
  const hash = median(runs.map((r) => r.hashMs));
  const hashed = median(runs.map((r) => r.hashBytes));
  const early = median(runs.map((r) => r.headStartBytes));
  const cpu = median(resumeRuns.get('0.9/partwise')!.map((x) => x.cost.cpuS));
  const serverCpu = median(resumeRuns.get('0.9/partwise')!.map((x) => x.serverCpu));
  print(
    `Where partwise's ${fmt(wall / 1000, 2)} s after the kill at 90% go (medians): process start, module loading and exit ${fmt((wall - engine) / 1000, 2)} s; in the engine ${fmt(engine / 1000, 2)} s, of which the verification phase ${fmt(hash / 1000, 2)} s (hashing ${fmt(hashed / MiB)} MiB on worker threads started as soon as the journal is read, ${fmt(early / MiB)} MiB of it before the server's listing came in, while the parts the server lacks go up), then the rest of the missing parts, Complete and the HEAD that proves the object. The client used ${fmt(cpu, 2)} CPU-s and the gateway ${fmt(serverCpu, 2)} in those ${fmt(wall / 1000, 2)} s: ${fmt((100 * (cpu + serverCpu)) / ((cpus().length * wall) / 1000))}% of what the ${cpus().length} cores could give in that time.`,
  );
  print();
}

// One more partwise resume after a kill at 90%, timed from outside event by event: what limits it.
{
  const key = freshKey('partwise-timeline');
  let t: Awaited<ReturnType<typeof eventTimeline>>;
  let held: number;
  try {
    held = await killAt(tool('partwise').upload(file, bucket, key, s0), s3, bucket, key, size, 0.9, s0.concurrency * s0.partMiB * MiB);
    t = await eventTimeline(tool('partwise').resume!(file, bucket, key, s0));
  } finally {
    await clean(key);
  }
  const full = med(s0, 'partwise', (x) => x.wallS);
  const row = (what: string, m: Moment | undefined) =>
    m ? print(`| ${what} | ${fmt(m.ms)} | ${fmt(m.ms / 1000 / full, 2)} | ${fmt(m.clientCpuS, 2)} | ${fmt(m.serverCpuS, 2)} |`) : undefined;
  print(`One more resume after a kill at 90% (server held ${fmt((100 * held) / size)}%), each event's arrival timed from outside, with the CPU the client and the gateway had used by then (sampled every 10 ms):`);
  print();
  print(`| moment | ms after start | × full upload | client CPU-s | gateway CPU-s |`);
  print(`|---|---:|---:|---:|---:|`);
  row('journal read, resume announced (`plan`): process start, modules, lock', t.firsts.get('plan'));
  row('first missing part read, hashed and going up (`part-start`): SDK loaded, ListParts answered', t.firsts.get('part-start'));
  row('last missing part acknowledged (`part-done`)', t.lasts.get('part-done'));
  row('last listed part hashed and compared (`reconcile`)', t.firsts.get('reconcile'));
  row('Complete answered and the object proven by HEAD (`complete`)', t.firsts.get('complete'));
  row('process exit', t.exit);
  print();
  const first = t.firsts.get('part-start');
  if (first) {
    const cores = cpus().length;
    const total = t.exit.clientCpuS + t.exit.serverCpuS;
    const gatewayAfter = t.exit.serverCpuS - first.serverCpuS;
    const gatewayDone = first.ms / 1000 + gatewayAfter / cores;
    const bound = Math.max(total / cores, gatewayDone);
    print(
      `What limits it, as lower bounds from this run's own work: client and gateway together used ${fmt(total, 2)} CPU-s (client ${fmt(t.exit.clientCpuS, 2)}, gateway ${fmt(t.exit.serverCpuS, 2)}), which ${cores} cores cannot give in under ${fmt(total / cores, 2)} s; and the gateway's ${fmt(gatewayAfter, 2)} CPU-s of taking the missing parts could not begin before the first UploadPart at ${fmt(first.ms / 1000, 2)} s (it had used ${fmt(first.serverCpuS, 2)} by then), so not end before ${fmt(gatewayDone, 2)} s. Doing this work, the run could not have ended before ${fmt(bound, 2)} s (${fmt(bound / full, 2)} × the full upload), whatever the scheduling; it took ${fmt(t.exit.ms / 1000, 2)} s.`,
    );
    print();
  }
}

// ------------------------------------------------------------------ 4. verification
print(`## 4. Resume verification: \`partwise status\` on a ${verifyMiB} MiB file with ~90% of its parts on the server, file in page cache`);
print();
const vKey = freshKey('verify');
const vHeld = await killAt(tool('partwise').upload(bigFile, bucket, vKey, s0), s3, bucket, vKey, verifyMiB * MiB, 0.9, s0.concurrency * s0.partMiB * MiB);
const statusCmd = tool('partwise').upload(bigFile, bucket, vKey, s0);
statusCmd.args[1] = 'status';
const statusRuns: { wallS: number; hashedBytes: number; hashMs: number; md5: boolean }[] = [];
for (let i = 0; i < rounds; i++) {
  const c = timed(statusCmd, work);
  const line = c.stdout.trim().split('\n').find((l) => l.includes('"event":"status"'))!;
  const r = JSON.parse(line) as { reconcile: { bytesVerified: number; hashing: { bytes: number; ms: number; md5: boolean } } };
  statusRuns.push({ wallS: c.wallS, hashedBytes: r.reconcile.hashing.bytes, hashMs: r.reconcile.hashing.ms, md5: r.reconcile.hashing.md5 });
}
await clean(vKey);
// This machine's limit for the same work: read the page-cached file and CRC32C it, on every core.
// Read rate: a plain synchronous loop of 8 MiB reads in a fresh process, the cheapest way Node reads.
const readRate = (() => {
  const rate = execFileSync(process.execPath, ['-e', `
    const fs = require('fs'); const b = Buffer.allocUnsafe(8 << 20); const fd = fs.openSync(${JSON.stringify(bigFile)}, 'r');
    let n = 0, o = 0; const t = process.hrtime.bigint();
    while ((n = fs.readSync(fd, b, 0, b.length, o)) > 0) o += n;
    process.stdout.write(String(o / 1e6 / (Number(process.hrtime.bigint() - t) / 1e9)));
  `], { encoding: 'utf8' });
  return Number(rate);
})();
const perCore = 1 / (1 / readRate + 1 / crc32cRate);
const limit = (perCore * cpus().length) / 1000;
const e2e = statusRuns.map((r) => r.hashedBytes / 1e9 / r.wallS);
const hashing = statusRuns.map((r) => r.hashedBytes / 1e6 / r.hashMs);
print(`| measure | GB/s | of the machine's limit |`);
print(`|---|---:|---:|`);
print(`| machine limit: read (${fmt(readRate)} MB/s per core) then CRC32C (${fmt(crc32cRate)} MB/s per core), on ${cpus().length} cores | ${fmt(limit, 2)} | 100% |`);
print(`| partwise verification phase (workers start to last digest; the \`reconcile\` event's \`hashing\`) | ${spread(hashing, 2)} | ${fmt((100 * median(hashing)) / limit)}% |`);
print(`| \`partwise status\` end to end (process start, journal, ListParts, hashing, report) | ${spread(e2e, 2)} | ${fmt((100 * median(e2e)) / limit)}% |`);
print();
print(`Parts on the server at the kill: ${fmt((100 * vHeld) / (verifyMiB * MiB))}% (${fmt(statusRuns[0]!.hashedBytes / MiB)} MiB hashed per run); MD5 computed: ${statusRuns[0]!.md5 ? 'yes' : 'no (the server stores and lists CRC32C part checksums)'}.`);
print();
print(`Worker threads for the verification phase, the same file's first ${Math.min(verifyMiB, 1024)} MiB (built code):`);
print();
print(`| hashes | worker threads | GB/s | speed-up |`);
print(`|---|---:|---:|---:|`);
{
  const { hashPartsInWorkers } = (await import(new URL('../dist/src/local/verify-pool.js', import.meta.url).href)) as typeof import('../src/local/verify-pool.ts');
  const vParts = allParts(planParts(Math.min(verifyMiB, 1024) * MiB, { partSize: 16 * MiB }));
  for (const md5 of [false, true]) {
    let one = 0;
    for (const workers of [1, 2]) {
      const rates: number[] = [];
      for (let i = 0; i < 3; i++) {
        const t = performance.now();
        await hashPartsInWorkers(bigFile, vParts, 'CRC32C', { workers, md5 });
        rates.push((Math.min(verifyMiB, 1024) * MiB) / 1e9 / ((performance.now() - t) / 1000));
      }
      const r = median(rates);
      if (workers === 1) one = r;
      print(`| ${md5 ? 'MD5 + CRC32C (servers without part checksums, or --checksum none)' : 'CRC32C only (the default on RGW and S3)'} | ${workers} | ${fmt(r, 2)} | ${fmt(r / one, 2)}× |`);
    }
  }
}
print();

// ------------------------------------------------------------------ 5. 10,000 parts
let tenResults: { per: number[]; fullJournal: number; listParts: number; overheadS: number } | undefined;
print(`## 5. 10,000 parts of 64 KiB through the library (concurrency 16; the local server allows parts under 5 MiB)`);
print();
{
  const tenDir = await tempDir('partwise-bench-10k-');
  const tenFile = join(tenDir, 'tenk.bin');
  writeFileSync(tenFile, randomBytes(10_000 * 64 * 1024));
  const key = freshKey('tenk');
  const opts = { file: tenFile, bucket, key, partSize: 64 * 1024, minPartSize: 1, stateDir: tenDir, concurrency: 16 };
  const j0 = journalBytesWritten();
  const t0 = performance.now();
  const marks: number[] = [];
  // Paused with 9,950 parts on the server: the resume lists all ten pages, as for a 10,000-part upload.
  await uploadThenPause(opts, 9950);
  // Per-1,000 times come from a second, uninterrupted run below.
  const firstJournal = journalBytesWritten() - j0;
  const pausedMs = performance.now() - t0;
  const { client, counts } = countingClient();
  const up = createUpload({ client, ...opts });
  const tr = performance.now();
  let toListed = 0;
  let hashMs = 0;
  // The verify phase begins once the last ListParts page is in (hashing has run alongside since the journal was read).
  up.on('phase', (p) => {
    if (p.phase === 'verify') toListed = performance.now() - tr;
  });
  up.on('reconcile', (r) => (hashMs = r.hashing?.ms ?? 0));
  const j1 = journalBytesWritten();
  const r = await up.done();
  const resumeMs = performance.now() - tr;
  const resumeJournal = journalBytesWritten() - j1;
  await clean(key);
  // An uninterrupted 10,000-part upload, timed per 1,000 acknowledged parts.
  const key2 = freshKey('tenk');
  const up2 = createUpload({ ...opts, key: key2, stateDir: join(tenDir, 'b') });
  const t2 = performance.now();
  let done = 0;
  up2.on('part-done', () => {
    if (++done % 1000 === 0) marks.push(performance.now() - t2);
  });
  const j2 = journalBytesWritten();
  await up2.done();
  const fullJournal = journalBytesWritten() - j2;
  await clean(key2);
  await rm(tenDir, { recursive: true, force: true });
  const per = marks.map((m, i) => (m - (i ? marks[i - 1]! : 0)) / 1000);
  print(`| measure | figure | target |`);
  print(`|---|---:|---|`);
  print(`| time per 1,000 parts, uninterrupted upload: first, median, last | ${fmt(per[0]!, 2)} s, ${fmt(median(per), 2)} s, ${fmt(per.at(-1)!, 2)} s | flat |`);
  print(`| journal bytes written, whole uninterrupted upload | ${fmt(fullJournal / MiB, 2)} MiB (${fmt(fullJournal / 10_000)} bytes per part) | ≤ 64 MiB in all |`);
  print(`| journal bytes written: run paused at 9,950 parts, then the resume (compaction) | ${fmt(firstJournal / MiB, 2)} + ${fmt(resumeJournal / MiB, 2)} MiB | |`);
  print(`| ListParts requests on the resume | ${counts.ListParts ?? 0} | 10 |`);
  print(`| resume: journal load + ListParts pages (start to the last page in, the \`verify\` phase; hashing runs alongside on worker threads) | ${fmt(toListed / 1000, 2)} s | < 1 s |`);
  print(`| resume to completion (hashing ${fmt(hashMs / 1000, 2)} s; ${r.partsUploaded} parts sent) | ${fmt(resumeMs / 1000, 2)} s | |`);
  print(`| Complete on RGW defaults | ${r.partCount} parts, ETag …${r.etag.slice(-6)}, ${r.verification.level} | succeeds |`);
  print();
  print(`The paused run took ${fmt(pausedMs / 1000, 1)} s for 9,950 parts.`);
  print();
  tenResults = { per, fullJournal, listParts: counts.ListParts ?? 0, overheadS: toListed / 1000 };
}

// ------------------------------------------------------------------ 8. beyond one machine
/** Idle and total CPU ticks of the whole machine, from /proc/stat. */
function cpuTicks(): { idle: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return { idle: f[3]! + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) };
}

// One object from N workers, each capped with --max-rate as a stand-in for its host's NIC: the
// aggregate against N × the cap, until this 2-core machine (which also runs the gateway) is the limit.
const shareMiB = Number(process.env.BENCH_SHARED_MIB ?? 2048);
const capMiB = Number(process.env.BENCH_SHARED_CAP_MIB ?? 32);
let sharedResult: { rows: { n: number; mbps: number; ratio: number; finishS: number }[]; finishSmall: number; finishLarge: number; combineMs: Record<string, number>; requests: Record<string, number> } | undefined;
{
  print(`## 8. Beyond one machine: one ${shareMiB} MiB object from N workers, each capped at ${capMiB} MiB/s`);
  print();
  print(`Each worker is \`partwise upload FILE URL --worker I/N --max-rate ${capMiB}MiB/s\` in its own process, all started at once after \`partwise plan\` (64 MiB parts); the time is from the first start to the last exit, process start-up included; \`partwise finish\` is timed apart (it reads no data).`);
  print();
  const sharedFile = join(work, 'shared.bin');
  {
    const fh = await open(sharedFile, 'w');
    for (let i = 0; i < shareMiB; i += 64) await fh.write(randomBytes(64 * MiB));
    await fh.close();
  }
  const bin = here('../dist/src/bin.js');
  const env = { ...process.env, PARTWISE_STATE_DIR: stateDir };
  const cli = (args: string[]) => {
    const r = spawnSync(process.execPath, [bin, ...args], { env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`partwise ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
    return r.stdout;
  };
  const rows: { n: number; mbps: number; ratio: number; finishS: number }[] = [];
  print(`| workers | aggregate MB/s | N × cap MB/s | aggregate / (N × cap) | machine idle during the workers | finish (s) |`);
  print(`|---:|---:|---:|---:|---:|---:|`);
  for (const n of [1, 2, 4, 8]) {
    const key = freshKey(`shared-${n}`);
    const url = `s3://${bucket}/${key}`;
    cli(['plan', sharedFile, url, '--workers', String(n), '--part-size', '64MiB']);
    // The machine's idle share while the workers run: near 0, the 2 cores (workers and gateway) are the limit, not the caps.
    const idle0 = cpuTicks();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        new Promise<void>((resolve, reject) => {
          const c = spawn(process.execPath, [bin, 'upload', sharedFile, url, '--worker', `${i}/${n}`, '--max-rate', `${capMiB}MiB/s`, '--quiet'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
          c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker ${i}/${n}: exit ${code}`))));
        }),
      ),
    );
    const wallS = (performance.now() - t0) / 1000;
    const idle1 = cpuTicks();
    const idleShare = (idle1.idle - idle0.idle) / (idle1.total - idle0.total);
    const tf = performance.now();
    cli(['finish', url]);
    const finishS = (performance.now() - tf) / 1000;
    const mbps = (shareMiB * MiB) / 1e6 / wallS;
    const ideal = (n * capMiB * MiB) / 1e6;
    rows.push({ n, mbps, ratio: mbps / ideal, finishS });
    print(`| ${n} | ${fmt(mbps)} | ${fmt(ideal)} | ${fmt(mbps / ideal, 2)} | ${fmt(idleShare * 100)}% | ${fmt(finishS, 2)} |`);
    await clean(key);
  }
  await rm(sharedFile, { force: true });
  print();
  // The cost of coordination, and the finish step's time against the object's bytes: 10,000 parts of
  // 4 KiB and of 64 KiB (16 × the bytes), 8 workers, through the library with a request counter.
  const { planSharedUpload, SharedWorker, finishSharedUpload } = await import('../src/jobs/shared-upload.ts');
  const { SdkS3Port } = await import('../src/s3/adapter.ts');
  const { combineCrcs } = await import('../src/core/shared-plan.ts');
  const finishTimes: number[] = [];
  let requests: Record<string, number> = {};
  const phaseMs: Record<string, number> = {};
  for (const partKiB of [4, 64]) {
    const f = join(work, `tenk-${partKiB}.bin`);
    writeFileSync(f, randomBytes(10_000 * partKiB * 1024));
    const key = freshKey(`shared-10k-${partKiB}`);
    const { client, counts } = countingClient();
    const port = new SdkS3Port(client);
    const base = { s3: port, bucket, key, partSize: partKiB * 1024, minPartSize: 1, concurrency: 16 };
    const snap = () => ({ ...counts });
    const diff = (a: Record<string, number>, b: Record<string, number>): Record<string, number> => {
      const d: Record<string, number> = {};
      for (const [k, v] of Object.entries(b)) if (v - (a[k] ?? 0) > 0) d[k] = v - (a[k] ?? 0);
      return d;
    };
    let t = performance.now();
    const c0 = snap();
    await planSharedUpload({ ...base, file: f, workers: 8 });
    phaseMs[`plan-${partKiB}`] = performance.now() - t;
    const c1 = snap();
    t = performance.now();
    await Promise.all(Array.from({ length: 8 }, (_, i) => new SharedWorker({ ...base, file: f, worker: i }).done()));
    phaseMs[`workers-${partKiB}`] = performance.now() - t;
    const c2 = snap();
    t = performance.now();
    await finishSharedUpload(base);
    const finishMs = performance.now() - t;
    finishTimes.push(finishMs);
    const c3 = snap();
    if (partKiB === 4) requests = { ...Object.fromEntries(Object.entries(diff(c0, c1)).map(([k, v]) => [`plan ${k}`, v])), ...Object.fromEntries(Object.entries(diff(c1, c2)).filter(([k]) => k !== 'UploadPart').map(([k, v]) => [`workers ${k}`, v])), ...Object.fromEntries(Object.entries(diff(c2, c3)).map(([k, v]) => [`finish ${k}`, v])) };
    await clean(key);
    rmSync(f, { force: true });
  }
  const combineMs: Record<string, number> = {};
  for (const alg of ['CRC32C', 'CRC64NVME'] as const) {
    const pieces = Array.from({ length: 10_000 }, (_, i) => ({ crc: randomBytes(alg === 'CRC64NVME' ? 8 : 4).toString('base64'), bytes: i === 9_999 ? 1 : 16 * MiB }));
    const t = performance.now();
    combineCrcs(alg, pieces);
    combineMs[alg] = performance.now() - t;
  }
  print(`Coordination for a 10,000-part object and 8 workers (requests besides the 10,000 UploadParts, counted at the client):`);
  print();
  print(`| step | requests | time |`);
  print(`|---|---|---:|`);
  const reqs = (prefix: string) => Object.entries(requests).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => `${k.slice(prefix.length + 1)} ${v}`).join(', ');
  print(`| plan | ${reqs('plan')} | ${fmt(phaseMs['plan-4']! / 1000, 2)} s |`);
  print(`| 8 workers (their ranges listed, receipts written; their UploadParts not counted) | ${reqs('workers')} | ${fmt(phaseMs['workers-4']! / 1000, 2)} s with the parts |`);
  print(`| finish (receipts read, ListParts every page, Complete, HEAD, the plan rewritten as the finished record, then the receipts and the plan removed) | ${reqs('finish')} | ${fmt(finishTimes[0]! / 1000, 2)} s |`);
  print(`| finish of the same layout with 16 × the bytes (10,000 parts of 64 KiB, ${fmt((10_000 * 64) / 1024)} MiB) | the same | ${fmt(finishTimes[1]! / 1000, 2)} s |`);
  print(`| combining 10,000 part CRCs into the object's, in process (CRC32C; CRC64NVME) | none | ${fmt(combineMs.CRC32C!, 0)} ms; ${fmt(combineMs.CRC64NVME!, 0)} ms |`);
  print();
  sharedResult = { rows, finishSmall: finishTimes[0]!, finishLarge: finishTimes[1]!, combineMs, requests };
}

// ------------------------------------------------------------------ 7. many small files
const manyFiles = Number(process.env.BENCH_FILES ?? 1000);
let manyResult: { partwise: number; aws: number; partwiseRss: number; awsRss: number } | undefined;
{
  const tree = join(work, 'tree');
  let bytes = 0;
  for (let i = 0; i < manyFiles; i++) {
    const sizeKiB = 64 + Math.floor(((i * 7919) % 1000) / 1000 * (4096 - 64)); // 64 KiB to 4 MiB, spread evenly
    const d = join(tree, `d${i % 10}`);
    if (i < 10) await mkdir(d, { recursive: true });
    writeFileSync(join(d, `f${i}.bin`), randomBytes(sizeKiB * 1024));
    bytes += sizeKiB * 1024;
  }
  const e = process.env;
  const conc = s0.concurrency;
  const folderTools: { name: string; run: (prefix: string) => Command }[] = [
    { name: 'partwise (folder job)', run: (prefix) => ({ cmd: process.execPath, args: [here('../dist/src/bin.js'), 'upload', tree, `s3://${bucket}/${prefix}/`, '--concurrency', String(conc), '--state-dir', join(work, 'state-many'), '--quiet'], env: { ...e } }) },
    { name: 'aws s3 cp --recursive', run: (prefix) => tool('aws-cli').upload(tree, bucket, prefix, { partMiB: 16, concurrency: conc }) },
    { name: 'rclone copy', run: (prefix) => ({ ...tool('rclone').upload(tree, bucket, prefix, { partMiB: 16, concurrency: conc }), args: ['copy', '-q', '--transfers', String(conc), '--s3-upload-cutoff', '16M', '--s3-chunk-size', '16M', tree, `pwb:${bucket}/${prefix}`] }) },
  ];
  // aws-cli takes a folder with --recursive
  const awsRecursive = folderTools[1]!;
  const awsRun = awsRecursive.run;
  awsRecursive.run = (prefix) => {
    const c = awsRun(prefix);
    return { ...c, args: [...c.args.slice(0, -2), '--recursive', tree, `s3://${bucket}/${prefix}/`] };
  };
  const times = new Map<string, Cost[]>();
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 ? [...folderTools].reverse() : folderTools;
    for (const t of order) {
      const prefix = freshKey(`many-${t.name}`);
      await rm(join(work, 'state-many'), { recursive: true, force: true });
      const c = timed(t.run(prefix), work);
      const list = times.get(t.name) ?? [];
      list.push(c);
      times.set(t.name, list);
      await cleanPrefix(`${prefix}/`);
    }
  }
  print(`## 7. A folder of ${fmt(manyFiles)} files of 64 KiB to 4 MiB (${fmt(bytes / MiB)} MiB), concurrency ${conc}`);
  print();
  print(`| client | files/s | MB/s | client CPU-s | peak RSS MiB |`);
  print(`|---|---:|---:|---:|---:|`);
  for (const t of folderTools) {
    const xs = times.get(t.name)!;
    print(`| ${t.name} | ${spread(xs.map((c) => manyFiles / c.wallS))} | ${spread(xs.map((c) => bytes / 1e6 / c.wallS))} | ${spread(xs.map((c) => c.cpuS), 1)} | ${fmt(Math.max(...xs.map((c) => c.rssMiB)))} |`);
  }
  print();
  print(`partwise sends each file under its part size as one PutObject with Content-MD5 and CRC32C, proven by the server's checksum echo, and records it in the job journal (one fsync per batch of finished files).`);
  print();
  const peak = (t: { name: string }) => Math.max(...times.get(t.name)!.map((c) => c.rssMiB));
  manyResult = { partwise: median(times.get(folderTools[0]!.name)!.map((c) => c.wallS)), aws: median(times.get(folderTools[1]!.name)!.map((c) => c.wallS)), partwiseRss: peak(folderTools[0]!), awsRss: peak(folderTools[1]!) };
}

// ------------------------------------------------------------------ 6. profile
print(`## 6. Where a partwise upload's CPU and memory go (${uploadMiB} MiB, ${s0.partMiB} MiB parts, concurrency ${s0.concurrency})`);
print();
{
  const profDir = join(work, 'prof');
  const profKey = freshKey('prof');
  const c = tool('partwise').upload(file, bucket, profKey, s0);
  c.args.unshift('--cpu-prof', `--cpu-prof-dir=${profDir}`);
  const cost = timed(c, work);
  await clean(profKey);
  const prof = summarizeCpu(join(profDir, readdirSync(profDir)[0]!), 10);
  const busy = prof.byGroup.filter(([g]) => !g.startsWith('idle')).reduce((a, [, ms]) => a + ms, 0);
  print(`\`node --cpu-prof\` of the CLI upload: ${fmt(prof.totalMs / 1000, 2)} s of wall time, of which the main thread was busy ${fmt(busy / 1000, 2)} s (GNU time: ${fmt(cost.cpuS, 2)} CPU-s, which adds the kernel's share of socket and file I/O and libuv's threads).`);
  print();
  print(`| self time by group | ms | share of busy |`);
  print(`|---|---:|---:|`);
  for (const [g, ms] of prof.byGroup) if (!g.startsWith('idle')) print(`| ${g} | ${fmt(ms)} | ${fmt((100 * ms) / busy)}% |`);
  print();
  print(`| top functions by self time | ms |`);
  print(`|---|---:|`);
  for (const [f, ms] of prof.byFunction) print(`| \`${f}\` | ${fmt(ms, 1)} |`);
  print();
  const snap = join(work, 'upload.heapsnapshot');
  const heapKey = freshKey('heap');
  const h = spawnSync(process.execPath, [here('./heap-child.mjs'), file, bucket, heapKey, String(s0.partMiB), String(s0.concurrency), join(work, 'heap-state'), snap], { encoding: 'utf8' });
  if (h.status !== 0) throw new Error(`heap child failed: ${h.stderr}`);
  await clean(heapKey);
  const hm = JSON.parse(h.stdout.trim().split('\n').at(-1)!) as { usage: NodeJS.MemoryUsage; maxRssMiB: number };
  const heap = summarizeHeap(snap, 8);
  const mib = (n: number) => fmt(n / MiB, 1);
  print(`Memory at 50% acknowledged (library upload, \`process.memoryUsage()\`): RSS ${mib(hm.usage.rss)} MiB = V8 heap ${mib(hm.usage.heapTotal)} MiB (used ${mib(hm.usage.heapUsed)}) + ArrayBuffers ${mib(hm.usage.arrayBuffers)} MiB (part arenas: up to ${s0.concurrency} requests × 1 MiB, whatever the ${s0.partMiB} MiB part size, and the sockets' buffers) + code, stacks and the runtime. Peak RSS of that process: ${fmt(hm.maxRssMiB)} MiB.`);
  print();
  print(`| heap snapshot: self size by constructor | MiB |`);
  print(`|---|---:|`);
  for (const [n, m] of heap.byName) print(`| ${n} | ${fmt(m, 2)} |`);
  print();
}

// ------------------------------------------------------------------ 9. a WAN
// Every tool at its defaults through the same emulated link (benchmarks/wan-proxy.mjs): 40 ms each
// way, 8 MB/s per connection (a 640 KB window over the 80 ms round trip), 100 MB/s for the link.
const wanMiB = Number(process.env.BENCH_WAN_MIB ?? 2048);
const wanRounds = Number(process.env.BENCH_WAN_ROUNDS ?? 1);
const wan = { delayMs: 40, connBps: 8e6, linkBps: 100e6 };
const wanRuns = new Map<string, Cost[]>();
const wanLevels: string[] = [];
{
  const wanFile = join(work, 'wan.bin');
  await writeRandom(wanFile, wanMiB);
  try {
  const proxy = spawn(process.execPath, [here('./wan-proxy.mjs'), '0', new URL(process.env.AWS_ENDPOINT_URL!).host, String(wan.delayMs), String(wan.connBps), String(wan.linkBps)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((res, rej) => {
    proxy.stdout!.once('data', (d: Buffer) => res(Number(/ready (\d+)/.exec(d.toString())?.[1])));
    proxy.once('exit', (c) => rej(new Error(`wan proxy exited ${c}`)));
  });
  try {
    const via = `http://127.0.0.1:${port}`;
    const e: NodeJS.ProcessEnv = { ...process.env, AWS_ENDPOINT_URL: via };
    delete e.AWS_CA_BUNDLE;
    const emptyAws = join(work, 'aws-defaults.ini');
    writeFileSync(emptyAws, '[default]\n');
    const s3cfgWan = join(work, 's3cfg-wan');
    writeFileSync(s3cfgWan, readFileSync(join(work, 's3cfg'), 'utf8').replace(/^host_base = .*$/m, `host_base = 127.0.0.1:${port}`).replace(/^host_bucket = .*$/m, `host_bucket = 127.0.0.1:${port}`), { mode: 0o600 });
    const rcloneEnv = { ...tool('rclone').upload(wanFile, bucket, 'x', s0).env, RCLONE_CONFIG_PWB_ENDPOINT: via };
    const pwCmd = (extra: string[]) => (key: string): Command => ({ cmd: process.execPath, args: [here('../dist/src/bin.js'), 'upload', wanFile, `s3://${bucket}/${key}`, '--endpoint', via, '--state-dir', join(work, 'state-wan'), '--json', ...extra], env: e });
    const wanTools: { name: string; run: (key: string) => Command }[] = [
      { name: 'partwise (defaults: the level is searched)', run: pwCmd([]) },
      { name: 'partwise --concurrency 4', run: pwCmd(['--concurrency', '4']) },
      { name: 'aws-cli (defaults: 10 requests, 8 MiB parts)', run: (key) => ({ cmd: '/usr/bin/aws', args: ['--endpoint-url', via, 's3', 'cp', '--only-show-errors', wanFile, `s3://${bucket}/${key}`], env: { ...e, AWS_CONFIG_FILE: emptyAws } }) },
      { name: 'rclone (defaults: 4 per file, 5 MiB chunks)', run: (key) => ({ cmd: 'rclone', args: ['copyto', '-I', '-q', wanFile, `pwb:${bucket}/${key}`], env: rcloneEnv }) },
      { name: 'lib-storage (defaults: queueSize 4, 5 MiB parts)', run: (key) => ({ cmd: process.execPath, args: [here('./lib-storage-one.mjs'), wanFile, bucket, key, '5', '4', 'default'], env: e }) },
      { name: 's3cmd (defaults: 15 MiB chunks, one at a time)', run: (key) => ({ cmd: 's3cmd', args: ['-c', s3cfgWan, '--no-progress', 'put', wanFile, `s3://${bucket}/${key}`], env: e }) },
    ];
    for (let round = 0; round < wanRounds; round++) {
      for (const t of round % 2 ? [...wanTools].reverse() : wanTools) {
        const key = freshKey(`wan-${t.name}`);
        const c = timed(t.run(key), work);
        wanRuns.set(t.name, [...(wanRuns.get(t.name) ?? []), c]);
        if (t === wanTools[0]) {
          const levels = c.stdout.split('\n').filter((l) => l.includes('"event":"concurrency"')).map((l) => JSON.parse(l) as { concurrency: number; reason: string });
          wanLevels.push(levels.map((x) => `${x.concurrency} (${x.reason})`).join(' → '));
        }
        await clean(key);
      }
    }
    print(`## 9. A WAN: every tool at its defaults, ${fmt(wanMiB)} MiB through one emulated link`);
    print();
    print(`\`benchmarks/wan-proxy.mjs\` between each client and the gateway: ${wan.delayMs} ms each way (a request costs an ${2 * wan.delayMs} ms round trip), ${fmt(wan.connBps / 1e6)} MB/s per connection (a ${fmt((wan.connBps * 2 * wan.delayMs) / 1e3 / 1e3)} KB window over that round trip), ${fmt(wan.linkBps / 1e6)} MB/s for the whole link, shared round-robin. ${wanRounds} round${wanRounds > 1 ? 's' : ''} (s3cmd alone takes minutes); wall time includes process start.`);
    print();
    print(`| client | MB/s | × the link cap | client CPU-s | peak RSS MiB |`);
    print(`|---|---:|---:|---:|---:|`);
    for (const t of wanTools) {
      const xs = wanRuns.get(t.name)!;
      const rate = (c: Cost) => (wanMiB * MiB) / 1e6 / c.wallS;
      print(`| ${t.name} | ${spread(xs.map(rate))} | ${fmt(median(xs.map(rate)) / (wan.linkBps / 1e6), 2)} | ${spread(xs.map((c) => c.cpuS), 1)} | ${fmt(Math.max(...xs.map((c) => c.rssMiB)))} |`);
    }
    print();
    print(`The level partwise chose (its \`concurrency\` events): ${wanLevels.join('; ')}.`);
    print();
  } finally {
    proxy.kill('SIGTERM');
    rmSync(wanFile, { force: true });
  }
  } catch (err) {
    // Said, not hidden: the other sections' figures still get written.
    wanRuns.clear();
    print(`## 9. A WAN: not measured: ${(err as Error).message.slice(0, 500)}`);
    print();
  }
}
const wanTools0 = 'partwise (defaults: the level is searched)';
const wanRate = (name: string) => median(wanRuns.get(name)!.map((c) => (wanMiB * MiB) / 1e6 / c.wallS));

// ------------------------------------------------------------------ targets
const pw = (s: Setting, f: (c: Cost) => number) => med(s, 'partwise', f);
const ten = tenResults!;
const targets: [string, string, string, boolean][] = [
  [`resume verification, \`partwise status\` end to end, of this machine's read + CRC32C limit (${fmt(limit, 2)} GB/s) (section 4)`, `${fmt(median(e2e), 2)} GB/s = ${fmt((100 * median(e2e)) / limit)}%`, '≥ 80%', median(e2e) >= 0.8 * limit],
  (() => {
    const pwS = median(resumeRuns.get('0.9/partwise')!.map((x) => x.cost.wallS));
    const floorS = median(resumeRuns.get(`0.9/${MINIMAL}`)!.map((x) => x.cost.wallS));
    return [`finishing after a kill at 90% vs the least a verifying resume can do here, ${fmt(floorS, 2)} s (section 3)`, `${fmt(pwS, 2)} s = ${fmt(pwS / floorS, 2)} ×`, '≤ 1.1 ×', pwS <= 1.1 * floorS] as [string, string, string, boolean];
  })(),
  ...settings.flatMap((s): [string, string, string, boolean][] => {
    const fastest = peers.reduce((a, b) => (med(s, a.name, mbps) >= med(s, b.name, mbps) ? a : b));
    const leanest = peers.reduce((a, b) => (med(s, a.name, (c) => c.cpuS) <= med(s, b.name, (c) => c.cpuS) ? a : b));
    return [
      [`throughput of a full upload at (${s.concurrency}, ${s.partMiB} MiB) vs the fastest peer, ${fastest.name} (section 2)`, `${fmt(pw(s, mbps) / med(s, fastest.name, mbps), 2)} ×`, '≥ 1 ×', pw(s, mbps) >= med(s, fastest.name, mbps)],
      [`client CPU of a full upload at (${s.concurrency}, ${s.partMiB} MiB) vs the leanest peer, ${leanest.name} (section 2)`, `${fmt(pw(s, (c) => c.cpuS) / med(s, leanest.name, (c) => c.cpuS), 2)} ×`, '≤ 0.6 ×', pw(s, (c) => c.cpuS) <= 0.6 * med(s, leanest.name, (c) => c.cpuS)],
    ];
  }),
  ...settings.flatMap((s): [string, string, string, boolean][] => {
    const rss = Math.max(...full.get(fullKey(s, 'partwise'))!.map((c) => c.rssMiB));
    const x = pw(s, mbps) / med(s, 'aws-cli', mbps);
    return [
      [`peak RSS of a full upload at (${s.concurrency}, ${s.partMiB} MiB) vs aws-cli's ${fmt(awsRss(s))} MiB (section 2)`, `${fmt(rss)} MiB`, `≤ aws-cli + 32 MiB`, rss <= awsRss(s) + 32],
      [`throughput of a full upload at (${s.concurrency}, ${s.partMiB} MiB) vs aws-cli (section 2)`, `${fmt(x, 2)} ×`, '≥ 1.4 ×', x >= 1.4],
    ];
  }),
  [`peak RSS of a full upload at (4, 1 GiB) vs aws-cli's ${fmt(hugeRss('aws-cli'))} MiB (section 2)`, `${fmt(hugeRss('partwise'))} MiB`, '≤ aws-cli + 32 MiB', hugeRss('partwise') <= hugeRss('aws-cli') + 32],
  [`peak RSS of a folder job of ${fmt(manyFiles)} files vs aws s3 cp --recursive's ${fmt(manyResult!.awsRss)} MiB (section 7)`, `${fmt(manyResult!.partwiseRss)} MiB`, '≤ aws-cli + 32 MiB', manyResult!.partwiseRss <= manyResult!.awsRss + 32],
  ...(wanRuns.size === 0 ? [[`a WAN at defaults (section 9)`, 'not measured', '≥ 0.9 × the link cap, above every peer', false] as [string, string, string, boolean]] : [
  (() => {
    const r = wanRate(wanTools0) / (wan.linkBps / 1e6);
    return [`a WAN at defaults: partwise's rate / the link cap (section 9)`, `${fmt(r, 2)}`, '≥ 0.9', r >= 0.9] as [string, string, string, boolean];
  })(),
  (() => {
    const best = [...wanRuns.keys()].filter((n) => !n.startsWith('partwise')).reduce((a, b) => (wanRate(a) >= wanRate(b) ? a : b));
    return [`a WAN at defaults: partwise vs the fastest peer at its defaults, ${best} (section 9)`, `${fmt(wanRate(wanTools0) / wanRate(best), 2)} ×`, '> 1 ×', wanRate(wanTools0) > wanRate(best)] as [string, string, string, boolean];
  })(),
  ]),
  [`10,000 parts: journal bytes written (section 5)`, `${fmt(ten.fullJournal / MiB, 2)} MiB`, '≤ 64 MiB', ten.fullJournal <= 64 * MiB],
  [`${fmt(manyFiles)} small files vs aws s3 cp --recursive (section 7)`, `${fmt(manyResult!.aws / manyResult!.partwise, 2)} × its speed`, '≥ 1 ×', manyResult!.partwise <= manyResult!.aws],
  [`10,000 parts: ListParts requests on resume; journal load + ListParts pages (section 5)`, `${ten.listParts}; ${fmt(ten.overheadS, 2)} s`, '10; < 1 s', ten.listParts === 10 && ten.overheadS < 1],
  ...sharedResult!.rows.map((r): [string, string, string, boolean] => [`${r.n} worker(s) on one object, each capped at ${capMiB} MiB/s: aggregate / (N × cap) (section 8)`, `${fmt(r.ratio, 2)}`, '≥ 0.9', r.ratio >= 0.9]),
  [`finish of 10,000 parts: 16 × the bytes, the same time (section 8)`, `${fmt(sharedResult!.finishSmall / 1000, 2)} s → ${fmt(sharedResult!.finishLarge / 1000, 2)} s`, '≤ 1.5 × (reads no data)', sharedResult!.finishLarge <= 1.5 * sharedResult!.finishSmall],
  [`combining 10,000 part CRCs (section 8)`, `${fmt(Math.max(...Object.values(sharedResult!.combineMs)), 0)} ms`, '< 1 s', Math.max(...Object.values(sharedResult!.combineMs)) < 1000],
];
const summary = [
  `## Targets, from this run`,
  '',
  `| measure | partwise | target | met |`,
  `|---|---:|---|---|`,
  ...targets.map(([m, v, t, ok]) => `| ${m} | ${v} | ${t} | ${ok ? 'yes' : '**no**'} |`),
  '',
  '![benchmark chart](chart.svg)',
  '',
];
out.splice(summaryAt, 0, ...summary);
for (const l of summary) console.log(l);

// ------------------------------------------------------------------ chart
const bars = (f: (c: Cost) => number) =>
  uploaders.map((t) => {
    const xs = full.get(fullKey(s0, t.name))!.map(f);
    return { label: t.name, median: median(xs), min: Math.min(...xs), max: Math.max(...xs), highlight: t.name.startsWith('partwise') };
  });
const panels: Panel[] = [
  { title: `Full upload of ${uploadMiB} MiB (${s0.partMiB} MiB parts, concurrency ${s0.concurrency})`, unit: 'MB/s', better: 'higher', bars: bars(mbps) },
  { title: 'Client CPU for the same upload', unit: 'CPU-seconds per GiB', better: 'lower', bars: bars(cpuPerGiB) },
  { title: 'Peak memory for the same upload', unit: 'RSS MiB', better: 'lower', bars: bars((c) => c.rssMiB) },
  {
    title: 'Time to finish after a kill at 90%',
    unit: 'seconds',
    better: 'lower',
    bars: uploaders.filter((t) => resumers.includes(t) || !t.name.startsWith('partwise')).map((t) => {
      const xs = resumeRuns.get(`0.9/${t.name}`)?.map((x) => x.cost.wallS) ?? full.get(fullKey(s0, t.name))!.map((c) => c.wallS);
      return { label: resumeRuns.has(`0.9/${t.name}`) ? t.name : `${t.name} (starts over)`, median: median(xs), min: Math.min(...xs), max: Math.max(...xs), highlight: t.name.startsWith('partwise') };
    }).concat(
      [resumeRuns.get(`0.9/${MINIMAL}`)!.map((x) => x.cost.wallS)].map((xs) => ({ label: 'least possible (floor)', median: median(xs), min: Math.min(...xs), max: Math.max(...xs), highlight: false })),
    ),
  },
  {
    title: `Peak memory at 1 GiB parts (concurrency 4, ${fmt(hugeMiB)} MiB)`,
    unit: 'RSS MiB',
    better: 'lower',
    bars: ['partwise', 'aws-cli'].map((n) => ({ label: n, median: hugeRss(n), min: hugeRss(n), max: hugeRss(n), highlight: n === 'partwise' })),
  },
  ...(wanRuns.size === 0 ? [] : [{
    title: `A WAN (${2 * wan.delayMs} ms round trip, ${fmt(wan.connBps / 1e6)} MB/s per connection, link ${fmt(wan.linkBps / 1e6)} MB/s): every tool at its defaults`,
    unit: 'MB/s',
    better: 'higher',
    bars: [...wanRuns.keys()].map((n) => {
      const xs = wanRuns.get(n)!.map((c) => (wanMiB * MiB) / 1e6 / c.wallS);
      return { label: n.replace(/ \(.*\)$/, ''), median: median(xs), min: Math.min(...xs), max: Math.max(...xs), highlight: n.startsWith('partwise') };
    }),
  } satisfies Panel]),
  {
    title: `One object from N workers, each capped at ${capMiB} MiB/s (a host's NIC)`,
    unit: 'aggregate MB/s',
    better: 'higher',
    bars: sharedResult!.rows.map((r) => ({ label: `${r.n} worker${r.n > 1 ? 's' : ''} (N × cap ${fmt((r.n * capMiB * MiB) / 1e6)})`, median: r.mbps, min: r.mbps, max: r.mbps, highlight: true })),
  },
];
writeFileSync(here('./chart.svg'), chartSvg('partwise against its peers on a local Ceph RGW', `${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model ?? '?'} shared with the server; medians of ${rounds} alternating rounds, whiskers min–max`, panels));
writeFileSync(here('./RESULTS.md'), out.join('\n') + '\n');
await rm(work, { recursive: true, force: true });
