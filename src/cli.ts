/**
 * The partwise command. Exit codes: 0 success, 1 failure, 2 usage error, 3 verification mismatch,
 * 4 not verified (nothing the server reports identifies the object), 130 interrupted (resumable).
 */
import { fstatSync, readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import type { EventEmitter } from 'eventemitter3';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { isChecksumAlgorithm, type ChecksumAlgorithm } from './checksums.ts';
import { formatAge, formatBytes, jobSummaryLine, parseAge, parseSize, renderProgress, renderSummary, stopNotice } from './cli-render.ts';
import type { DiscoveryReport } from './discover.ts';
import { Upload, type EngineOptions, type StatusReport } from './engine.ts';
import { ObjectUnverifiedError, type ErrorCode, ObjectVerificationError, PartwiseError, PausedError, StreamFailedError, UnexpectedError } from './errors.ts';
import { abortUploads, listIncompleteUploads, verifyObject } from './inspect.ts';
import { defaultStateDir } from './journal.ts';
import { settingsProblems, type CannedAcl, type ObjectLockMode, type ObjectSettingOptions, type StorageClass } from './object-settings.ts';
import type { ProgressSnapshot, UploadEvents, UploadResult } from './events.ts';
import type { ReconcileReport } from './reconcile.ts';
import { S3_MAX_PART_SIZE, S3_MIN_PART_SIZE } from './planner.ts';
import { SdkS3Port } from './s3-adapter.ts';
import { StreamUpload, type StreamUploadOptions } from './stream-upload.ts';
import { FolderJob, type JobProgress } from './folder-job.ts';
import type { RequestOptions, S3Port } from './s3-port.ts';

const USAGE = `partwise: resumable S3 multipart uploads that verify every part before trusting it

Usage:
  partwise upload <file> s3://<bucket>/<key> [options]   upload, or resume (verify first, then send what is missing)
  partwise upload <folder> s3://<bucket>/[<prefix>/] [--exclude GLOB] [--fail-fast]
                          the folder as one resumable job: rerun to continue; finished files are not sent again
  partwise upload - s3://<bucket>/<key> [--expected-size SIZE | --max-size SIZE]   upload standard input (a pipe); cannot be resumed:
                          every part and the object are verified, and on failure the upload is aborted
  partwise status <file> s3://<bucket>/<key> [options]   dry run: what a resume would do, changing nothing
  partwise ls s3://<bucket>[/<prefix>] [options]         incomplete multipart uploads: start, age, parts, abort date
  partwise abort s3://<bucket>/<key> [--upload-id ID | --all] [options]
  partwise abort s3://<bucket>[/<prefix>] --older-than AGE [--dry-run]   every upload under the prefix started before AGE (7d, 12h, 30m)
  partwise verify <file> s3://<bucket>/<key> [options]   check a finished object against the file, without downloading it

Upload options:
  --part-size SIZE        part size, e.g. 8MiB, 64MiB, 1GiB (default 16MiB; raised to fit 10,000 parts)
  --concurrency N         parallel part uploads (default 4)
  --max-rate RATE         cap the bytes per second sent, e.g. 50MiB/s, 20MB/s (smooth, not bursts)
  --checksum ALG          crc32c (default) | crc64nvme | crc32 | sha256 | sha1 | none
  --fresh                 abort the journaled upload for this file and destination, and start over
  --upload-id ID          adopt this upload already on the server (its parts are verified against the file first)
  --no-discover           with no journal, do not look for an upload of this key to adopt (the default looks)
  --expected-size SIZE    with upload -: the stream's exact size: the part size fits 10,000 parts, and a stream of
                          another length (a producer that died) fails, aborted, replacing nothing
  --max-size SIZE         with upload -: an upper bound instead, for planning only (a shorter stream is fine)
                          (without it a stream over 10,000 × part size fails when it gets there)
  --exclude GLOB          folder: skip matching paths (repeatable): *.tmp, .git, logs/**
  --fail-fast             folder: stop starting files after the first failure (exit 5 when any file failed)
  --skip-unreadable       folder: list and count entries that cannot be read instead of failing on them
  --no-overwrite          never replace an object at the key (checked first, and If-None-Match on Complete)
Object settings (fixed when the upload is created; a resume must give the same ones):
  --storage-class CLASS   STANDARD, STANDARD_IA, INTELLIGENT_TIERING, GLACIER_IR, GLACIER, DEEP_ARCHIVE, ...
  --tag KEY=VALUE         object tag (repeatable, at most 10)
  --metadata KEY=VALUE    user metadata, x-amz-meta-KEY (repeatable)
  --content-type TYPE     default: guessed from the file's extension (application/octet-stream if unknown)
  --cache-control VALUE   --content-encoding VALUE   --content-disposition VALUE
  --acl CANNED            private, public-read, bucket-owner-full-control, ...
  --sse aws:kms|AES256    server-side encryption; --sse-kms-key-id ID picks the KMS key
  --object-lock-mode GOVERNANCE|COMPLIANCE --object-lock-retain-until ISO-DATE
  --legal-hold            Object Lock legal hold ON
Connection and state:
  --endpoint URL          S3 endpoint (default: AWS_ENDPOINT_URL, the profile's endpoint_url, or AWS)
  --region REGION         region (default: AWS_REGION or the profile's)
  --path-style            path-style URLs (default on when an endpoint is set)
  --virtual-host          virtual-host URLs (bucket.host) even with an endpoint set
  --state-dir DIR         journal folder (default: $PARTWISE_STATE_DIR or ~/.local/state/partwise)
  --sse-c-key-file FILE   SSE-C key: 32 raw bytes, or their base64
  --request-payer         send x-amz-request-payer: requester
  --expected-bucket-owner ACCOUNT
Output:
  --json                  one JSON object per line on stdout
  --quiet                 no progress bar and no summary
  -h, --help              this text
  --version               the version

Credentials come from the AWS SDK's standard chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
AWS_PROFILE, shared config and credentials files, ...).`;

const OPTIONS = {
  'part-size': { type: 'string' },
  'max-rate': { type: 'string' },
  concurrency: { type: 'string' },
  checksum: { type: 'string' },
  fresh: { type: 'boolean' },
  endpoint: { type: 'string' },
  region: { type: 'string' },
  'path-style': { type: 'boolean' },
  'virtual-host': { type: 'boolean' },
  'state-dir': { type: 'string' },
  'sse-c-key-file': { type: 'string' },
  'request-payer': { type: 'boolean' },
  'expected-bucket-owner': { type: 'string' },
  'upload-id': { type: 'string' },
  all: { type: 'boolean' },
  'no-discover': { type: 'boolean' },
  'storage-class': { type: 'string' },
  tag: { type: 'string', multiple: true },
  metadata: { type: 'string', multiple: true },
  'content-type': { type: 'string' },
  'cache-control': { type: 'string' },
  'content-encoding': { type: 'string' },
  'content-disposition': { type: 'string' },
  acl: { type: 'string' },
  sse: { type: 'string' },
  'sse-kms-key-id': { type: 'string' },
  'object-lock-mode': { type: 'string' },
  'object-lock-retain-until': { type: 'string' },
  'legal-hold': { type: 'boolean' },
  'no-overwrite': { type: 'boolean' },
  'expected-size': { type: 'string' },
  'max-size': { type: 'string' },
  exclude: { type: 'string', multiple: true },
  'fail-fast': { type: 'boolean' },
  'skip-unreadable': { type: 'boolean' },
  'older-than': { type: 'string' },
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} satisfies ParseArgsConfig['options'];

type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K] extends { multiple: true } ? string[] : (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

class UsageError extends Error {}

const EXIT = { ok: 0, failure: 1, usage: 2, mismatch: 3, unverified: 4, someFilesFailed: 5, interrupted: 130 } as const;
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function parseS3Url(url: string | undefined, needKey: boolean): { bucket: string; key: string } {
  const m = url ? /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url) : null;
  if (!m || (needKey && !m[2])) throw new UsageError(`expected s3://<bucket>/${needKey ? '<key>' : '[<prefix>]'}, got ${url ?? 'nothing'}`);
  // S3's rules, loosened only for legacy names some servers still hold (capitals, underscores).
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$/.test(m[1]!) || /\.\./.test(m[1]!)) {
    throw new UsageError(`${JSON.stringify(m[1])} is not a valid bucket name (3 to 255 letters, digits, dots, hyphens; starting and ending with a letter or digit)`);
  }
  if (m[2] !== undefined && Buffer.byteLength(m[2]) > 1024) throw new UsageError('the key is longer than S3 allows (1,024 bytes)');
  return { bucket: m[1]!, key: m[2] ?? '' };
}

/**
 * s3://bucket/key for one file. A key ending in "/" names a folder: the file goes in it under its
 * own name, as `aws s3 cp` does (an object named "backups/" would be replaced by tomorrow's file
 * without a word); standard input has no name, so it needs the full key.
 */
function fileUrl(file: string, url: string | undefined): { bucket: string; key: string } {
  const { bucket, key } = parseS3Url(url, true);
  if (!key.endsWith('/')) return { bucket, key };
  if (file === '-') throw new UsageError(`${url} ends with "/", a folder's name, and standard input has no name to put in it: give the object's whole key (s3://${bucket}/${key}<name>)`);
  return parseS3Url(`s3://${bucket}/${key}${basename(file)}`, true);
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The command line to run again (to resume), without --fresh, which would start over. */
function rerunCommand(argv: string[]): string {
  return ['partwise', ...argv.filter((a) => a !== '--fresh')].map(shellQuote).join(' ');
}

function readSseKey(path: string): Uint8Array {
  const raw = readFileSync(path);
  if (raw.length === 32) return raw;
  const decoded = Buffer.from(raw.toString('utf8').trim(), 'base64');
  if (decoded.length === 32) return decoded;
  throw new UsageError(`${path} must hold a 32-byte AES-256 key (raw, or base64)`);
}

function requestOptions(v: Values): RequestOptions {
  const r: RequestOptions = {};
  if (v['request-payer']) r.requestPayer = 'requester';
  if (v['expected-bucket-owner']) r.expectedBucketOwner = v['expected-bucket-owner'];
  if (v['sse-c-key-file']) r.sseCustomerKey = readSseKey(v['sse-c-key-file']);
  if (v.sse) {
    if (v.sse !== 'aws:kms' && v.sse !== 'AES256' && v.sse !== 'aws:kms:dsse') throw new UsageError(`--sse must be aws:kms, aws:kms:dsse or AES256; got ${v.sse}`);
    r.serverSideEncryption = v.sse;
  }
  if (v['sse-kms-key-id']) {
    if (!r.serverSideEncryption?.startsWith('aws:kms')) throw new UsageError('--sse-kms-key-id goes with --sse aws:kms');
    r.sseKmsKeyId = v['sse-kms-key-id'];
  }
  return r;
}

/** `k=v` pairs of a repeatable flag; the first "=" splits, so values may hold "=". */
function pairs(flag: string, items: string[] | undefined): Record<string, string> | undefined {
  if (!items?.length) return undefined;
  const out: Record<string, string> = {};
  for (const item of items) {
    const i = item.indexOf('=');
    if (i <= 0) throw new UsageError(`--${flag} takes key=value; got ${JSON.stringify(item)}`);
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

/** The object settings flags, as the library's options (checked there, reported as usage errors here). */
function objectSettingFlags(v: Values): ObjectSettingOptions {
  const o: ObjectSettingOptions = {};
  if (v['storage-class']) o.storageClass = v['storage-class'].toUpperCase() as StorageClass;
  const tags = pairs('tag', v.tag);
  if (tags) o.tags = tags;
  const meta = pairs('metadata', v.metadata);
  if (meta) o.metadata = meta;
  if (v['content-type']) o.contentType = v['content-type'];
  if (v['cache-control']) o.cacheControl = v['cache-control'];
  if (v['content-encoding']) o.contentEncoding = v['content-encoding'];
  if (v['content-disposition']) o.contentDisposition = v['content-disposition'];
  if (v.acl) o.acl = v.acl as CannedAcl;
  if (v['object-lock-mode']) o.objectLockMode = v['object-lock-mode'].toUpperCase() as ObjectLockMode;
  if (v['object-lock-retain-until']) o.objectLockRetainUntil = new Date(v['object-lock-retain-until']);
  if (v['legal-hold']) o.legalHold = true;
  const problems = settingsProblems(o);
  if (problems.length) throw new UsageError(problems.map((p) => p.replace(/^storage class/, '--storage-class').replace(/^acl/, '--acl')).join('; '));
  return o;
}

function port(v: Values): S3Port {
  if (v['path-style'] && v['virtual-host']) throw new UsageError('--path-style and --virtual-host exclude each other');
  // The SDK loads at the first request, once the journal is read and hashing has begun.
  return new SdkS3Port({
    lazy: {
      ...(v.endpoint ? { endpoint: v.endpoint } : {}),
      ...(v.region ? { region: v.region } : {}),
      // Path style is the default with an endpoint (most S3-compatible servers need it); a server
      // that answers only bucket.host (some do) is reached with --virtual-host.
      ...(v['path-style'] ? { forcePathStyle: true } : v['virtual-host'] ? { forcePathStyle: false } : {}),
    },
  });
}

function engineOptions(v: Values, file: string, bucket: string, key: string, signal?: AbortSignal): EngineOptions {
  const o: EngineOptions = { file, bucket, key, s3: port(v), ...requestOptions(v), ...objectSettingFlags(v), stateDir: v['state-dir'] ?? defaultStateDir() };
  if (v['no-overwrite']) o.noOverwrite = true;
  if (v['part-size']) {
    try {
      o.partSize = parseSize(v['part-size']);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    // The command has no minPartSize (only test servers take smaller parts): refused here, before
    // anything is read or asked of the server.
    if (o.partSize < S3_MIN_PART_SIZE || o.partSize > S3_MAX_PART_SIZE) throw new UsageError(`--part-size must be from 5 MiB to 5 GiB (S3's part limits); got ${v['part-size']}`);
  }
  if (v.concurrency) {
    const n = Number(v.concurrency);
    if (!Number.isInteger(n) || n < 1 || n > 1000) throw new UsageError(`--concurrency must be a whole number from 1 to 1000, got ${v.concurrency}`);
    o.concurrency = n;
  }
  if (v.checksum) {
    const alg = v.checksum.toUpperCase();
    if (alg === 'NONE') o.checksumAlgorithm = 'none';
    else if (isChecksumAlgorithm(alg)) o.checksumAlgorithm = alg as ChecksumAlgorithm;
    else throw new UsageError(`--checksum must be crc64nvme, crc32c, crc32, sha256, sha1 or none; got ${v.checksum}`);
  }
  if (v['max-rate']) {
    let rate: number;
    try {
      rate = parseSize(v['max-rate'].replace(/\s*\/\s*s(ec)?\s*$/i, ''));
    } catch {
      throw new UsageError(`--max-rate must be a rate such as 50MiB/s, 20MB/s or 500KiB/s; got ${v['max-rate']}`);
    }
    if (rate < 64 * 1024) throw new UsageError(`--max-rate must be at least 64KiB/s; got ${v['max-rate']}`);
    o.maxBytesPerSecond = rate;
  }
  if (v.fresh) o.fresh = true;
  // The command looks for an upload of this key to adopt when it has no journal; the library opts in.
  o.discover = v['no-discover'] !== true;
  if (v['upload-id']) o.uploadId = v['upload-id'];
  if (signal) o.signal = signal;
  return o;
}

/** `upload -`: standard input, read once; no journal, so the options that concern one are refused. */
function streamOptions(v: Values, bucket: string, key: string, signal: AbortSignal): StreamUploadOptions {
  for (const flag of ['fresh', 'upload-id'] as const) if (v[flag]) throw new UsageError(`--${flag} cannot be used with a stream (upload -): a stream cannot be resumed`);
  const { file: _file, discover: _d, stateDir: _s, ...o } = engineOptions(v, '-', bucket, key, signal);
  if (v['expected-size'] && v['max-size']) throw new UsageError('give --expected-size (the exact size) or --max-size (an upper bound), not both');
  const size = (flag: 'expected-size' | 'max-size') => {
    try {
      return parseSize(v[flag]!);
    } catch (err) {
      throw new UsageError(`--${flag}: ${(err as Error).message}`);
    }
  };
  if (v['expected-size']) return { ...o, source: process.stdin, expectedSize: size('expected-size') };
  if (v['max-size']) return { ...o, source: process.stdin, maxSize: size('max-size') };
  // Standard input redirected from a file has a size to plan for (a bound: a file being written may end elsewhere).
  const st = fstatSync(0);
  return { ...o, source: process.stdin, ...(st.isFile() ? { maxSize: st.size } : {}) };
}

interface Out {
  json: boolean;
  quiet: boolean;
  tty: boolean;
  line(obj: unknown): void;
  say(text: string): void;
}

function output(v: Values): Out {
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
function ticker(render: () => string | undefined, intervalMs = 200): () => void {
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

function compactReport(r: ReconcileReport) {
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

async function cmdUpload(pos: string[], v: Values, argv: string[], out: Out): Promise<number> {
  if (pos.length !== 2) throw new UsageError('upload takes <file> s3://<bucket>/<key>');
  const file = pos[0]!;
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

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** `upload <dir> s3://bucket/prefix/`: the folder as one resumable job. */
async function cmdFolder(pos: string[], v: Values, argv: string[], out: Out): Promise<number> {
  if (pos.length !== 2) throw new UsageError('upload takes <folder> s3://<bucket>/[<prefix>/]');
  for (const flag of ['upload-id', 'expected-size', 'max-size'] as const) if (v[flag]) throw new UsageError(`--${flag} does not apply to a folder`);
  const { bucket, key: prefix } = parseS3Url(pos[1], false);
  const ac = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (!out.json) process.stderr.write(`\n${stopNotice(signal, 'folder')}\n`);
    ac.abort(new Error('interrupted'));
  };
  for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
  const { file: _f, key: _k, signal: _s, ...o } = engineOptions(v, pos[0]!, bucket, prefix || '-', ac.signal);
  const job = new FolderJob({ ...o, dir: pos[0]!, prefix: prefix ?? '', exclude: v.exclude ?? [], signal: ac.signal, ...(v['fail-fast'] ? { failFast: true } : {}), ...(v['skip-unreadable'] ? { skipUnreadable: true } : {}) });
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

function nextStep(err: PartwiseError, argv: string[]): string {
  const again = rerunCommand(argv);
  switch (err.code) {
    case 'PAUSED':
      return `resume with: ${again}`;
    case 'SOURCE_CHANGED':
      return `start over with: ${again} --fresh`;
    case 'UPLOAD_GONE':
      return `start over with: ${again}`;
    case 'OBJECT_VERIFICATION_FAILED':
      return argv[0] === 'upload' ? `upload again with: ${again} --fresh` : `upload it again with: partwise upload ${argv.slice(1, 3).map(shellQuote).join(' ')} --fresh`;
    case 'JOURNAL_CORRUPT':
    case 'JOURNAL_MISMATCH':
      return `start over with: ${again} --fresh`;
    default:
      return err.resumable ? `resume with: ${again}` : '';
  }
}

function reportError(err: unknown, argv: string[], out: Out): number {
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
  return EXIT.failure;
}

/** What discovery found, each stale upload with the command that removes it. */
function describeDiscovery(d: DiscoveryReport, bucket: string): string {
  // Not "starting a new upload": the key may yet prove to hold the file already, or the run be refused.
  const lines = [d.chosen ? `Found ${d.why}` : `No journal; ${d.why}.`];
  for (const id of d.aborted ?? []) lines.push(`  upload ${id}: the empty upload this machine created before it was stopped; aborted (nothing to keep)`);
  for (const c of d.candidates) {
    if (c.uploadId === d.chosen || d.aborted?.includes(c.uploadId)) continue;
    lines.push(`  upload ${c.uploadId}${c.initiated ? ` (started ${c.initiated.toISOString()})` : ''}: ${c.status}: ${c.why}. Abort it with: partwise abort s3://${bucket}/${d.key} --upload-id ${c.uploadId}`);
  }
  return lines.join('\n');
}

function describeStatus(s: StatusReport, file: string, url: string, bucket: string): string {
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

async function cmdStatus(pos: string[], v: Values, out: Out): Promise<number> {
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
function resumeWouldStop(s: StatusReport): boolean {
  return s.sourceChanged !== undefined || (s.reconcile?.extraParts.length ?? 0) > 0 || (s.uploadGone === true && !s.alreadyComplete);
}

async function cmdLs(pos: string[], v: Values, out: Out): Promise<number> {
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

async function cmdAbort(pos: string[], v: Values, out: Out): Promise<number> {
  if (pos.length !== 1) throw new UsageError('abort takes s3://<bucket>/<key>, or s3://<bucket>[/<prefix>] with --older-than');
  if (v['older-than']) return cmdAbortOlder(pos[0]!, v, out);
  if (v['dry-run']) throw new UsageError('--dry-run goes with --older-than');
  const { bucket, key } = parseS3Url(pos[0], true);
  if (v['upload-id'] && v.all) throw new UsageError('give --upload-id or --all, not both');
  const s3 = port(v);
  const req = requestOptions(v);
  const stateDir = v['state-dir'] ?? defaultStateDir();
  let targets: { key: string; uploadId: string }[];
  if (v['upload-id']) targets = [{ key, uploadId: v['upload-id'] }];
  else {
    const rows = (await listIncompleteUploads(s3, bucket, key, stateDir, req)).filter((r) => r.key === key);
    targets = v.all ? rows : rows.filter((r) => r.journalPath);
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
  return EXIT.ok;
}

/** Bulk clean-up: every upload under a prefix started before the given age (journaled ones under their lock). */
async function cmdAbortOlder(url: string, v: Values, out: Out): Promise<number> {
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

async function cmdVerify(pos: string[], v: Values, argv: string[], out: Out): Promise<number> {
  if (pos.length !== 2) throw new UsageError('verify takes <file> s3://<bucket>/<key>');
  const { bucket, key } = fileUrl(pos[0]!, pos[1]);
  let hashed = 0;
  const stop = out.tty ? ticker(() => `Hashing ${pos[0]}: ${formatBytes(hashed)}`) : () => undefined;
  let r;
  try {
    r = await verifyObject(port(v), { file: pos[0]!, bucket, key, req: requestOptions(v), onBytes: (n) => (hashed += n) });
  } finally {
    stop();
  }
  if (out.json) out.line({ event: 'verify', bucket, key, ok: r.proven, ...r });
  else if (r.proven) out.say(`OK s3://${bucket}/${key} matches ${pos[0]}\n  verification: ${r.level}\n${r.checks.map((c) => `  ✔ ${c}`).join('\n')}`);
  if (r.mismatches.length) {
    const e = new ObjectVerificationError({ bucket, key }, r.mismatches);
    process.stderr.write(`partwise: ${e.code}: ${e.message} Next: ${nextStep(e, argv)}\n`);
    return EXIT.mismatch;
  }
  if (!r.proven) {
    const e = new ObjectUnverifiedError({ bucket, key }, r.why ?? 'nothing identifies the object');
    process.stderr.write(`partwise: ${e.code}: ${e.message}\n`);
    return EXIT.unverified;
  }
  return EXIT.ok;
}

function version(): string {
  for (const rel of ['../../package.json', '../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { version: string }).version;
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
        return pos[0] !== undefined && pos[0] !== '-' && isDirectory(pos[0]) ? await cmdFolder(pos, v, argv, out) : await cmdUpload(pos, v, argv, out);
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
