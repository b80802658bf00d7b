/**
 * The command's arguments: the usage text, the flags, and the options each command builds from
 * them (an S3 port, an upload's, a stream's). A flag that cannot work is a UsageError here, before
 * anything is read or asked of the server.
 */
import { fstatSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { isChecksumAlgorithm, type ChecksumAlgorithm } from '../core/checksums.ts';
import { settingsProblems, type CannedAcl, type ObjectLockMode, type ObjectSettingOptions, type StorageClass } from '../core/object-settings.ts';
import { S3_MAX_PART_SIZE, S3_MIN_PART_SIZE } from '../core/planner.ts';
import { indexFromEnv, parseIndex } from '../core/shared-plan.ts';
import type { StreamUploadOptions } from '../jobs/stream-upload.ts';
import { defaultStateDir } from '../local/journal.ts';
import { SdkS3Port } from '../s3/adapter.ts';
import type { RequestOptions, S3Port } from '../s3/port.ts';
import type { EngineOptions } from '../upload/engine.ts';
import { parseSize } from './render.ts';

export const USAGE = `partwise: resumable S3 multipart uploads that verify every part before trusting it

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

One object from many workers (under Slurm, Kubernetes, AWS Batch; state only in the bucket):
  partwise plan <file> s3://<bucket>/<key> --workers N   begin the upload once, write its plan beside the key
  partwise upload <file> s3://<bucket>/<key> --worker I/N|auto   worker I of N: its range of parts, verified and sent
  partwise finish s3://<bucket>/<key> [--keep-receipts]  check every part against the receipts, Complete, prove the object
  partwise upload <folder> s3://<bucket>/<prefix>/ --shard I/N|auto|auto/N   shard I of N of the folder job

Upload options:
  --part-size SIZE        part size, e.g. 8MiB, 64MiB, 1GiB (default 16MiB; raised to fit 10,000 parts)
  --max-parts N           the server's part limit (default 10,000; Swift's s3api: 1,000): the part size is raised to fit it
  --concurrency N         parallel part uploads, fixed (default: searched from 8 up to 32 by the measured rate)
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
  --workers N             plan: how many workers share the object's parts (contiguous ranges)
  --worker I/N|auto       upload: be worker I (0-based) of N; auto reads I from SLURM_ARRAY_TASK_ID,
                          JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or AWS_BATCH_JOB_ARRAY_INDEX, N from the plan
  --shard I/N|auto/N      folder: be shard I of N (entries by a stable hash of their path; auto as --worker)
  --keep-receipts         finish: keep the plan (as a finished record) and the receipts after success, as a proof record
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

export const OPTIONS = {
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
  'max-parts': { type: 'string' },
  workers: { type: 'string' },
  worker: { type: 'string' },
  shard: { type: 'string' },
  'keep-receipts': { type: 'boolean' },
  'older-than': { type: 'string' },
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} satisfies ParseArgsConfig['options'];

export type Values = { [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K] extends { multiple: true } ? string[] : (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

export class UsageError extends Error {}

export function parseS3Url(url: string | undefined, needKey: boolean): { bucket: string; key: string } {
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
export function fileUrl(file: string, url: string | undefined): { bucket: string; key: string } {
  const { bucket, key } = parseS3Url(url, true);
  if (!key.endsWith('/')) return { bucket, key };
  if (file === '-') throw new UsageError(`${url} ends with "/", a folder's name, and standard input has no name to put in it: give the object's whole key (s3://${bucket}/${key}<name>)`);
  return parseS3Url(`s3://${bucket}/${key}${basename(file)}`, true);
}

export function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The command line to run again (to resume), without --fresh, which would start over. */
export function rerunCommand(argv: string[]): string {
  return ['partwise', ...argv.filter((a) => a !== '--fresh')].map(shellQuote).join(' ');
}

export function readSseKey(path: string): Uint8Array {
  const raw = readFileSync(path);
  if (raw.length === 32) return raw;
  const decoded = Buffer.from(raw.toString('utf8').trim(), 'base64');
  if (decoded.length === 32) return decoded;
  throw new UsageError(`${path} must hold a 32-byte AES-256 key (raw, or base64)`);
}

export function requestOptions(v: Values): RequestOptions {
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
export function pairs(flag: string, items: string[] | undefined): Record<string, string> | undefined {
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
export function objectSettingFlags(v: Values): ObjectSettingOptions {
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

export function port(v: Values): S3Port {
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

export function engineOptions(v: Values, file: string, bucket: string, key: string, signal?: AbortSignal): EngineOptions {
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
  if (v['max-parts']) {
    const n = Number(v['max-parts']);
    if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new UsageError(`--max-parts must be a whole number from 1 to 10,000 (the server's part limit); got ${v['max-parts']}`);
    o.maxParts = n;
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
export function streamOptions(v: Values, bucket: string, key: string, signal: AbortSignal): StreamUploadOptions {
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

/**
 * `--worker I/N`, `--shard I/N`, or `auto` (`auto/N`): the index from the scheduler's environment,
 * N from it (Slurm gives it), from `auto/N`, or (a worker) from the plan. Wrong or missing: a usage error.
 */
export function indexFlag(v: Values, flag: 'worker' | 'shard'): { index: number; count?: number } {
  const text = v[flag]!;
  try {
    if (text === 'auto' || text.startsWith('auto/')) {
      const env = indexFromEnv(process.env, `--${flag}`);
      const count = text.startsWith('auto/') ? parseIndex(`0/${text.slice(5)}`, `--${flag}`).count : undefined;
      if (count !== undefined && env.index >= count) throw new UsageError(`--${flag} ${text}: index ${env.index} (${env.from}) is not below ${count}: array task ids must be 0 to ${count - 1} (sbatch --array=0-${count - 1})`);
      return { index: env.index, ...(count !== undefined ? { count } : {}) };
    }
    return (({ index, count }) => ({ index, count }))(parseIndex(text, `--${flag}`));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError((err as Error).message);
  }
}
