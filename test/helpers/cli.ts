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
  return collect(process.execPath, [BIN, ...args], env);
}

/** The command with `input` on its standard input: a pipe (a stream has no size to plan from), or bytes written at once. */
export function runCliPiped(args: string[], env: NodeJS.ProcessEnv, input: Buffer | NodeJS.ReadableStream): Promise<CliRun> {
  return collect(process.execPath, [BIN, ...args], env, input);
}

function collect(cmd: string, argv: string[], env: NodeJS.ProcessEnv, input?: Buffer | NodeJS.ReadableStream): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(cmd, argv, { env, stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    if (input) {
      child.stdin!.on('error', () => undefined); // a usage error exits before reading: EPIPE is expected
      if (Buffer.isBuffer(input)) child.stdin!.end(input);
      else input.pipe(child.stdin!);
    }
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/**
 * The command as a user whom permissions bind. root reads everything (CAP_DAC_OVERRIDE), so under
 * root it runs without the two capabilities that bypass them: still root, so it reaches dist/ and
 * the state folder wherever the repository is cloned (a 0700 parent included), but a mode-000 file
 * or folder is refused to it as to anyone. Other users run it as they are.
 */
export function runCliUnprivileged(args: string[], env: NodeJS.ProcessEnv): Promise<CliRun> {
  if (process.getuid?.() !== 0) return runCli(args, env);
  return collect('setpriv', ['--bounding-set=-dac_override,-dac_read_search', '--', process.execPath, BIN, ...args], env);
}

export function jsonLines(stdout: string): { event: string; [k: string]: unknown }[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { event: string });
}
