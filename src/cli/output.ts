/**
 * What the command says and how it ends: exit codes, the output channel (text, --json lines,
 * --quiet), the progress ticker, and every error as one line with the next step.
 */
import { ObjectUnverifiedError, ObjectVerificationError, PartwiseError, PausedError, StreamFailedError, UnexpectedError, type ErrorCode } from '../core/errors.ts';
import type { ReconcileReport } from '../core/reconcile.ts';
import { rerunCommand, UsageError, type Values } from './args.ts';

export const EXIT = { ok: 0, failure: 1, usage: 2, mismatch: 3, unverified: 4, someFilesFailed: 5, notWhole: 6, interrupted: 130 } as const;

export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export interface Out {
  json: boolean;
  quiet: boolean;
  tty: boolean;
  line(obj: unknown): void;
  say(text: string): void;
}

export function output(v: Values): Out {
  const json = v.json === true;
  const quiet = v.quiet === true;
  return {
    json,
    quiet,
    tty: process.stdout.isTTY === true && !json && !quiet,
    line: (obj) => process.stdout.write(JSON.stringify(obj) + '\n'),
    say: (text) => {
      if (!json && !quiet) process.stdout.write(text + '\n');
    },
  };
}

/** Redraws one line on a timer (never once per event), from whatever the latest state is. */
export function ticker(render: () => string | undefined, intervalMs = 200): () => void {
  let shown = false;
  const draw = () => {
    const text = render();
    if (text === undefined) return;
    const cols = process.stdout.columns || 80;
    process.stdout.write(`\r\x1b[2K${text.slice(0, cols - 1)}`);
    shown = true;
  };
  const t = setInterval(draw, intervalMs);
  return () => {
    clearInterval(t);
    draw();
    if (shown) process.stdout.write('\n');
  };
}

export function compactReport(r: ReconcileReport) {
  return {
    counts: r.counts,
    verified: r.verified.length,
    toUpload: r.toUpload,
    extraParts: r.extraParts,
    bytesVerified: r.bytesVerified,
    bytesToUpload: r.bytesToUpload,
    notVerified: r.parts.filter((p) => p.status !== 'verified'),
    ...(r.hashing ? { hashing: r.hashing } : {}),
  };
}

export function nextStep(err: PartwiseError, argv: string[]): string {
  const again = rerunCommand(argv);
  switch (err.code) {
    case 'PAUSED':
      return `resume with: ${again}`;
    case 'SOURCE_CHANGED':
      return `start over with: ${again} --fresh`;
    case 'UPLOAD_GONE':
      return `start over with: ${again}`;
    case 'OBJECT_VERIFICATION_FAILED':
      // From verify: the same file, key and every flag given (endpoint, path style, state folder,
      // encryption), so the command run as printed goes to the server just checked.
      return argv[0] === 'upload' ? `upload again with: ${again} --fresh` : `upload it again with: ${rerunCommand(['upload', ...argv.slice(1)])} --fresh`;
    case 'JOURNAL_CORRUPT':
    case 'JOURNAL_MISMATCH':
      return `start over with: ${again} --fresh`;
    default:
      return err.resumable ? `resume with: ${again}` : '';
  }
}

export function reportError(err: unknown, argv: string[], out: Out): number {
  if (err instanceof UsageError) {
    if (out.json) out.line({ event: 'error', code: 'INVALID_OPTIONS' satisfies ErrorCode, message: err.message, resumable: false });
    process.stderr.write(`partwise: ${err.message}\nRun partwise --help for usage.\n`);
    return EXIT.usage;
  }
  const e = err instanceof PartwiseError ? err : new UnexpectedError(err, {});
  const next = nextStep(e, argv);
  if (out.json) out.line({ event: 'error', code: e.code, message: e.message, resumable: e.resumable, ...e.context, ...(next ? { next } : {}) });
  process.stderr.write(`partwise: ${e.code}: ${e.message}${next ? ` Next: ${next}` : ''}\n`);
  if (e instanceof PausedError || (e instanceof StreamFailedError && e.causeCode === 'PAUSED')) return EXIT.interrupted;
  if (e instanceof ObjectVerificationError) return EXIT.mismatch;
  if (e instanceof ObjectUnverifiedError) return EXIT.unverified;
  if (e.code === 'INVALID_OPTIONS') return EXIT.usage;
  // A shared upload not whole yet: a finishing job can wait for requeued workers on this code alone.
  if (e.code === 'PARTS_MISSING') return EXIT.notWhole;
  return EXIT.failure;
}
