/** `partwise upload <file> s3://bucket/key` and `partwise upload - s3://bucket/key` (a stream). */
import type { EventEmitter } from 'eventemitter3';
import { StreamUpload } from '../jobs/stream-upload.ts';
import { Upload } from '../upload/engine.ts';
import type { ProgressSnapshot, UploadEvents, UploadResult } from '../upload/events.ts';
import { engineOptions, fileUrl, rerunCommand, streamOptions, UsageError, type Values } from './args.ts';
import { compactReport, EXIT, reportError, STOP_SIGNALS, ticker, type Out } from './output.ts';
import { describeDiscovery, formatBytes, renderProgress, renderSummary, stopNotice } from './render.ts';

export async function cmdUpload(pos: string[], v: Values, argv: string[], out: Out): Promise<number> {
  if (pos.length !== 2) throw new UsageError('upload takes <file> s3://<bucket>/<key>');
  const file = pos[0]!;
  for (const flag of ['workers', 'keep-receipts', 'shard'] as const) {
    if (v[flag] !== undefined) throw new UsageError(`--${flag} does not apply to upload${flag === 'shard' ? ' of a file (it splits a folder job)' : ' (see partwise plan and partwise finish)'}`);
  }
  for (const flag of ['exclude', 'fail-fast', 'skip-unreadable'] as const) {
    if (v[flag] !== undefined) throw new UsageError(`--${flag} applies to a folder upload; ${file === '-' ? 'standard input is a stream' : `${file} is not a folder`}`);
  }
  for (const flag of ['expected-size', 'max-size'] as const) {
    if (file !== '-' && v[flag] !== undefined) throw new UsageError(`--${flag} applies to standard input (upload -); a file's size is known`);
  }
  const { bucket, key } = fileUrl(pos[0]!, pos[1]);
  const ac = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      if (!out.json) process.stderr.write(`\n${stopNotice(signal, file === '-' ? 'stream' : 'file')}\n`);
      ac.abort(new Error('interrupted'));
    } else {
      // The journal is replaced atomically, so it is valid at any instant.
      process.stderr.write(file === '-' ? `partwise: interrupted; a stream cannot be resumed. Remove what is left with: partwise abort s3://${bucket}/${key} --all\n` : `partwise: interrupted; resume with: ${rerunCommand(argv)}\n`);
      process.exit(EXIT.interrupted);
    }
  };
  // Ctrl-C, a kill, or the terminal closing: stop cleanly, the upload resumable.
  for (const sig of STOP_SIGNALS) process.on(sig, onSignal);

  const up: EventEmitter<UploadEvents> & { done(): Promise<UploadResult> } = file === '-' ? new StreamUpload(streamOptions(v, bucket, key, ac.signal)) : new Upload(engineOptions(v, file, bucket, key, ac.signal));
  let latest: ProgressSnapshot | undefined;
  up.on('progress', (s) => (latest = s));
  if (out.json) {
    up.on('plan', (e) => out.line({ event: 'plan', ...e }));
    up.on('discover', (d) => out.line({ event: 'discover', ...d }));
    up.on('reconcile', (r) => out.line({ event: 'reconcile', ...compactReport(r) }));
    up.on('verify-progress', (e) => out.line({ event: 'verify-progress', ...e }));
    up.on('part-skip', (e) => out.line({ event: 'part-skip', ...e }));
    up.on('part-start', (e) => out.line({ event: 'part-start', ...e }));
    up.on('part-done', (e) => out.line({ event: 'part-done', ...e }));
    up.on('part-retry', (e) => out.line({ event: 'part-retry', ...e }));
    up.on('warning', (e) => out.line({ event: 'warning', ...e }));
    up.on('concurrency', (e) => out.line({ event: 'concurrency', ...e }));
    up.on('progress', (s) => out.line({ event: 'progress', ...s }));
  } else if (!out.quiet) {
    up.on('warning', (e) => process.stderr.write(`\npartwise: warning: ${e.message}\n`));
    up.on('discover', (d) => out.say(describeDiscovery(d, bucket)));
    up.on('plan', (e) => {
      if (e.resumed && !e.adopted) out.say(`Resuming upload ${e.uploadId}: verifying the parts on the server against ${file}`);
    });
    up.on('reconcile', (r) => {
      const bad = r.parts.filter((p) => p.status !== 'verified' && p.status !== 'missing');
      const rate = r.hashing && r.hashing.bytes > 0 ? `, hashed at ${r.hashing.gbPerSecond.toFixed(2)} GB/s` : '';
      const msg = `Verified ${r.verified.length} of ${r.parts.length} parts on the server (${formatBytes(r.bytesVerified)}${rate}); ${r.toUpload.length} to upload (${formatBytes(r.bytesToUpload)})`;
      out.say((out.tty ? '\r\x1b[2K' : '') + msg + bad.map((p) => `\n  part ${p.partNumber}: ${p.status}${p.detail ? ` (${p.detail})` : ''}`).join(''));
    });
  }
  // Printed from the engine's own event, so a second 'complete' from the engine would show as a second line.
  if (out.json) {
    up.on('complete', (r) => {
      const { reconcile, ...rest } = r;
      out.line({ event: 'complete', ...rest, verificationLevel: r.verification.level, ...(reconcile ? { reconcile: compactReport(reconcile) } : {}) });
    });
  }
  const stop = out.tty ? ticker(() => (latest ? renderProgress(latest, process.stdout.columns || 80) : undefined)) : () => undefined;
  try {
    const r = await up.done();
    stop();
    if (!out.json) out.say(renderSummary(r));
    return EXIT.ok;
  } catch (err) {
    stop();
    return reportError(err, argv, out);
  } finally {
    for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
    // The stream is done with, however it ended: a producer still writing (or idle) must not keep
    // the command alive, or block on a full pipe nobody reads.
    if (file === '-') process.stdin.destroy();
  }
}
