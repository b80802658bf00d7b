/** `partwise upload <folder> s3://bucket/prefix/`: the folder as one resumable job. */
import { FolderJob, type JobProgress } from '../jobs/folder-job.ts';
import { engineOptions, indexFlag, parseS3Url, rerunCommand, UsageError, type Values } from './args.ts';
import { EXIT, reportError, STOP_SIGNALS, ticker, type Out } from './output.ts';
import { formatBytes, jobSummaryLine, stopNotice } from './render.ts';

/** `upload <dir> s3://bucket/prefix/`: the folder as one resumable job. */
export async function cmdFolder(pos: string[], v: Values, argv: string[], out: Out): Promise<number> {
  if (pos.length !== 2) throw new UsageError('upload takes <folder> s3://<bucket>/[<prefix>/]');
  for (const flag of ['upload-id', 'expected-size', 'max-size', 'worker', 'workers', 'keep-receipts'] as const) if (v[flag]) throw new UsageError(`--${flag} does not apply to a folder${flag === 'worker' ? ' (a folder is split across workers with --shard)' : ''}`);
  const { bucket, key: prefix } = parseS3Url(pos[1], false);
  const ac = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (!out.json) process.stderr.write(`\n${stopNotice(signal, 'folder')}\n`);
    ac.abort(new Error('interrupted'));
  };
  for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
  const { file: _f, key: _k, signal: _s, ...o } = engineOptions(v, pos[0]!, bucket, prefix || '-', ac.signal);
  const shard = v.shard !== undefined ? indexFlag(v, 'shard') : undefined;
  // Slurm's task count is the array submitted, not the shards: a rerun of one task is an array of one.
  if (shard && shard.count === undefined) throw new UsageError(`--shard ${v.shard}: the number of shards must be given, --shard auto/N (the scheduler gives each task its index, and a rerun of one task, sbatch --array=2, is an array of one)`);
  const job = new FolderJob({ ...o, dir: pos[0]!, prefix: prefix ?? '', exclude: v.exclude ?? [], signal: ac.signal, ...(v['fail-fast'] ? { failFast: true } : {}), ...(v['skip-unreadable'] ? { skipUnreadable: true } : {}), ...(shard ? { shard: { index: shard.index, count: shard.count! } } : {}) });
  let latest: JobProgress | undefined;
  const t0 = Date.now();
  job.on('job-progress', (p) => (latest = p));
  if (out.json) {
    job.on('job-plan', (e) => out.line({ event: 'job-plan', ...e }));
    job.on('file-start', (e) => out.line({ event: 'file-start', ...e }));
    job.on('file-done', (e) => out.line({ event: 'file-done', ...e }));
    job.on('file-event', (e) => out.line({ event: e.event, file: e.file, key: e.key, ...(e.data as object) }));
    job.on('job-progress', (e) => out.line({ event: 'job-progress', ...e }));
    job.on('warning', (e) => out.line({ event: 'warning', ...e }));
    job.on('concurrency', (e) => out.line({ event: 'concurrency', ...e }));
  } else {
    if (!out.quiet) job.on('warning', (e) => process.stderr.write(`\npartwise: warning: ${e.file ? `${e.file}: ` : ''}${e.message}\n`));
    // As each file fails, once, on stderr, --quiet or not: a job run from cron must not fail silently.
    job.on('file-done', (e) => {
      if (e.status === 'failed') process.stderr.write(`${out.tty ? '\r\x1b[2K' : ''}partwise: failed: ${e.file}: ${e.error?.code}: ${e.error?.message}\n`);
    });
  }
  const stop = out.tty
    ? ticker(() => {
        if (!latest) return undefined;
        const rate = latest.bytesSent / Math.max(0.001, (Date.now() - t0) / 1000);
        return `files ${latest.filesDone}/${latest.files}  ${formatBytes(Math.min(latest.bytesDone, latest.bytesTotal))} of ${formatBytes(latest.bytesTotal)}  ${formatBytes(rate)}/s`;
      })
    : () => undefined;
  try {
    const r = await job.done();
    stop();
    if (out.json) out.line({ event: 'job-complete', ...r });
    else if (!out.quiet) {
      const lines = [
        jobSummaryLine(r),
        ...r.notRead.map((x) => `  not read: ${x.path}: ${x.why}`),
        ...r.outcomes.filter((x) => x.status === 'unreadable').map((x) => `  not read: ${x.file}: ${x.error?.message ?? 'unreadable'} (skipped as asked)`),
      ];
      if (ac.signal.aborted) lines.push(`Stopped; continue with: ${rerunCommand(argv)}`);
      out.say(lines.join('\n'));
    }
    if (ac.signal.aborted) return EXIT.interrupted;
    return r.failed > 0 ? EXIT.someFilesFailed : EXIT.ok;
  } catch (err) {
    stop();
    return reportError(err, argv, out);
  } finally {
    for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
  }
}
