/**
 * Crash torture against the local RADOS Gateway: each round uploads a multi-part file, kills the
 * uploading process with SIGKILL at chosen moments (sometimes twice in a row), then reruns the same
 * upload until it exits 0, and checks: the object is byte-identical (hash of a download), no journal
 * was ever unreadable, bytes sent again stayed within what was in flight, no upload is left open.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { watch } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { GetObjectCommand, ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';
import { readJournal } from '../../src/local/journal.ts';
import { mulberry32 } from '../helpers/fault-proxy.ts';

export const MOMENTS = ['after-create', 'mid-part', 'journal-write', 'verify', 'complete-in-flight', 'after-complete', 'random'] as const;
export type Moment = (typeof MOMENTS)[number];

export interface RoundResult {
  round: number;
  kills: Moment[];
  /** kills that landed (the child reached the moment and died by SIGKILL) */
  killsLanded: number;
  runs: number;
  identical: boolean;
  unreadableJournals: number;
  /** part bytes started across all runs, minus the file size */
  bytesResent: number;
  /** kills × concurrency × part size */
  resendBound: number;
  openUploadsLeft: number;
  /** journal-write kills sent the instant a journal write was seen under way (a temp file, or the log growing) */
  midWriteKills: number;
  error?: string;
}

export interface TortureOptions {
  client: S3Client;
  bucket: string;
  /** each round's kill sequence */
  plan: Moment[][];
  partSize?: number;
  parts?: number;
  concurrency?: number;
  seed?: number;
  log?: (line: string) => void;
}

const child = new URL('./child.mjs', import.meta.url).pathname;

interface RunOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  bytesStarted: number;
  reached: boolean;
}

/** One run of the child; `kill` says when to SIGKILL it (undefined: let it finish). */
function runChild(args: Record<string, unknown>, kill: Moment | undefined, stateDir: string, random: () => number): Promise<RunOutcome> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [child], { env: { ...process.env, PARTWISE_CHILD_ARGS: JSON.stringify({ ...args, hangAt: kill }) }, stdio: ['ignore', 'pipe', 'pipe'] });
    let bytesStarted = 0;
    let reached = false;
    const die = () => {
      if (reached) return;
      reached = true;
      p.kill('SIGKILL');
    };
    // During a journal write: the moment a temp file appears beside the journal (a full write,
    // before its rename) or the part log grows (an append, before its sync returns).
    // Only once the upload is under way (after its plan): the very first write is begin's.
    let planned = false;
    const watcher = kill === 'journal-write' ? watch(stateDir, (_e, name) => planned && name && (name.includes('.json.tmp-') || name.endsWith('.json.log')) && die()) : undefined;
    createInterface({ input: p.stdout! }).on('line', (line) => {
      if (line.startsWith('plan ')) planned = true;
      if (line.startsWith('start ')) bytesStarted += Number(line.split(' ')[2]);
      if (line === `at ${kill}`) die();
      if (kill === 'random' && line.startsWith('plan ')) setTimeout(die, Math.floor(random() * 200));
    });
    p.stderr!.resume();
    p.on('exit', (code, signal) => {
      watcher?.close();
      resolve({ code, signal, bytesStarted, reached: reached && signal === 'SIGKILL' });
    });
  });
}

async function journalsReadable(dir: string): Promise<number> {
  let bad = 0;
  for (const n of await readdir(dir)) {
    if (!n.endsWith('.json')) continue;
    await readJournal(join(dir, n)).catch(() => bad++);
  }
  return bad;
}

export async function runTorture(o: TortureOptions): Promise<RoundResult[]> {
  const partSize = o.partSize ?? 1024 * 1024;
  const parts = o.parts ?? 10;
  const concurrency = o.concurrency ?? 3;
  const random = mulberry32(o.seed ?? 7);
  const results: RoundResult[] = [];
  for (const [i, kills] of o.plan.entries()) {
    const dir = await mkdtemp(join(tmpdir(), 'partwise-torture-'));
    const bytes = randomBytes(parts * partSize - 1234);
    const file = join(dir, 'data.bin');
    await writeFile(file, bytes);
    const key = `torture/${Date.now()}-${i}.bin`;
    const args = { file, bucket: o.bucket, key, stateDir: dir, partSize, concurrency };
    const r: RoundResult = { round: i + 1, kills, killsLanded: 0, runs: 0, identical: false, unreadableJournals: 0, bytesResent: 0, resendBound: 0, openUploadsLeft: 0, midWriteKills: 0 };
    let started = 0;
    try {
      let finished = false;
      for (const k of kills) {
        const out = await runChild(args, k, dir, random);
        r.runs++;
        started += out.bytesStarted;
        if (out.reached) r.killsLanded++;
        if (k === 'journal-write' && out.reached) r.midWriteKills++;
        r.unreadableJournals += await journalsReadable(dir);
        // The moment never came (the upload finished first): the round is over, as for a user.
        if (out.code === 0) {
          finished = true;
          break;
        }
      }
      for (let attempt = 0; !finished; attempt++) {
        const out = await runChild(args, undefined, dir, random);
        r.runs++;
        started += out.bytesStarted;
        r.unreadableJournals += await journalsReadable(dir);
        if (out.code === 0) finished = true;
        else if (attempt >= 3) throw new Error(`the rerun kept failing (exit ${out.code})`);
      }
      const got = await o.client.send(new GetObjectCommand({ Bucket: o.bucket, Key: key }));
      const sha = createHash('sha256').update(await got.Body!.transformToByteArray()).digest('hex');
      r.identical = sha === createHash('sha256').update(bytes).digest('hex');
      r.bytesResent = Math.max(0, started - bytes.length);
      r.resendBound = r.killsLanded * concurrency * partSize;
      const open = await o.client.send(new ListMultipartUploadsCommand({ Bucket: o.bucket, Prefix: key }));
      r.openUploadsLeft = (open.Uploads ?? []).filter((u) => u.Key === key).length;
    } catch (err) {
      r.error = (err as Error).message;
    }
    o.log?.(`round ${r.round}: kills ${kills.join('+')} (${r.killsLanded} landed), ${r.runs} runs, ${r.identical ? 'identical' : 'NOT IDENTICAL'}, re-sent ${r.bytesResent} ≤ ${r.resendBound}, open ${r.openUploadsLeft}${r.error ? `, error: ${r.error}` : ''}`);
    results.push(r);
    await rm(dir, { recursive: true, force: true });
  }
  return results;
}

/** The default plan: every moment alone, then pairs (a second kill during the resume). */
export function torturePlan(rounds: number, seed = 7): Moment[][] {
  const random = mulberry32(seed);
  const plan: Moment[][] = [['after-create'], ['mid-part'], ['journal-write'], ['mid-part', 'verify'], ['complete-in-flight'], ['after-complete'], ['random']];
  const first: Moment[] = ['after-create', 'mid-part', 'journal-write', 'random', 'complete-in-flight', 'after-complete'];
  const second: Moment[] = ['verify', 'mid-part', 'journal-write', 'random', 'complete-in-flight', 'after-complete'];
  while (plan.length < rounds) {
    const a = first[Math.floor(random() * first.length)]!;
    plan.push(random() < 0.5 ? [a] : [a, second[Math.floor(random() * second.length)]!]);
  }
  return plan.slice(0, Math.max(rounds, 1));
}

export interface Figures {
  rounds: number;
  killsByMoment: Record<string, { planned: number; landed: number }>;
  identical: number;
  unreadableJournals: number;
  bytesResent: number;
  resendBound: number;
  roundsOverBound: number;
  openUploadsLeft: number;
  midWriteKills: number;
  errors: string[];
}

export function figures(results: RoundResult[]): Figures {
  const killsByMoment: Figures['killsByMoment'] = {};
  for (const m of MOMENTS) killsByMoment[m] = { planned: 0, landed: 0 };
  for (const r of results) for (const k of r.kills) killsByMoment[k]!.planned++;
  // Landed kills are counted per round; attribute them in order (a round's kills land in sequence).
  for (const r of results) r.kills.slice(0, r.killsLanded).forEach((k) => killsByMoment[k]!.landed++);
  return {
    rounds: results.length,
    killsByMoment,
    identical: results.filter((r) => r.identical).length,
    unreadableJournals: results.reduce((a, r) => a + r.unreadableJournals, 0),
    bytesResent: results.reduce((a, r) => a + r.bytesResent, 0),
    resendBound: results.reduce((a, r) => a + r.resendBound, 0),
    roundsOverBound: results.filter((r) => r.bytesResent > r.resendBound).length,
    openUploadsLeft: results.reduce((a, r) => a + r.openUploadsLeft, 0),
    midWriteKills: results.reduce((a, r) => a + r.midWriteKills, 0),
    errors: results.filter((r) => r.error).map((r) => `round ${r.round}: ${r.error}`),
  };
}

export function renderFigures(f: Figures, meta: string): string {
  const rows = Object.entries(f.killsByMoment)
    .filter(([, v]) => v.planned)
    .map(([m, v]) => `| ${m} | ${v.planned} | ${v.landed} |`);
  return [
    `| measure | value |`,
    `|---|---|`,
    `| rounds | ${f.rounds} |`,
    `| objects byte-identical to the file | ${f.identical}/${f.rounds} |`,
    `| unreadable journals seen (after every kill and every run) | ${f.unreadableJournals} |`,
    `| bytes sent again, all rounds | ${f.bytesResent} (bound: ${f.resendBound} = kills × concurrency × part size) |`,
    `| rounds over the bound | ${f.roundsOverBound} |`,
    `| multipart uploads left open | ${f.openUploadsLeft} |`,
    `| journal-write kills sent the instant a write was seen under way | ${f.midWriteKills} of ${f.killsByMoment['journal-write']?.landed ?? 0} |`,
    `| errors | ${f.errors.length ? f.errors.join('; ') : 'none'} |`,
    ``,
    `| kill moment | planned | landed |`,
    `|---|---|---|`,
    ...rows,
    ``,
    meta,
  ].join('\n');
}
