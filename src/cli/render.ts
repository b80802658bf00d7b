/** Pure formatting for the CLI: sizes, rates, the progress line and the summary. */
import type { StatusReport } from '../upload/engine.ts';
import type { DiscoveryReport, ProgressSnapshot, UploadResult } from '../upload/events.ts';

const UNITS: [number, string][] = [
  [1024 ** 4, 'TiB'],
  [1024 ** 3, 'GiB'],
  [1024 ** 2, 'MiB'],
  [1024, 'KiB'],
];

export function formatBytes(n: number): string {
  for (const [size, unit] of UNITS) if (n >= size) return `${(n / size).toFixed(n / size >= 100 ? 0 : 1)} ${unit}`;
  return `${Math.floor(n)} B`;
}

/** Parses "8MiB", "64 MiB", "1GiB", "5MB", "1048576" into bytes. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB|K|M|G|T)?\s*$/i.exec(text);
  if (!m) throw new Error(`not a size: ${JSON.stringify(text)} (use e.g. 8MiB, 64MiB, 1GiB)`);
  const unit = (m[2] ?? 'B').toLowerCase();
  const mult: Record<string, number> = {
    b: 1,
    kib: 1024,
    k: 1024,
    mib: 1024 ** 2,
    m: 1024 ** 2,
    gib: 1024 ** 3,
    g: 1024 ** 3,
    tib: 1024 ** 4,
    t: 1024 ** 4,
    kb: 1e3,
    mb: 1e6,
    gb: 1e9,
    tb: 1e12,
  };
  const v = Number(m[1]) * mult[unit]!;
  if (!Number.isSafeInteger(Math.round(v))) throw new Error(`size out of range: ${text}`);
  return Math.round(v);
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function bar(fraction: number, width: number): string {
  const f = Math.max(0, Math.min(1, fraction));
  const full = Math.floor(f * width);
  return '█'.repeat(full) + (full < width ? '░'.repeat(width - full) : '');
}

/** One progress line for a terminal of `columns` width. */
export function renderProgress(s: ProgressSnapshot, columns = 80): string {
  if (s.phase === 'verify' || (s.phase === 'prepare' && s.bytesToHash > 0)) {
    const f = s.bytesToHash ? s.bytesHashed / s.bytesToHash : 0;
    const tail = ` ${Math.floor(f * 100)}% ${formatBytes(s.bytesHashed)}/${formatBytes(s.bytesToHash)} hashed`;
    return `Verifying ${bar(f, Math.max(10, Math.min(30, columns - tail.length - 12)))}${tail}`;
  }
  const done = s.bytesSkipped + s.bytesAcknowledged;
  const label = s.phase === 'complete' || s.phase === 'done' ? 'Completing' : 'Uploading';
  const retries = s.retries ? ` ${s.retries} retries` : '';
  // A stream of unknown length (stdin): no total, so no bar, share or ETA, only what went up.
  if (s.totalBytes === 0) return `${label} ${formatBytes(done)} sent ${formatBytes(s.bytesPerSecond)}/s parts ${s.partsUploaded}${retries}`;
  const pct = Math.floor(s.fractionDone * 100);
  const left = s.totalBytes - done;
  const eta = s.bytesPerSecond > 0 && left > 0 ? ` ETA ${formatDuration((left / s.bytesPerSecond) * 1000)}` : '';
  const parts = `parts ${s.partsSkipped + s.partsUploaded}/${s.partsTotal}${s.partsSkipped ? ` (${s.partsSkipped} verified)` : ''}`;
  const tail = ` ${pct}% ${formatBytes(done)}/${formatBytes(s.totalBytes)} ${formatBytes(s.bytesPerSecond)}/s${eta} ${parts}${retries}`;
  return `${label} ${bar(s.fractionDone, Math.max(10, Math.min(30, columns - tail.length - 12)))}${tail}`;
}

export function renderSummary(r: UploadResult): string {
  const lines = [
    r.alreadyComplete ? `Already complete: s3://${r.bucket}/${r.key} (a previous run finished it; nothing sent)` : `Uploaded s3://${r.bucket}/${r.key}${r.resumed ? ' (resumed)' : ''}`,
    `  parts:        ${r.partCount} total, ${r.partsSkipped} verified on the server and skipped, ${r.partsUploaded} uploaded, ${r.retries} retries`,
    `  sent:         ${formatBytes(r.bytesSent)} of ${formatBytes(r.size)} in ${formatDuration(r.durationMs)}`,
    `  verification: ${r.verification.level}${r.checksum ? ` (${r.checksumAlgorithm} ${r.checksum})` : ''}${r.verification.level === 'size' ? ' — NOT proven: only the size matched' : ''}`,
    `  etag:         ${r.etag}`,
    `  upload id:    ${r.uploadId}`,
  ];
  return lines.join('\n');
}

/** "7d", "12h", "30m", "45s" (or a combination: "1d12h") into milliseconds. */
export function parseAge(text: string): number {
  const unit: Record<string, number> = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 };
  const parts = [...text.trim().matchAll(/(\d+)\s*([dhms])/gi)];
  if (parts.length === 0 || parts.map((m) => m[0]).join('').replace(/\s/g, '') !== text.trim().replace(/\s/g, '')) throw new Error(`not an age: ${JSON.stringify(text)} (use e.g. 7d, 12h, 30m)`);
  return parts.reduce((a, m) => a + Number(m[1]) * unit[m[2]!.toLowerCase()]!, 0);
}

/** An age for people: "3d 4h", "2h 5m", "40s". */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

/** The first line of a folder job's summary: "nothing to send" only when every file is proven already there. */
export function jobSummaryLine(r: {
  files: number;
  uploaded: number;
  skipped: number;
  failed: number;
  interrupted: number;
  unreadable?: number;
  excluded?: number;
  notRegular?: number;
  abandoned?: number;
  bytesSent: number;
  outcomes: { status: string; notStarted?: true }[];
}): string {
  // What else the walk met: never a reason for "nothing to send" to hide a failure or an entry not read.
  const besides = [
    ...(r.unreadable ? [`${r.unreadable} not read (unreadable, skipped as asked)`] : []),
    ...(r.notRegular ? [`${r.notRegular} not regular files (not read)`] : []),
    ...(r.excluded ? [`${r.excluded} excluded`] : []),
    ...(r.abandoned ? [`${r.abandoned} upload(s) of files deleted since an interrupted run aborted`] : []),
  ];
  const tail = besides.length ? `; ${besides.join('; ')}` : '';
  if (r.skipped === r.files && r.files > 0 && r.failed === 0 && r.interrupted === 0) return `Nothing to send: all ${r.files} files are already uploaded (each confirmed by the checksum or ETag recorded when it was sent)${tail}.`;
  // Where the failed files were named: as each failed, on stderr; the ones never started, nowhere else.
  const named = r.outcomes.filter((x) => x.status === 'failed' && !x.notStarted).length;
  const notStarted = r.failed - named;
  const notes = [...(named ? ['each named on stderr as it failed'] : []), ...(notStarted ? [`${notStarted} not started`] : [])];
  const failed = `${r.failed} failed${notes.length ? ` (${notes.join('; ')})` : ''}`;
  return `Uploaded ${r.uploaded} of ${r.files} files (${formatBytes(r.bytesSent)} sent); ${r.skipped} already there; ${failed}${r.interrupted ? `; ${r.interrupted} left for the next run` : ''}${tail}.`;
}

/**
 * What the CLI prints on the first stop signal. Ctrl-C is offered again only to whom pressed it: a
 * service manager's SIGTERM or a closed terminal's SIGHUP is not a keyboard.
 */
export function stopNotice(signal: NodeJS.Signals, what: 'file' | 'stream' | 'folder'): string {
  const by = signal === 'SIGINT' ? 'Ctrl-C' : signal;
  const again = signal === 'SIGINT' ? '(Ctrl-C again to quit at once)' : '(a second signal quits at once)';
  if (what === 'folder') return `partwise: stopping (${by}); finished files and parts stay recorded (run the same command to continue)`;
  if (what === 'stream') return `partwise: stopping (${by}); the stream's upload will be aborted ${again}`;
  return `partwise: stopping (${by}); finished parts stay recorded in the journal ${again}`;
}

/** What discovery found, each stale upload with the command that removes it. */
export function describeDiscovery(d: DiscoveryReport, bucket: string): string {
  // Not "starting a new upload": the key may yet prove to hold the file already, or the run be refused.
  const lines = [d.chosen ? `Found ${d.why}` : `No journal; ${d.why}.`];
  for (const id of d.aborted ?? []) lines.push(`  upload ${id}: the empty upload this machine created before it was stopped; aborted (nothing to keep)`);
  for (const c of d.candidates) {
    if (c.uploadId === d.chosen || d.aborted?.includes(c.uploadId)) continue;
    lines.push(`  upload ${c.uploadId}${c.initiated ? ` (started ${c.initiated.toISOString()})` : ''}: ${c.status}: ${c.why}. Abort it with: partwise abort s3://${bucket}/${d.key} --upload-id ${c.uploadId}`);
  }
  return lines.join('\n');
}

export function describeStatus(s: StatusReport, file: string, url: string, bucket: string): string {
  if (!s.exists && s.alreadyComplete) return `No journal for ${file} → ${url}, and the object at the key is already this file (proven): an upload would send nothing.`;
  if (!s.exists && s.discovery) {
    const d = s.discovery;
    return `No journal for ${file} → ${url}.\n${d.chosen ? `An upload would adopt upload ${d.chosen}: ${d.why.replace(/^adopting upload \S+: /, '')}` : `An upload would start a new one: ${d.why}.`}${describeDiscovery(d, bucket).split('\n').slice(1).map((l) => `\n${l}`).join('')}`;
  }
  if (!s.exists) return `No journal for ${file} → ${url}: an upload would start from scratch.`;
  const head = `Upload ${s.uploadId} of ${file} → ${url}: ${s.plan!.partCount} parts of ${formatBytes(s.plan!.partSize)} (journal ${s.journalPath})`;
  if (s.sourceChanged) return `${head}\nThe file changed since the upload started (${s.sourceChanged.join(', ')}): a resume would refuse; use upload --fresh.`;
  if (s.alreadyComplete) return `${head}\nAlready complete: the upload is finished and the object is proven to be the file; an upload would send nothing.`;
  if (s.uploadGone) return `${head}\nThe server no longer has this upload and the object at the key is not proven to be this file: an upload would stop with UPLOAD_GONE and remove the journal; the run after it starts over.`;
  const r = s.reconcile!;
  const lines = [head, `  verified on the server: ${r.verified.length} parts (${formatBytes(r.bytesVerified)})`, `  to upload: ${r.toUpload.length} parts (${formatBytes(r.bytesToUpload)} left)`];
  for (const p of r.parts) if (p.status !== 'verified' && p.status !== 'missing') lines.push(`  part ${p.partNumber}: ${p.status}${p.detail ? ` (${p.detail})` : ''}`);
  const missing = r.parts.filter((p) => p.status === 'missing').length;
  if (missing) lines.push(`  missing: ${missing} parts`);
  if (r.extraParts.length) lines.push(`  unexpected parts on the server: ${r.extraParts.join(', ')}: a resume would refuse (REMOTE_PARTS_INCONSISTENT); use upload --fresh`);
  return lines.join('\n');
}
