/** `partwise ls` and `partwise abort`: the incomplete uploads on the server, and removing them. */
import { abortUploads, listIncompleteUploads, readAllJournals } from '../upload/inspect.ts';
import { defaultStateDir } from '../local/journal.ts';
import { isPermanentRefusal } from '../core/errors.ts';
import { parseS3Url, port, requestOptions, UsageError, type Values } from './args.ts';
import { EXIT, type Out } from './output.ts';
import { abortShared } from './shared.ts';
import { formatAge, formatBytes, parseAge } from './render.ts';

export async function cmdLs(pos: string[], v: Values, out: Out): Promise<number> {
  if (pos.length !== 1) throw new UsageError('ls takes s3://<bucket>[/<prefix>]');
  const { bucket, key: prefix } = parseS3Url(pos[0], false);
  const rows = await listIncompleteUploads(port(v), bucket, prefix || undefined, v['state-dir'] ?? defaultStateDir(), requestOptions(v));
  if (out.json) {
    for (const r of rows) out.line({ event: 'upload', bucket, ...r, initiated: r.initiated?.toISOString(), ageSeconds: r.initiated ? Math.round((Date.now() - r.initiated.getTime()) / 1000) : undefined, abortDate: r.abortDate?.toISOString(), journal: r.journalPath !== undefined });
    return EXIT.ok;
  }
  if (rows.length === 0) {
    out.say(`No incomplete multipart uploads in s3://${bucket}/${prefix}`);
    return EXIT.ok;
  }
  const table = [['KEY', 'UPLOAD ID', 'STARTED', 'AGE', 'ABORT DATE', 'PARTS', 'BYTES', 'LOCAL JOURNAL']];
  for (const r of rows) {
    const parts = r.parts === undefined ? `? (${r.partsError ?? 'unknown'})` : String(r.parts);
    const age = r.initiated ? formatAge(Date.now() - r.initiated.getTime()) : '-';
    table.push([r.key, r.uploadId, r.initiated?.toISOString() ?? '-', age, r.abortDate?.toISOString() ?? '-', parts, r.bytes === undefined ? '?' : formatBytes(r.bytes), r.sourcePath ? `yes (${r.sourcePath})` : 'no']);
  }
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  out.say(table.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n'));
  return EXIT.ok;
}

export async function cmdAbort(pos: string[], v: Values, out: Out): Promise<number> {
  if (pos.length !== 1) throw new UsageError('abort takes s3://<bucket>/<key>, or s3://<bucket>[/<prefix>] with --older-than');
  if (v['older-than']) return cmdAbortOlder(pos[0]!, v, out);
  if (v['dry-run']) throw new UsageError('--dry-run goes with --older-than');
  const { bucket, key } = parseS3Url(pos[0], true);
  if (v['upload-id'] && v.all) throw new UsageError('give --upload-id or --all, not both');
  const s3 = port(v);
  const req = requestOptions(v);
  const stateDir = v['state-dir'] ?? defaultStateDir();
  // A shared upload's key: its plan names the upload, and goes with it.
  if (!v['upload-id'] && (await abortShared(v, bucket, key, out))) return EXIT.ok;
  let targets: { key: string; uploadId: string }[];
  let unlisted: string | undefined;
  if (v['upload-id']) targets = [{ key, uploadId: v['upload-id'] }];
  else {
    // The journals are the first source: an upload this machine started is found by its key even
    // where the server does not list uploads (or not yet).
    const endpoint = await s3.describeEndpoint();
    const journaled = [...new Set((await readAllJournals(stateDir)).filter((j) => j.data.bucket === bucket && j.data.key === key && j.data.endpoint === endpoint).map((j) => j.data.uploadId))];
    let rows: Awaited<ReturnType<typeof listIncompleteUploads>> = [];
    if (!journaled.length || v.all) {
      try {
        rows = (await listIncompleteUploads(s3, bucket, key, stateDir, req)).filter((r) => r.key === key);
      } catch (err) {
        // --all on a server without the listing: what the journals know is still aborted, and the rest said.
        if (!journaled.length || !isPermanentRefusal(err)) throw err;
        unlisted = (err as Error).message;
      }
    }
    targets = [...journaled.map((uploadId) => ({ key, uploadId })), ...(v.all ? rows.filter((r) => !journaled.includes(r.uploadId)) : [])];
    if (!v.all && targets.length === 0) {
      const hint = rows.length ? ` The server has ${rows.length} upload(s) for this key that no local journal knows: ${rows.map((r) => r.uploadId).join(', ')}; name one with --upload-id, or use --all.` : '';
      process.stderr.write(`partwise: no journaled upload for s3://${bucket}/${key}.${hint}\n`);
      return rows.length ? EXIT.usage : EXIT.ok;
    }
  }
  const aborted = await abortUploads(s3, bucket, targets, stateDir, req);
  for (const id of aborted) {
    if (out.json) out.line({ event: 'aborted', bucket, key, uploadId: id });
    else out.say(`Aborted upload ${id} of s3://${bucket}/${key}`);
  }
  if (unlisted) {
    process.stderr.write(`partwise: the journaled upload(s) were aborted, but the server's own list of uploads could not be read (${unlisted}): uploads no journal knows may remain\n`);
    return EXIT.failure;
  }
  return EXIT.ok;
}

/** Bulk clean-up: every upload under a prefix started before the given age (journaled ones under their lock). */
export async function cmdAbortOlder(url: string, v: Values, out: Out): Promise<number> {
  const { bucket, key: prefix } = parseS3Url(url, false);
  if (v['upload-id'] || v.all) throw new UsageError('--older-than selects uploads by age; leave out --upload-id and --all');
  let ageMs: number;
  try {
    ageMs = parseAge(v['older-than']!);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const s3 = port(v);
  const req = requestOptions(v);
  const stateDir = v['state-dir'] ?? defaultStateDir();
  const cutoff = Date.now() - ageMs;
  const rows = await listIncompleteUploads(s3, bucket, prefix || undefined, stateDir, req);
  const old = rows.filter((r) => r.initiated && r.initiated.getTime() < cutoff);
  const kept = rows.length - old.length;
  for (const r of old) {
    const what = `upload ${r.uploadId} of s3://${bucket}/${r.key} (started ${r.initiated!.toISOString()}, ${formatAge(Date.now() - r.initiated!.getTime())} ago${r.parts !== undefined ? `, ${r.parts} parts, ${formatBytes(r.bytes ?? 0)}` : ''})`;
    if (v['dry-run']) {
      if (out.json) out.line({ event: 'would-abort', bucket, key: r.key, uploadId: r.uploadId, initiated: r.initiated!.toISOString() });
      else out.say(`Would abort ${what}`);
      continue;
    }
    await abortUploads(s3, bucket, [{ key: r.key, uploadId: r.uploadId }], stateDir, req);
    if (out.json) out.line({ event: 'aborted', bucket, key: r.key, uploadId: r.uploadId, initiated: r.initiated!.toISOString() });
    else out.say(`Aborted ${what}`);
  }
  out.say(`${v['dry-run'] ? 'Would abort' : 'Aborted'} ${old.length} upload(s) older than ${v['older-than']} under s3://${bucket}/${prefix}; ${kept} younger (or undated) left alone.`);
  return EXIT.ok;
}
