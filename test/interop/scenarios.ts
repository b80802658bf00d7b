/**
 * The conformance matrix's scenarios: what a user does, through the built command (and the
 * library for the part limit), against one S3 server. Every verdict rests on an independent
 * download: partwise's exit 0 must mean the object is byte-identical to the file, and an exit 3
 * ("do not trust it") on an identical object is a false alarm; both are FAIL.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { CreateBucketCommand, GetObjectCommand, ListMultipartUploadsCommand, ListPartsCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { createUpload, KiB, MiB } from '../../src/index.ts';
import type { S3Emulator } from '../emulator/server.ts';
import { BIN } from '../helpers/cli.ts';

export type Verdict = 'pass' | 'unverified' | 'refused' | 'n/a' | 'FAIL';
export interface Cell {
  verdict: Verdict;
  /** the evidence level for a pass; partwise's own words (code: first sentence) otherwise */
  words: string;
}

export interface Target {
  name: string;
  env: Record<string, string>;
  /** the server refuses x-amz-checksum-* headers: the tamper scenario sends its part without one */
  noChecksumHeaders?: boolean;
  /** the server's part limit, when below S3's */
  maxParts?: number;
  /** the server takes parts below 5 MiB at Complete (the emulator): the part limit can be shown passing */
  smallParts?: boolean;
  /** the emulator behind an emulated profile: faults a real server cannot be asked for */
  emulator?: S3Emulator;
}

export const COLUMNS = ['upload', 'kill + resume', 'tampered part', 'crc64nvme', 'crc32', 'sha256', 'sha1', 'none', 'folder', 'ls / abort', 'no journal', 'part limit', 'Complete answer lost'] as const;
export type Column = (typeof COLUMNS)[number];

interface Run {
  code: number | null;
  lines: { event: string; [k: string]: unknown }[];
  stderr: string;
}

const PART = 5 * MiB;

export class Scenarios {
  private readonly s3: S3Client;
  private readonly bucket = `pw-interop-${Date.now().toString(36)}`;
  private dir = '';
  private n = 0;

  constructor(private readonly t: Target) {
    this.s3 = new S3Client({
      endpoint: t.env.AWS_ENDPOINT_URL,
      region: t.env.AWS_REGION ?? 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: t.env.AWS_ACCESS_KEY_ID!, secretAccessKey: t.env.AWS_SECRET_ACCESS_KEY! },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // The refusals the scenarios provoke are reported in the table, not as the SDK's log lines.
      logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {} },
    });
  }

  async all(): Promise<Record<Column, Cell>> {
    this.dir = await mkdtemp(join(tmpdir(), 'partwise-interop-'));
    const out = {} as Record<Column, Cell>;
    try {
      await this.s3.send(new CreateBucketCommand({ Bucket: this.bucket }));
      const steps: [Column, () => Promise<Cell>][] = [
        ['upload', () => this.upload('default')],
        ['kill + resume', () => this.killResume('resume')],
        ['tampered part', () => this.killResume('tamper')],
        ['crc64nvme', () => this.upload('crc64nvme')],
        ['crc32', () => this.upload('crc32')],
        ['sha256', () => this.upload('sha256')],
        ['sha1', () => this.upload('sha1')],
        ['none', () => this.upload('none')],
        ['folder', () => this.folder()],
        ['ls / abort', () => this.lsAbort()],
        ['no journal', () => this.killResume('no-journal')],
        ['part limit', () => this.partLimit()],
        ['Complete answer lost', () => this.completeLost()],
      ];
      for (const [col, step] of steps) {
        out[col] = await step().catch((e: Error) => ({ verdict: 'FAIL' as const, words: `the scenario itself failed: ${e.message}` }));
        process.stderr.write(`  ${this.t.name} · ${col}: ${out[col].verdict} ${out[col].words}\n`);
      }
    } catch (e) {
      for (const col of COLUMNS) out[col] ??= { verdict: 'FAIL', words: `setup: ${(e as Error).message}` };
    } finally {
      await rm(this.dir, { recursive: true, force: true });
    }
    return out;
  }

  private async file(size: number, name = `f${++this.n}.bin`): Promise<{ path: string; sha: string }> {
    const bytes = randomBytes(size);
    const path = join(this.dir, name);
    await mkdir(join(path, '..'), { recursive: true });
    await writeFile(path, bytes);
    return { path, sha: sha(bytes) };
  }

  private env(stateDir: string): NodeJS.ProcessEnv {
    return { PATH: process.env.PATH, HOME: process.env.HOME, ...this.t.env, PARTWISE_STATE_DIR: stateDir };
  }

  private cli(args: string[], stateDir: string, killAfterParts?: number): Promise<Run> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [BIN, ...args, '--json'], { env: this.env(stateDir), stdio: ['ignore', 'pipe', 'pipe'] });
      const lines: Run['lines'] = [];
      let stderr = '';
      let done = 0;
      child.stderr.on('data', (d) => (stderr += d));
      createInterface({ input: child.stdout }).on('line', (l) => {
        try {
          const e = JSON.parse(l) as Run['lines'][number];
          lines.push(e);
          if (e.event === 'part-done' && killAfterParts !== undefined && ++done === killAfterParts) child.kill('SIGKILL');
        } catch {
          /* not JSON */
        }
      });
      child.on('close', (code) => resolve({ code, lines, stderr }));
    });
  }

  private async objectSha(key: string): Promise<string | undefined> {
    try {
      const r = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return sha(Buffer.from(await r.Body!.transformToByteArray()));
    } catch {
      return undefined;
    }
  }

  /** The rule, on one object: exit 0 only for these bytes, exit 3 never for them. */
  private async judge(r: Run, key: string, want: string, passWords = ''): Promise<Cell> {
    const got = await this.objectSha(key);
    const same = got === want;
    const complete = r.lines.find((e) => e.event === 'complete');
    const error = r.lines.find((e) => e.event === 'error');
    const said = error ? wordsOf(String(error.code), String(error.message)) : r.stderr.trim().split('\n').at(-1) ?? '';
    if (r.code === 0) return same ? { verdict: 'pass', words: `${String(complete?.verificationLevel ?? '?')}${passWords}` } : { verdict: 'FAIL', words: `exit 0 but the object ${got ? 'differs from' : 'is missing for'} the file` };
    if (r.code === 3 && same) return { verdict: 'FAIL', words: `false alarm (exit 3) on an identical object: ${said}` };
    if (r.code === 4) return { verdict: 'unverified', words: `${said}${same ? ' (the object is in fact identical)' : ''}` };
    return { verdict: 'refused', words: `exit ${r.code}: ${said}` };
  }

  private async upload(alg: string): Promise<Cell> {
    const f = await this.file(2 * PART + 333 * KiB);
    const key = `modes/${alg}.bin`;
    const r = await this.cli(['upload', f.path, `s3://${this.bucket}/${key}`, '--part-size', '5MiB', ...(alg === 'default' ? [] : ['--checksum', alg])], await this.state());
    return this.judge(r, key, f.sha);
  }

  private async state(): Promise<string> {
    const d = join(this.dir, `state-${++this.n}`);
    await mkdir(d, { mode: 0o700 });
    return d;
  }

  /** Starts an 8-part upload at a capped rate and SIGKILLs it after 3 parts: the upload left open. */
  private async killed(key: string, stateDir: string): Promise<{ f: { path: string; sha: string }; uploadId?: string; run: Run }> {
    const f = await this.file(8 * PART);
    const run = await this.cli(['upload', f.path, `s3://${this.bucket}/${key}`, '--part-size', '5MiB', '--concurrency', '2', '--max-rate', '10MiB/s'], stateDir, 3);
    const plan = run.lines.find((e) => e.event === 'plan');
    return { f, uploadId: plan?.uploadId as string | undefined, run };
  }

  private async killResume(kind: 'resume' | 'tamper' | 'no-journal'): Promise<Cell> {
    const key = `kill/${kind}.bin`;
    const stateDir = await this.state();
    const k = await this.killed(key, stateDir);
    if (k.run.code !== null || !k.uploadId) return this.judge(k.run, key, k.f.sha); // it failed (or finished) before the kill
    if (kind === 'tamper') {
      try {
        await this.s3.send(new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: k.uploadId, PartNumber: 1, Body: randomBytes(PART), ...(this.t.noChecksumHeaders ? {} : { ChecksumAlgorithm: 'CRC32C' as const }) }));
      } catch (e) {
        return { verdict: 'n/a', words: `the server refused the tampering part itself: ${(e as Error).message}` };
      }
    }
    if (kind === 'no-journal') await rm(stateDir, { recursive: true, force: true }).then(() => mkdir(stateDir, { mode: 0o700 }));
    const r = await this.cli(['upload', k.f.path, `s3://${this.bucket}/${key}`, '--part-size', '5MiB'], stateDir);
    const rec = r.lines.find((e) => e.event === 'reconcile') as { verified?: number; toUpload?: number[]; notVerified?: { partNumber: number; status: string }[] } | undefined;
    const disc = r.lines.find((e) => e.event === 'discover') as { chosen?: string; why?: string } | undefined;
    let note = '';
    if (rec) note = `; ${rec.verified ?? 0} parts verified and kept, ${rec.toUpload?.length ?? 0} sent`;
    if (kind === 'tamper') {
      const p1 = rec?.notVerified?.find((p) => p.partNumber === 1);
      note += p1 ? `; tampered part 1: ${p1.status}, sent again` : '; tampered part 1 not caught';
      if (r.code === 0 && rec && !p1) return { verdict: 'FAIL', words: 'the tampered part 1 was taken as verified' };
    }
    if (kind === 'no-journal') note = disc ? `; discovery ${disc.chosen === k.uploadId ? 'adopted the upload' : `did not adopt it (${disc.why})`}${note}` : `; no discovery${note}`;
    return this.judge(r, key, k.f.sha, note);
  }

  private async folder(): Promise<Cell> {
    const root = join(this.dir, `tree-${++this.n}`);
    const files = [
      { rel: 'big.bin', f: await this.file(PART + 77 * KiB, `tree-${this.n}/big.bin`) },
      { rel: 'small.txt', f: await this.file(3 * KiB, `tree-${this.n}/small.txt`) },
      { rel: 'sub/empty', f: await this.file(0, `tree-${this.n}/sub/empty`) },
    ];
    const r = await this.cli(['upload', root, `s3://${this.bucket}/tree/`, '--part-size', '5MiB'], await this.state());
    const done = r.lines.filter((e) => e.event === 'file-done') as unknown as { key: string; status: string; verificationLevel?: string; error?: { code: string; message: string } }[];
    const wrong: string[] = [];
    for (const { rel, f } of files) if ((await this.objectSha(`tree/${rel}`)) !== f.sha) wrong.push(rel);
    const levels = [...new Set(done.map((d) => d.verificationLevel ?? d.error?.code ?? d.status))].join(', ');
    if (r.code === 0) return wrong.length ? { verdict: 'FAIL', words: `exit 0 but ${wrong.join(', ')} differ` } : { verdict: 'pass', words: levels };
    const failed = done.filter((d) => d.status === 'failed');
    const first = failed[0]?.error;
    const said = first ? wordsOf(first.code, first.message) : r.stderr.trim().split('\n').at(-1) ?? '';
    if (failed.some((d) => d.error?.code === 'OBJECT_VERIFICATION_FAILED' && !wrong.includes(d.key.replace(/^tree\//, '')))) return { verdict: 'FAIL', words: `false alarm on an identical file: ${said}` };
    if (failed.length && failed.every((d) => d.error?.code === 'OBJECT_UNVERIFIED')) return { verdict: 'unverified', words: said };
    return { verdict: 'refused', words: `exit ${r.code}, ${failed.length} of ${files.length} files failed: ${said}` };
  }

  private async lsAbort(): Promise<Cell> {
    const key = 'left/open.bin';
    const stateDir = await this.state();
    const k = await this.killed(key, stateDir);
    if (k.run.code !== null || !k.uploadId) return this.judge(k.run, key, k.f.sha);
    const ls = await this.cli(['ls', `s3://${this.bucket}/left/`], stateDir);
    const listed = ls.lines.some((e) => e.event === 'upload' && e.uploadId === k.uploadId);
    const lsWords = ls.code === 0 ? (listed ? 'ls lists it' : 'ls does not list it') : `ls: exit ${ls.code}: ${errorWords(ls)}`;
    const ab = await this.cli(['abort', `s3://${this.bucket}/${key}`], stateDir);
    const gone = await this.uploadGone(key, k.uploadId);
    const abWords = ab.code === 0 ? `abort: done${gone === true ? ' (the server no longer has it)' : gone === false ? ' BUT THE UPLOAD IS STILL THERE' : ' (not checkable here)'}` : `abort: exit ${ab.code}: ${errorWords(ab)}`;
    const verdict: Verdict = ab.code === 0 && gone === false ? 'FAIL' : ab.code === 0 && ls.code === 0 && listed ? 'pass' : 'refused';
    return { verdict, words: `${lsWords}; ${abWords}` };
  }

  /** true: the server says the upload is gone; undefined: it cannot tell (no ListParts, no listing) */
  private async uploadGone(key: string, uploadId: string): Promise<boolean | undefined> {
    try {
      await this.s3.send(new ListPartsCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }));
      return false;
    } catch (e) {
      if ((e as { name?: string }).name === 'NoSuchUpload') return true;
    }
    try {
      const l = await this.s3.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: key }));
      return !(l.Uploads ?? []).some((u) => u.UploadId === uploadId);
    } catch {
      return undefined;
    }
  }

  /**
   * Complete done, its answer lost (the connection dropped): partwise asks again, and the server
   * says what it says to a repeated Complete (AWS: the same answer; MinIO: NoSuchUpload). Emulated only.
   */
  private async completeLost(): Promise<Cell> {
    if (!this.t.emulator) return { verdict: 'n/a', words: 'needs the emulator\'s fault' };
    const f = await this.file(2 * PART + 9);
    const key = 'lost/complete.bin';
    const state = await this.state();
    const r = await this.t.emulator.withFault({ op: 'CompleteMultipartUpload', action: { type: 'drop-response' } }, () => this.cli(['upload', f.path, `s3://${this.bucket}/${key}`, '--part-size', '5MiB'], state));
    const warned = r.lines.filter((e) => e.event === 'warning').map((e) => String(e.code));
    return this.judge(r, key, f.sha, warned.length ? `; ${warned.join(', ')}` : '');
  }

  /** 1,001 parts on a server that takes 1,000: the refusal's words, then (where small parts complete) --max-parts. */
  private async partLimit(): Promise<Cell> {
    if (!this.t.maxParts) return { verdict: 'n/a', words: '10,000 parts' };
    const f = await this.file((this.t.maxParts + 1) * KiB);
    const client = this.s3;
    const key = 'limit/many.bin';
    const base = { client, file: f.path, bucket: this.bucket, key, minPartSize: KiB, partSize: KiB, concurrency: 8, discover: false as const };
    let refused = '';
    try {
      await createUpload({ ...base, stateDir: await this.state() }).done();
      return { verdict: 'FAIL', words: `${this.t.maxParts + 1} parts were taken` };
    } catch (e) {
      const err = e as { code?: string; message: string };
      refused = wordsOf(err.code ?? '?', err.message);
      if (!/max-parts|maxParts/.test(err.message)) return { verdict: 'FAIL', words: `no helpful step: ${refused}` };
    }
    if (!this.t.smallParts) return { verdict: 'refused', words: refused };
    const r = await createUpload({ ...base, maxParts: this.t.maxParts, stateDir: await this.state(), fresh: true }).done();
    const same = (await this.objectSha(key)) === f.sha;
    return same ? { verdict: 'pass', words: `with maxParts ${this.t.maxParts}: ${r.partsUploaded} parts, ${r.verification.level}; without: ${refused}` } : { verdict: 'FAIL', words: 'resolved but the object differs' };
  }
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** An error's code and the first sentence of what partwise said (what a user reads first). */
function wordsOf(code: string, message: string): string {
  const first = message.split('\n')[0]!;
  return `${code}: ${first.length > 240 ? `${first.slice(0, 237)}...` : first}`;
}

function errorWords(r: Run): string {
  const e = r.lines.find((l) => l.event === 'error');
  return e ? wordsOf(String(e.code), String(e.message)) : (r.stderr.trim().split('\n').at(-1) ?? '');
}

export async function readEnvFile(path: string): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const line of (await readFile(path, 'utf8')).split('\n')) {
    const m = /^export ([A-Z_]+)=(.*)$/.exec(line);
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}
