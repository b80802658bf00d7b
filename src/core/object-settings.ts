/**
 * What the finished object carries besides its bytes: storage class, tags, metadata, headers, ACL,
 * Object Lock. All of it is fixed at CreateMultipartUpload, so a resume must ask for the same
 * settings (`settingsDiff`), and the journal keeps them (no secrets among them).
 */
import { extname } from 'node:path';

export const CANNED_ACLS = ['private', 'public-read', 'public-read-write', 'authenticated-read', 'aws-exec-read', 'bucket-owner-read', 'bucket-owner-full-control'] as const;
export type CannedAcl = (typeof CANNED_ACLS)[number];

export const STORAGE_CLASSES = ['STANDARD', 'REDUCED_REDUNDANCY', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER', 'DEEP_ARCHIVE', 'OUTPOSTS', 'GLACIER_IR', 'SNOW', 'EXPRESS_ONEZONE'] as const;
export type StorageClass = (typeof STORAGE_CLASSES)[number];

export type ObjectLockMode = 'GOVERNANCE' | 'COMPLIANCE';

/** As the journal keeps them (the retain-until date as ISO 8601 text). */
export interface ObjectSettings {
  storageClass?: StorageClass;
  /** object tags (at most 10; keys up to 128 characters, values up to 256) */
  tags?: Record<string, string>;
  /** user metadata (x-amz-meta-*) */
  metadata?: Record<string, string>;
  /** default: guessed from the file's extension, as aws-cli does; 'application/octet-stream' when unknown */
  contentType?: string;
  cacheControl?: string;
  contentEncoding?: string;
  contentDisposition?: string;
  acl?: CannedAcl;
  objectLockMode?: ObjectLockMode;
  objectLockRetainUntil?: string;
  legalHold?: boolean;
  /** SSE-S3 or SSE-KMS, and the KMS key (an id, not a secret); SSE-C is checked by its key's MD5 */
  serverSideEncryption?: 'AES256' | 'aws:kms' | 'aws:kms:dsse';
  sseKmsKeyId?: string;
}

/** The options an upload takes for its object (the same names in the library and, dashed, on the command). */
export interface ObjectSettingOptions extends Omit<ObjectSettings, 'objectLockRetainUntil'> {
  objectLockRetainUntil?: Date;
}

const TYPES: Record<string, string> = {
  '.txt': 'text/plain',
  '.log': 'text/plain',
  '.md': 'text/markdown',
  '.csv': 'text/csv',
  '.tsv': 'text/tab-separated-values',
  '.html': 'text/html',
  '.htm': 'text/html',
  '.css': 'text/css',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.json': 'application/json',
  '.xml': 'application/xml',
  '.yaml': 'application/yaml',
  '.yml': 'application/yaml',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
  '.gz': 'application/gzip',
  '.tgz': 'application/gzip',
  '.bz2': 'application/x-bzip2',
  '.xz': 'application/x-xz',
  '.zst': 'application/zstd',
  '.7z': 'application/x-7z-compressed',
  '.tar': 'application/x-tar',
  '.rar': 'application/vnd.rar',
  '.wasm': 'application/wasm',
  '.sql': 'application/sql',
  '.parquet': 'application/vnd.apache.parquet',
  '.iso': 'application/x-iso9660-image',
  '.img': 'application/octet-stream',
  '.bin': 'application/octet-stream',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.svg': 'image/svg+xml',
  '.ico': 'image/vnd.microsoft.icon',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
  '.mp4': 'video/mp4',
  '.m4v': 'video/mp4',
  '.mov': 'video/quicktime',
  '.mkv': 'video/x-matroska',
  '.webm': 'video/webm',
  '.avi': 'video/x-msvideo',
  '.mp3': 'audio/mpeg',
  '.m4a': 'audio/mp4',
  '.wav': 'audio/wav',
  '.flac': 'audio/flac',
  '.ogg': 'audio/ogg',
  '.opus': 'audio/opus',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.otf': 'font/otf',
};

/** The Content-Type for a file name, from its extension (case-insensitive); octet-stream when unknown. */
export function guessContentType(file: string): string {
  return TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** The settings an upload of `file` creates its object with: what was asked, plus the guessed type. */
export function objectSettings(o: ObjectSettingOptions, file: string | undefined): ObjectSettings {
  const s: ObjectSettings = {};
  if (o.storageClass) s.storageClass = o.storageClass;
  if (o.tags && Object.keys(o.tags).length) s.tags = { ...o.tags };
  if (o.metadata && Object.keys(o.metadata).length) s.metadata = { ...o.metadata };
  const type = o.contentType ?? (file !== undefined ? guessContentType(file) : undefined);
  if (type) s.contentType = type;
  if (o.cacheControl) s.cacheControl = o.cacheControl;
  if (o.contentEncoding) s.contentEncoding = o.contentEncoding;
  if (o.contentDisposition) s.contentDisposition = o.contentDisposition;
  if (o.acl) s.acl = o.acl;
  if (o.objectLockMode) s.objectLockMode = o.objectLockMode;
  if (o.objectLockRetainUntil) s.objectLockRetainUntil = o.objectLockRetainUntil.toISOString();
  if (o.legalHold !== undefined) s.legalHold = o.legalHold;
  if (o.serverSideEncryption) s.serverSideEncryption = o.serverSideEncryption;
  if (o.sseKmsKeyId) s.sseKmsKeyId = o.sseKmsKeyId;
  return s;
}

/**
 * Settings asked for beyond the guessed Content-Type and the encryption type. Tags and ACLs are not
 * in ListParts, and an upload shows nothing of its settings, so with any of these nothing found on
 * the server is taken as this run's unless it is read back and compared (`compareSettings`): an
 * upload of the key is never adopted, an object at the key only once its settings are proven. A
 * KMS key id is among them: HEAD names an object's key, an upload's listing does not.
 */
export function hasExplicitSettings(o: ObjectSettingOptions): boolean {
  const { contentType, serverSideEncryption: _sse, ...rest } = objectSettings(o, undefined);
  return contentType !== undefined || Object.keys(rest).length > 0;
}

/** Problems with the settings that would only surface at the server, hours later; [] when fine. */
export function settingsProblems(o: ObjectSettingOptions, now = Date.now()): string[] {
  const p: string[] = [];
  if (o.storageClass !== undefined && !(STORAGE_CLASSES as readonly string[]).includes(o.storageClass)) p.push(`storage class must be one of ${STORAGE_CLASSES.join(', ')}; got ${o.storageClass}`);
  if (o.acl !== undefined && !(CANNED_ACLS as readonly string[]).includes(o.acl)) p.push(`acl must be one of ${CANNED_ACLS.join(', ')}; got ${o.acl}`);
  const tags = Object.entries(o.tags ?? {});
  if (tags.length > 10) p.push(`at most 10 tags; got ${tags.length}`);
  for (const [k, v] of tags) {
    if (!k || k.length > 128) p.push(`tag key ${JSON.stringify(k)} must be 1 to 128 characters`);
    if (v.length > 256) p.push(`tag ${k}: value over 256 characters`);
  }
  const metaBytes = Object.entries(o.metadata ?? {}).reduce((a, [k, v]) => a + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
  if (metaBytes > 2048) p.push(`user metadata is ${metaBytes} bytes; S3 allows 2 KB`);
  for (const k of Object.keys(o.metadata ?? {})) if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(k)) p.push(`metadata key ${JSON.stringify(k)} is not a valid header name`);
  // Sent as HTTP headers, and signed as such: anything but printable ASCII is refused at the server (SignatureDoesNotMatch).
  for (const [k, v] of Object.entries(o.metadata ?? {})) if (!/^[\x20-\x7e]*$/.test(v)) p.push(`metadata ${k}: the value is not printable ASCII (S3 sends metadata as HTTP headers); encode it first (percent-encoding or base64)`);
  if ((o.objectLockMode === undefined) !== (o.objectLockRetainUntil === undefined)) p.push('object lock mode and retain-until date go together');
  if (o.objectLockRetainUntil !== undefined) {
    const t = o.objectLockRetainUntil.getTime();
    if (Number.isNaN(t)) p.push('object lock retain-until is not a date');
    else if (t <= now) p.push(`object lock retain-until ${o.objectLockRetainUntil.toISOString()} is in the past`);
  }
  if (o.objectLockMode !== undefined && o.objectLockMode !== 'GOVERNANCE' && o.objectLockMode !== 'COMPLIANCE') p.push(`object lock mode must be GOVERNANCE or COMPLIANCE; got ${String(o.objectLockMode)}`);
  return p;
}

/** Each setting the upload was created with that this run asks to be different, in words; [] when equal. */
export function settingsDiff(created: ObjectSettings, wanted: ObjectSettings): string[] {
  const keys = new Set([...Object.keys(created), ...Object.keys(wanted)] as (keyof ObjectSettings)[]);
  const out: string[] = [];
  const show = (v: unknown) => (v === undefined ? '(not set)' : JSON.stringify(v));
  for (const k of [...keys].sort()) {
    const a = stable(created[k]);
    const b = stable(wanted[k]);
    if (a !== b) out.push(`${k}: created with ${show(created[k])}, this run asks ${show(wanted[k])}`);
  }
  return out;
}

function stable(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  if (v && typeof v === 'object') return JSON.stringify(Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))));
  return JSON.stringify(v);
}

/** Tags as S3's x-amz-tagging header wants them: a URL-encoded query string. */
export function taggingHeader(tags: Record<string, string>): string {
  return Object.entries(tags)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
}

/**
 * Whether the KMS key asked for is the one an object names: `same`, `different`, or `unknown` when
 * the two cannot be compared without asking KMS (an alias against the key's ARN). S3 names the key
 * by its ARN; a bare key id is compared with the ARN's key part.
 */
export function sameKmsKey(asked: string, named: string | undefined): 'same' | 'different' | 'unknown' {
  if (!named) return 'unknown';
  if (asked === named) return 'same';
  if (/(^|:)alias\//.test(asked) || /(^|:)alias\//.test(named)) return 'unknown';
  const keyPart = (k: string) => (/^arn:[^:]+:kms:/.test(k) ? /:key\/(.+)$/.exec(k)?.[1] : k);
  const a = keyPart(asked);
  const b = keyPart(named);
  if (a === undefined || b === undefined) return 'unknown';
  // Two full ARNs with the same key id but other accounts or regions are other keys.
  if (asked.startsWith('arn:') && named.startsWith('arn:')) return 'different';
  return a === b ? 'same' : 'different';
}

/** What the server shows of an object's settings: HEAD's headers, and what the read-back calls found (undefined: could not be read). */
export interface SeenSettings {
  contentType?: string | undefined;
  cacheControl?: string | undefined;
  contentEncoding?: string | undefined;
  contentDisposition?: string | undefined;
  metadata?: Record<string, string> | undefined;
  storageClass?: string | undefined;
  objectLockMode?: string | undefined;
  objectLockRetainUntil?: Date | undefined;
  legalHold?: boolean | undefined;
  serverSideEncryption?: string | undefined;
  sseKmsKeyId?: string | undefined;
  /** undefined: the tags could not be read */
  tags?: Record<string, string> | undefined;
  /** undefined: the ACL could not be read */
  acl?: { ownerId?: string | undefined; grants: { grantee: { type: string; id?: string; uri?: string }; permission: string }[] } | undefined;
}

const ALL_USERS = 'http://acs.amazonaws.com/groups/global/AllUsers';
const AUTHENTICATED_USERS = 'http://acs.amazonaws.com/groups/global/AuthenticatedUsers';

/** The grants a canned ACL gives, as `who:permission` strings; undefined when they depend on what cannot be seen here (the bucket's owner). */
function cannedGrants(acl: CannedAcl, owner: string): string[] | undefined {
  const own = `user:${owner}:FULL_CONTROL`;
  switch (acl) {
    case 'private':
      return [own];
    case 'public-read':
      return [own, `group:${ALL_USERS}:READ`];
    case 'public-read-write':
      return [own, `group:${ALL_USERS}:READ`, `group:${ALL_USERS}:WRITE`];
    case 'authenticated-read':
      return [own, `group:${AUTHENTICATED_USERS}:READ`];
    default:
      return undefined;
  }
}

/**
 * Whether an object carries the settings an upload would have given it, from what the server shows:
 * `differs` names what is other, `unknown` what could not be checked. Only both empty proves it.
 * Unset settings are compared with S3's defaults (no metadata, no tags, private, STANDARD);
 * encryption and Object Lock only where asked (a bucket's defaults may add them). A retention
 * that lasts longer than asked holds.
 */
export function compareSettings(wanted: ObjectSettings, seen: SeenSettings): { differs: string[]; unknown: string[] } {
  const differs: string[] = [];
  const unknown: string[] = [];
  const show = (v: unknown) => (v === undefined ? '(not set)' : JSON.stringify(v));
  const eq = (name: string, want: unknown, got: unknown) => {
    if (stable(want) !== stable(got)) differs.push(`${name}: the object has ${show(got)}, this run asks ${show(want)}`);
  };
  // These travel as HTTP headers, whose values lose their surrounding spaces on the way.
  const header = (v: string | undefined) => v?.trim();
  if (wanted.contentType !== undefined) eq('contentType', header(wanted.contentType), header(seen.contentType));
  eq('cacheControl', header(wanted.cacheControl), header(seen.cacheControl));
  eq('contentEncoding', header(wanted.contentEncoding), header(seen.contentEncoding));
  eq('contentDisposition', header(wanted.contentDisposition), header(seen.contentDisposition));
  // S3 keeps metadata keys in lower case.
  const lower = (m: Record<string, string> | undefined) => Object.fromEntries(Object.entries(m ?? {}).map(([k, v]) => [k.toLowerCase(), v.trim()]));
  eq('metadata', lower(wanted.metadata), lower(seen.metadata));
  eq('storageClass', wanted.storageClass ?? 'STANDARD', seen.storageClass ?? 'STANDARD');
  if (seen.tags === undefined) unknown.push('tags (they could not be read back)');
  else eq('tags', wanted.tags ?? {}, seen.tags);
  const acl = wanted.acl ?? 'private';
  const grants = seen.acl?.ownerId !== undefined ? cannedGrants(acl, seen.acl.ownerId) : undefined;
  if (!seen.acl) unknown.push('acl (it could not be read back)');
  else if (!grants) unknown.push(`acl (${acl} cannot be compared with the grants the server shows)`);
  else {
    const got = seen.acl.grants.map((g) => `${g.grantee.type}:${g.grantee.id ?? g.grantee.uri ?? '?'}:${g.permission}`).sort();
    if (stable(got) !== stable([...grants].sort())) differs.push(`acl: the object's grants are ${got.join(', ')}, not those of ${acl}`);
  }
  if (wanted.objectLockMode !== undefined) eq('objectLockMode', wanted.objectLockMode, seen.objectLockMode);
  if (wanted.objectLockRetainUntil !== undefined) {
    const want = Date.parse(wanted.objectLockRetainUntil);
    const got = seen.objectLockRetainUntil?.getTime();
    if (got === undefined || got < want) differs.push(`objectLockRetainUntil: the object has ${seen.objectLockRetainUntil?.toISOString() ?? '(not set)'}, this run asks ${wanted.objectLockRetainUntil}`);
  }
  if (wanted.legalHold !== undefined) eq('legalHold', wanted.legalHold, seen.legalHold ?? false);
  if (wanted.serverSideEncryption !== undefined) eq('serverSideEncryption', wanted.serverSideEncryption, seen.serverSideEncryption);
  if (wanted.sseKmsKeyId !== undefined) {
    const k = sameKmsKey(wanted.sseKmsKeyId, seen.sseKmsKeyId);
    if (k === 'different') differs.push(`sseKmsKeyId: the object is encrypted with ${seen.sseKmsKeyId}, this run asks ${wanted.sseKmsKeyId}`);
    if (k === 'unknown') unknown.push(`sseKmsKeyId (${seen.sseKmsKeyId ? `${seen.sseKmsKeyId} cannot be compared with ${wanted.sseKmsKeyId} without KMS` : 'the server does not name the object\'s key'})`);
  }
  return { differs, unknown };
}
