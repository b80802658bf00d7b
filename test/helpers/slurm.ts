/**
 * The local Slurm cluster (scripts/slurm.sh, started by `npm test`) as the tests drive it: submit
 * batch scripts and arrays, wait for them, kill a task as SIGKILL would, requeue it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const envFile = new URL('../../.local-slurm/env', import.meta.url);

/** Loads .local-slurm/env (SLURM_CONF) into process.env. */
export function loadSlurmEnv(): void {
  if (!existsSync(envFile)) throw new Error('No Slurm cluster: run `npm run slurm:start`.');
  for (const line of readFileSync(envFile, 'utf8').split('\n')) {
    const m = /^export ([A-Z_]+)=(.*)$/.exec(line);
    if (m) process.env[m[1]!] = m[2]!;
  }
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { env: process.env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Writes a bash script in `dir` (the job's body) and returns its path. */
export async function script(dir: string, name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, `#!/bin/bash\n${body}\n`);
  await chmod(path, 0o755);
  return path;
}

/** sbatch; returns the job id (for an array, the array's). The test's environment goes with it (--export=ALL). */
export function sbatch(args: string[]): string {
  return run('sbatch', ['--parsable', ...args]).split(';')[0]!;
}

/** Waits until none of the jobs (or array tasks) is pending, running or completing. */
export async function waitJobs(ids: string[], timeoutMs = 240_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (!run('squeue', ['-h', '-j', ids.join(','), '-t', 'PD,R,CG,CF,S', '-o', '%i'])) return;
    if (Date.now() > until) throw new Error(`jobs ${ids.join(',')} still running after ${timeoutMs} ms:\n${run('squeue', ['-j', ids.join(',')])}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** A job's (or array task's) state and exit code, as `scontrol show job` says them. */
export function jobState(id: string): { state: string; exitCode: string } {
  const text = run('scontrol', ['show', 'job', id]);
  return { state: /JobState=(\S+)/.exec(text)?.[1] ?? '?', exitCode: /\bExitCode=(\S+)/.exec(text)?.[1] ?? '?' };
}

/**
 * SIGKILL to every process of an array task (not its slurmstepd), as the OOM killer or a crash
 * would; the task ends FAILED (0:9). Its processes are found by the SLURM_JOB_ID in their
 * environment: `scontrol listpids` asks only the first of several slurmd on one host.
 */
export function killTask(arrayTask: string): number {
  const real = run('squeue', ['-h', '-j', arrayTask, '-o', '%A']);
  let killed = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'slurmstepd') continue;
      if (!readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`SLURM_JOB_ID=${real}`)) continue;
      process.kill(Number(pid), 'SIGKILL');
      killed++;
    } catch {
      /* gone meanwhile, or not ours to read */
    }
  }
  return killed;
}

/** Puts a finished array task back in the queue and releases it at once (slurm.md, trap 2). */
export function requeue(arrayTask: string): void {
  run('scontrol', ['requeue', arrayTask]);
  run('scontrol', ['update', `JobId=${arrayTask}`, 'StartTime=now']);
}
