/**
 * One object from many workers: `partwise plan`, `partwise upload <file> … --worker I/N`, and
 * `partwise finish`. Each prints its result as one line with --json.
 */
import { abandonSharedUpload, finishSharedUpload, planSharedUpload, SharedWorker } from '../jobs/shared-upload.ts';
import { rangeOf } from '../core/shared-plan.ts';
import { engineOptions, fileUrl, indexFlag, parseS3Url, rerunCommand, UsageError, type Values } from './args.ts';
import { EXIT, reportError, STOP_SIGNALS, ticker, type Out } from './output.ts';
import { formatBytes, renderProgress, stopNotice } from './render.ts';
import type { ProgressSnapshot } from '../upload/events.ts';

/** Options a shared upload decides itself: refused rather than ignored. */
function refuseFlags(v: Values, command: string): void {
  for (const flag of ['fresh', 'upload-id', 'no-overwrite', 'exclude', 'fail-fast', 'skip-unreadable', 'expected-size', 'max-size', 'shard'] as const) {
    if (v[flag] !== undefined) throw new UsageError(`--${flag} does not apply to ${command}`);
  }
}

/** What the plan fixed (layout, checksum, object settings): a worker or finish taking them would seem to change what it cannot. */
const PLANNED = ['part-size', 'max-parts', 'checksum', 'storage-class', 'tag', 'metadata', 'content-type', 'cache-control', 'content-encoding', 'content-disposition', 'acl', 'sse', 'sse-kms-key-id', 'sse-c-key-file', 'object-lock-mode', 'object-lock-retain-until', 'legal-hold'] as const;
function refusePlanned(v: Values, command: string): void {
  for (const flag of PLANNED) if (v[flag] !== undefined) throw new UsageError(`--${flag} does not apply to ${command}: the plan fixed it (give it to partwise plan)`);
}

/** A worker's range in words: empty when the plan has fewer parts than workers. */
const rangeText = (first: number, last: number) => (first > last ? 'no parts (the plan has fewer parts than workers)' : `parts ${first}–${last}`);

/** Ctrl-C and friends stop the step; a worker's range resumes when it is run again. */
function stoppable(out: Out, what: 'file' | 'folder'): { signal: AbortSignal; done: () => void } {
  const ac = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (!out.json) process.stderr.write(`\n${stopNotice(signal, what)}\n`);
    ac.abort(new Error('interrupted'));
  };
  for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
  return { signal: ac.signal, done: () => STOP_SIGNALS.forEach((sig) => process.off(sig, onSignal)) };
}

export async function cmdPlan(pos: string[], v: Values, argv: string[], out: Out): Promise<number> {
  if (pos.length !== 2 || pos[0] === '-') throw new UsageError('plan takes <file> s3://<bucket>/<key> --workers N');
  refuseFlags(v, 'plan');
  if (v.worker !== undefined || v['keep-receipts'] !== undefined) throw new UsageError('--worker and --keep-receipts do not apply to plan');
  const workers = Number(v.workers);
  if (!v.workers || !Number.isInteger(workers) || workers < 1 || workers > 10_000) throw new UsageError(`plan needs --workers N (1 to 10,000); got ${v.workers ?? 'nothing'}`);
  const { bucket, key } = fileUrl(pos[0]!, pos[1]);
  try {
    const { discover: _d, stateDir: _s, ...o } = engineOptions(v, pos[0]!, bucket, key);
    const r = await planSharedUpload({ ...o, workers });
    const p = r.plan;
    if (out.json) out.line({ event: 'plan', reused: r.reused, finished: r.finished, planKey: r.planKey, ...p, source: { name: p.source.name, size: p.source.size, mtimeMs: p.source.mtimeMs } });
    else if (r.finished) out.say(`Already finished: s3://${bucket}/${key} holds this file (full-object ${p.checksumAlgorithm} ${p.finished!.checksum}, shown by the server; finished ${p.finished!.finishedAt}). Nothing to plan: the workers and finish, run again, prove it and do nothing.`);
    else {
      const ranges = Array.from({ length: Math.min(p.workers, 4) }, (_, i) => rangeOf(i, p.workers, p.partCount)).map((x, i) => `worker ${i}: ${rangeText(x.first, x.last)}`);
      out.say(
        [
          `${r.reused ? 'Plan already there' : 'Planned'}: upload ${p.uploadId} of ${pos[0]} → s3://${bucket}/${key}, ${p.partCount} parts of ${formatBytes(p.partSize)} (${p.checksumAlgorithm}, FULL_OBJECT) in ${p.workers} ranges (${ranges.join(', ')}${p.workers > 4 ? ', …' : ''}); plan: s3://${bucket}/${r.planKey}`,
          `Next, on each host (or as an array job): partwise upload ${pos[0]} s3://${bucket}/${key} --worker I/${p.workers} (or --worker auto); then, anywhere: partwise finish s3://${bucket}/${key}`,
        ].join('\n'),
      );
    }
    return EXIT.ok;
  } catch (err) {
    return reportError(err, argv, out);
  }
}

export async function cmdWorker(pos: string[], v: Values, argv: string[], out: Out): Promise<number> {
  if (pos.length !== 2 || pos[0] === '-') throw new UsageError('a worker takes <file> s3://<bucket>/<key> --worker I/N');
  refuseFlags(v, 'a worker');
  refusePlanned(v, 'a worker');
  const { index, count } = indexFlag(v, 'worker');
  const { bucket, key } = fileUrl(pos[0]!, pos[1]);
  const stop = stoppable(out, 'file');
  const { discover: _d, stateDir: _s, ...o } = engineOptions(v, pos[0]!, bucket, key, stop.signal);
  const w = new SharedWorker({ ...o, worker: index, ...(count !== undefined ? { workers: count } : {}) });
  let latest: ProgressSnapshot | undefined;
  w.on('progress', (s) => (latest = s));
  if (out.json) {
    w.on('plan', (e) => out.line({ event: 'plan', worker: index, ...e }));
    w.on('part-skip', (e) => out.line({ event: 'part-skip', ...e }));
    w.on('part-start', (e) => out.line({ event: 'part-start', ...e }));
    w.on('part-done', (e) => out.line({ event: 'part-done', ...e }));
    w.on('part-retry', (e) => out.line({ event: 'part-retry', ...e }));
    w.on('warning', (e) => out.line({ event: 'warning', ...e }));
  }
  else if (!out.quiet) w.on('warning', (e) => process.stderr.write(`\npartwise: warning: ${e.message}\n`));
  const tick = out.tty ? ticker(() => (latest ? renderProgress(latest, process.stdout.columns || 80) : undefined)) : () => undefined;
  try {
    const r = await w.done();
    tick();
    if (out.json) out.line({ event: 'worker-complete', ...r });
    else if (r.alreadyFinished) out.say(`Worker ${r.worker} of ${r.workers}: already finished, s3://${bucket}/${key} is proven by its full-object checksum; nothing to do`);
    else out.say(`Worker ${r.worker} of ${r.workers}: ${rangeText(r.first, r.last)}, ${r.partsVerified} verified on the server, ${r.partsSent} sent (${formatBytes(r.bytesSent)}); receipt s3://${bucket}/${r.receiptKey}`);
    return EXIT.ok;
  } catch (err) {
    tick();
    if (stop.signal.aborted) process.stderr.write(`partwise: stopped; the worker resumes its range with: ${rerunCommand(argv)}\n`);
    return stop.signal.aborted ? EXIT.interrupted : reportError(err, argv, out);
  } finally {
    stop.done();
  }
}

export async function cmdFinish(pos: string[], v: Values, argv: string[], out: Out): Promise<number> {
  if (pos.length !== 1) throw new UsageError('finish takes s3://<bucket>/<key>');
  refuseFlags(v, 'finish');
  refusePlanned(v, 'finish');
  if (v.worker !== undefined || v.workers !== undefined) throw new UsageError('--worker and --workers do not apply to finish');
  const { bucket, key } = parseS3Url(pos[0], true);
  try {
    const { file: _f, discover: _d, stateDir: _s, ...o } = engineOptions(v, '-', bucket, key);
    const r = await finishSharedUpload({ ...o, ...(v['keep-receipts'] ? { keepRecords: true } : {}) });
    if (out.json) out.line({ event: 'finish-complete', ...r, verificationLevel: r.verification.level });
    else out.say(`${r.alreadyComplete ? 'Already complete' : 'Finished'}: s3://${bucket}/${key} (${formatBytes(r.size)}, ${r.partCount} parts), full-object ${r.checksumAlgorithm} ${r.checksum} combined from the receipts and shown by the server${r.recordsKept ? '; plan and receipts kept' : ''}\n  verification: ${r.verification.level}\n${r.verification.checks.map((c) => `  ✔ ${c}`).join('\n')}`);
    return EXIT.ok;
  } catch (err) {
    return reportError(err, argv, out);
  }
}

/** `abort s3://bucket/key` on a shared upload's key: its upload aborted, its plan and receipts removed (a finished one: its records only). */
export async function abortShared(v: Values, bucket: string, key: string, out: Out): Promise<boolean> {
  const { file: _f, discover: _d, stateDir: _s, ...o } = engineOptions(v, '-', bucket, key);
  const r = await abandonSharedUpload(o);
  if (r === undefined) return false;
  if (out.json) out.line({ event: 'aborted', bucket, key, uploadId: r.uploadId, plan: true, finished: r.finished });
  else if (r.finished) out.say(`Removed the finished record of shared upload ${r.uploadId} (and any receipts kept); the object s3://${bucket}/${key} stays`);
  else out.say(`Aborted shared upload ${r.uploadId} of s3://${bucket}/${key}; its plan and receipts removed`);
  return true;
}
