/**
 * Running a client and reading what it cost: wall time, CPU-seconds and peak RSS from GNU time
 * (the client's own process tree, waited for), and stopping a client with SIGKILL once the server
 * holds a given share of the file's parts (read by ListParts, as a crash would leave it).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ListMultipartUploadsCommand, ListPartsCommand, type S3Client } from '@aws-sdk/client-s3';
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

export async function serverPartBytes(s3: S3Client, bucket: string, key: string, uploadId: string): Promise<number> {
  let total = 0;
  let marker: string | undefined;
  do {
    const p = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId: uploadId, ...(marker ? { PartNumberMarker: marker } : {}) }));
    for (const part of p.Parts ?? []) total += part.Size ?? 0;
    marker = p.IsTruncated ? p.NextPartNumberMarker : undefined;
  } while (marker);
  return total;
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

/** CPU-seconds the local gateway's processes (radosgw, ceph-osd) have used so far; 0 when not local. */
export function serverCpuS(): number {
  let total = 0;
  for (const name of ['radosgw', 'ceph-osd']) {
    const r = spawnSync('pgrep', ['-x', name], { encoding: 'utf8' });
    for (const pid of r.stdout.split('\n').filter(Boolean)) {
      try {
        // utime and stime are fields 14 and 15 of /proc/PID/stat, in clock ticks (100 per second on Linux).
        const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        total += (Number(f[11]) + Number(f[12])) / 100;
      } catch {
        /* gone meanwhile */
      }
    }
  }
  return total;
}
