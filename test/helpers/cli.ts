import { spawn } from 'node:child_process';
import { loadS3Env } from './s3.ts';

/** The built command, as `npx partwise` runs it (npm test builds first). */
export const BIN = new URL('../../dist/src/bin.js', import.meta.url).pathname;

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function cliEnv(stateDir: string): NodeJS.ProcessEnv {
  loadS3Env();
  return { ...process.env, PARTWISE_STATE_DIR: stateDir };
}

export function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

export function jsonLines(stdout: string): { event: string; [k: string]: unknown }[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { event: string });
}
