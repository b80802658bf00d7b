/**
 * Running a client and reading what it cost: wall time, CPU-seconds and peak RSS from GNU time
 * (the client's own process tree, waited for), and stopping a client with SIGKILL once the server
 * holds a given share of the file's parts (read by ListParts, as a crash would leave it).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ListMultipartUploadsCommand, ListPartsCommand, type Part, type S3Client } from '@aws-sdk/client-s3';
import type { Command } from './tools.ts';

export interface Cost {
  wallS: number;
  cpuS: number;
  rssMiB: number;
  stdout: string;
  stderr: string;
}

export function timed(c: Command, work: string): Cost {
  const out = join(work, 'time.txt');
  rmSync(out, { force: true });
  const r = spawnSync('/usr/bin/time', ['-f', '%e %U %S %M', '-o', out, c.cmd, ...c.args], { env: c.env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${c.cmd} ${c.args.join(' ')} exited ${r.status}: ${r.stderr.slice(-2000)}`);
  const [wall, user, sys, rssKb] = readFileSync(out, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number) as [number, number, number, number];
  return { wallS: wall, cpuS: user + sys, rssMiB: rssKb / 1024, stdout: r.stdout, stderr: r.stderr };
}

async function uploadIdOf(s3: S3Client, bucket: string, key: string): Promise<string | undefined> {
  const ups = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: key }));
  return ups.Uploads?.find((u) => u.Key === key)?.UploadId;
}

/** Every part the server lists for the upload, all pages. */
async function listedParts(s3: S3Client, bucket: string, key: string, uploadId: string): Promise<Part[]> {
  const parts: Part[] = [];
  let marker: string | undefined;
  do {
    const p = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId, ...(marker ? { PartNumberMarker: marker } : {}) }));
    parts.push(...(p.Parts ?? []));
    marker = p.IsTruncated ? p.NextPartNumberMarker : undefined;
  } while (marker);
  return parts;
}

/** The open upload at the key and the part numbers the server lists for it. */
export async function serverListing(s3: S3Client, bucket: string, key: string): Promise<{ uploadId: string; parts: number[] }> {
  const uploadId = await uploadIdOf(s3, bucket, key);
  if (!uploadId) throw new Error(`no upload open at ${key}`);
  return { uploadId, parts: (await listedParts(s3, bucket, key, uploadId)).map((p) => p.PartNumber!) };
}

export async function serverPartBytes(s3: S3Client, bucket: string, key: string, uploadId: string): Promise<number> {
  return (await listedParts(s3, bucket, key, uploadId)).reduce((a, p) => a + (p.Size ?? 0), 0);
}

/**
 * Starts the client and SIGKILLs its process group so that about `fraction` of `size` is on the
 * server: the kill comes when ListParts shows `fraction` less half of what the client has in flight
 * (parts already on the wire still land). Returns what the server holds once the client is gone:
 * the state a resume starts from.
 */
export async function killAt(c: Command, s3: S3Client, bucket: string, key: string, size: number, fraction: number, inFlight = 0): Promise<number> {
  const child = spawn(c.cmd, c.args, { env: c.env, stdio: 'ignore', detached: true });
  let exited = false;
  const gone = new Promise<void>((resolve) => child.on('exit', () => ((exited = true), resolve())));
  let held = 0;
  let uploadId: string | undefined;
  // Polled as fast as the server answers: a part of 16 MiB takes ~50 ms here.
  while (!exited) {
    uploadId ??= await uploadIdOf(s3, bucket, key);
    held = uploadId ? await serverPartBytes(s3, bucket, key, uploadId).catch(() => 0) : 0;
    if (held >= fraction * size - inFlight / 2) break;
    await new Promise((r) => setTimeout(r, uploadId ? 5 : 20));
  }
  if (exited) throw new Error(`${c.cmd} finished before the kill at ${fraction * 100}%`);
  process.kill(-child.pid!, 'SIGKILL');
  await gone;
  // What was on the wire lands (or is dropped) within moments of the kill.
  await new Promise((r) => setTimeout(r, 300));
  return uploadId ? serverPartBytes(s3, bucket, key, uploadId) : 0;
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

/** "median (min–max)" */
export const spread = (xs: number[], d = 0) => `${fmt(median(xs), d)} (${fmt(Math.min(...xs), d)}–${fmt(Math.max(...xs), d)})`;

/** The local gateway's processes (radosgw, ceph-osd); none when the server is not local. */
function gatewayPids(): number[] {
  const pids: number[] = [];
  for (const name of ['radosgw', 'ceph-osd']) {
    const r = spawnSync('pgrep', ['-x', name], { encoding: 'utf8' });
    for (const pid of r.stdout.split('\n').filter(Boolean)) pids.push(Number(pid));
  }
  return pids;
}

/** CPU-seconds a process has used (utime + stime from /proc, in clock ticks of 10 ms); NaN once gone. */
function procCpuS(pid: number): number {
  try {
    // Fields 14 and 15 of /proc/PID/stat, counted after the command name's closing parenthesis.
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

/** CPU-seconds the local gateway's processes have used so far; 0 when not local. */
export function serverCpuS(pids = gatewayPids()): number {
  return pids.map(procCpuS).filter((v) => !Number.isNaN(v)).reduce((a, b) => a + b, 0);
}

export interface Moment {
  /** ms after the client was started */
  ms: number;
  /** the client's and the gateway's CPU-seconds used since then */
  clientCpuS: number;
  serverCpuS: number;
}

/**
 * Runs a partwise command with --json and marks when each of its events first arrives, with the CPU
 * the client and the gateway had used by then (sampled every 10 ms, so to within ~10 ms and one
 * clock tick): where a run's time goes, from outside and without a profiler's own cost.
 */
export async function eventTimeline(c: Command): Promise<{ firsts: Map<string, Moment>; lasts: Map<string, Moment>; exit: Moment }> {
  const pids = gatewayPids();
  const t0 = performance.now();
  const s0 = serverCpuS(pids);
  const child = spawn(c.cmd, c.args, { env: c.env, stdio: ['ignore', 'pipe', 'ignore'] });
  child.stdout.setEncoding('utf8'); // a character split across two reads stays whole
  let clientCpu = 0;
  let exited = false;
  const sample = () => {
    if (exited) return;
    const v = procCpuS(child.pid!);
    if (!Number.isNaN(v)) clientCpu = v;
  };
  const timer = setInterval(sample, 10);
  const at = (): Moment => (sample(), { ms: performance.now() - t0, clientCpuS: clientCpu, serverCpuS: serverCpuS(pids) - s0 });
  const firsts = new Map<string, Moment>();
  const lasts = new Map<string, Moment>();
  let buf = '';
  child.stdout.on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const event = (JSON.parse(buf.slice(0, i)) as { event: string }).event;
      buf = buf.slice(i + 1);
      const m = at();
      if (!firsts.has(event)) firsts.set(event, m);
      lasts.set(event, m);
    }
  });
  // The exit's moment is taken at 'exit' (its CPU is the last sample, at most 10 ms old; /proc is
  // not read after it, when the pid may be reused); the result waits for 'close', when every line
  // of its output has been read.
  let exit: Moment | undefined;
  child.on('exit', () => {
    exited = true;
    clearInterval(timer);
    exit = { ms: performance.now() - t0, clientCpuS: clientCpu, serverCpuS: serverCpuS(pids) - s0 };
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve(code));
  }).finally(() => clearInterval(timer));
  if (code !== 0) throw new Error(`${c.cmd} ${c.args.join(' ')} exited ${code}`);
  return { firsts, lasts, exit: exit! };
}
