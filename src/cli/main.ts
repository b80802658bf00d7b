/**
 * Layer cli/: the partwise command: parsing and options (args.ts), one file per command or family
 * of commands (upload.ts, folder.ts, status.ts, ls-abort.ts, verify.ts), output (output.ts) and
 * rendering (render.ts). It may import every layer below; bin.ts runs main().
 *
 * The partwise command: parse, then hand each command to its file. Exit codes: 0 success, 1
 * failure, 2 usage error, 3 verification mismatch, 4 not verified (nothing the server reports
 * identifies the object), 5 a folder job with entries failed or not read, 130 interrupted.
 */
import { readFileSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { OPTIONS, USAGE, UsageError, type Values } from './args.ts';
import { cmdFolder } from './folder.ts';
import { cmdAbort, cmdLs } from './ls-abort.ts';
import { EXIT, output, reportError } from './output.ts';
import { cmdFinish, cmdPlan, cmdWorker } from './shared.ts';
import { cmdStatus } from './status.ts';
import { cmdUpload } from './upload.ts';
import { cmdVerify } from './verify.ts';

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function version(): string {
  for (const url of [new URL('../../../package.json', import.meta.url), new URL('../../package.json', import.meta.url)]) {
    try {
      return (JSON.parse(readFileSync(url, 'utf8')) as { version: string }).version;
    } catch {
      /* try the next layout (built vs. source) */
    }
  }
  return 'unknown';
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    // Unparsed, --json is still honoured: a script reading stdout gets the refusal too.
    const flags = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
    return reportError(new UsageError((err as Error).message), argv, output({ json: flags.some((a) => a === '--json' || a.startsWith('--json=')) }));
  }
  const v = parsed.values as Values;
  const [cmd, ...pos] = parsed.positionals;
  if (v.version) {
    process.stdout.write(`partwise ${version()}\n`);
    return EXIT.ok;
  }
  if (v.help || cmd === 'help') {
    process.stdout.write(USAGE + '\n');
    return EXIT.ok;
  }
  const out = output(v);
  try {
    switch (cmd) {
      case 'upload':
        if (pos[0] !== undefined && pos[0] !== '-' && isDirectory(pos[0])) return await cmdFolder(pos, v, argv, out);
        return v.worker !== undefined ? await cmdWorker(pos, v, argv, out) : await cmdUpload(pos, v, argv, out);
      case 'plan':
        return await cmdPlan(pos, v, argv, out);
      case 'finish':
        return await cmdFinish(pos, v, argv, out);
      case 'status':
        return await cmdStatus(pos, v, out);
      case 'ls':
        return await cmdLs(pos, v, out);
      case 'abort':
        return await cmdAbort(pos, v, out);
      case 'verify':
        return await cmdVerify(pos, v, argv, out);
      default:
        throw new UsageError(cmd ? `unknown command ${cmd}` : 'no command given');
    }
  } catch (err) {
    return reportError(err, argv, out);
  }
}
