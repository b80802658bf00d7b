/** `partwise status <file> s3://bucket/key`: what a resume would do, changing nothing. */
import { Upload, type StatusReport } from '../upload/engine.ts';
import { engineOptions, fileUrl, UsageError, type Values } from './args.ts';
import { compactReport, EXIT, type Out } from './output.ts';
import { describeStatus } from './render.ts';

export async function cmdStatus(pos: string[], v: Values, out: Out): Promise<number> {
  if (pos.length !== 2) throw new UsageError('status takes <file> s3://<bucket>/<key>');
  if (v.fresh) throw new UsageError('--fresh does not apply to status: it foretells a resume, and an upload with --fresh aborts the journaled upload and starts over');
  const { bucket, key } = fileUrl(pos[0]!, pos[1]);
  const s = await new Upload(engineOptions(v, pos[0]!, bucket, key)).status();
  if (out.json) {
    const { reconcile, ...rest } = s;
    out.line({ event: 'status', ...rest, ...(reconcile ? { reconcile: compactReport(reconcile) } : {}) });
  } else out.say(describeStatus(s, pos[0]!, pos[1]!, bucket));
  return resumeWouldStop(s) ? EXIT.failure : EXIT.ok;
}

/**
 * Whether the upload a status foretells would stop with an error, from what the status found (so a
 * script can check before it resumes): the file changed, parts beyond the plan, or the upload gone
 * with the object not proven (UPLOAD_GONE, once). Options checked only at upload time (--upload-id,
 * --no-overwrite) are not foretold.
 */
export function resumeWouldStop(s: StatusReport): boolean {
  return s.sourceChanged !== undefined || (s.reconcile?.extraParts.length ?? 0) > 0 || (s.uploadGone === true && !s.alreadyComplete);
}
