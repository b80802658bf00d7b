/**
 * What an S3 or network failure means for the user, in words, and the step that helps: one table
 * for every message that names a failure (a request, a part, Complete), and the one decision on
 * what will fail again (a permanent refusal) and what is a server refusing a checksum.
 */
/** What each operation's absence on a server means for the user, and what still works. */
const NOT_ON_THIS_SERVER: Record<string, string> = {
  ListMultipartUploads: ': partwise ls, abort --all and abort --older-than need it; an upload with a journal still resumes, and is aborted by its key (partwise abort s3://bucket/key); --no-discover stops looking for uploads without one',
  ListParts: ': partwise cannot see which parts the server holds, so no upload resumes here; start over with --fresh, which sends the whole file again',
  CreateMultipartUpload: ': multipart uploads cannot be made here (a read-only bucket, or a server or policy without them); check the bucket and the server',
  AbortMultipartUpload: ': the upload stays on the server until its own expiry or an operator removes it; its journal is kept (partwise upload --fresh lets it go and starts over)',
};

/**
 * A refusal that will not change on a rerun (the server does not implement or allow the request,
 * or takes no part this large, or no part number this high), in words with the step that helps;
 * undefined for any other failure. One decision, for the advice and for whether a rerun resumes.
 */
export function permanentRefusal(code: string, status: number | undefined, operation: string, message = ''): string | undefined {
  const after = NOT_ON_THIS_SERVER[operation] ?? ': running the same command again will not help';
  const checksum = checksumRefusal(code, status, operation, message);
  if (checksum) return checksum;
  if (code === 'NotImplemented' || status === 501) return `this server does not implement ${operation}${after}`;
  if (code === 'MethodNotAllowed' || status === 405) return `this server does not allow ${operation} here${after}`;
  if (code === 'EntityTooLarge' || status === 413) {
    if (operation === 'UploadPart') return 'this server takes no part this large: start over with --fresh and a smaller --part-size';
    return `this server takes no ${operation === 'PutObject' ? 'object this large in one request: give a --part-size below the file\'s size, so it goes up in parts' : 'request this large'}`;
  }
  // Swift allows 1,000 parts, and answers part 1,001 with 400 InvalidArgument naming the part number.
  if (operation === 'UploadPart' && status === 400 && /part ?number/i.test(message)) return 'this server takes fewer parts than this upload needs: start over with --fresh and --max-parts set to its limit (or a larger --part-size)';
  return undefined;
}

const CARRY_CHECKSUMS = new Set(['CreateMultipartUpload', 'UploadPart', 'PutObject', 'CompleteMultipartUpload']);

/**
 * A server that will not take an additional checksum, or not of this type (R2 and Swift answer 501
 * for some, B2 400 "Unsupported header 'x-amz-checksum-…'"): the request is fine without it, so
 * the step is another --checksum, never "this server does not implement UploadPart". A checksum
 * that did not match the bytes (BadDigest) is not this: a rerun reads the file again.
 */
export function checksumRefusal(code: string, status: number | undefined, operation: string, message: string): string | undefined {
  if (!CARRY_CHECKSUMS.has(operation) || !/checksum/i.test(message)) return undefined;
  // Bytes that did not match the value sent, a request that lacked one, or a malformed value: the
  // server takes the checksum; a rerun reads the file again (or the request is partwise's to mend).
  if (NOT_A_REFUSAL.has(code) || /match|must include|missing|is invalid|invalid value|malformed/i.test(message)) return undefined;
  const notImplemented = code === 'NotImplemented' || status === 501;
  if (!notImplemented && !(status === 400 && /unsupported|not supported|not implemented|implies functionality|not allowed|cannot be used/i.test(message))) return undefined;
  const step = operation === 'UploadPart' || operation === 'CompleteMultipartUpload' ? 'start over with --fresh and' : 'run it with';
  return `this server refuses this checksum (or its type): ${step} another --checksum, or none (the MD5 ETags are then the evidence)`;
}

const NOT_A_REFUSAL = new Set(['BadDigest', 'InvalidDigest', 'XAmzContentChecksumMismatch', 'InvalidPart', 'InvalidPartOrder']);

/** The IAM permission each operation needs, for AccessDenied messages. */
const PERMISSION: Record<string, string> = {
  CreateMultipartUpload: 's3:PutObject',
  UploadPart: 's3:PutObject',
  CompleteMultipartUpload: 's3:PutObject',
  ListParts: 's3:ListMultipartUploadParts',
  AbortMultipartUpload: 's3:AbortMultipartUpload',
  HeadObject: 's3:GetObject',
  GetObjectAttributes: 's3:GetObjectAttributes',
  ListMultipartUploads: 's3:ListBucketMultipartUploads',
};

/**
 * What an S3 or network failure means, in words, and what to do next. One table, so every message
 * that names a failure (a request, a part, Complete) gives the same advice.
 */
export function s3Advice(code: string, status: number | undefined, operation: string, message?: string): string {
  const refused = permanentRefusal(code, status, operation, message);
  if (refused) return refused;
  switch (code) {
    case 'NoSuchBucket':
      return 'the bucket does not exist (or these credentials cannot see it): create it, or check its name, the endpoint and the region';
    case 'InvalidBucketName':
      return 'the bucket name is not valid: check it';
    case 'AccessDenied':
    case 'AllAccessDisabled':
      return `these credentials may not do ${operation} here (it needs ${PERMISSION[operation] ?? 'a permission they lack'}): grant it, or use other credentials`;
    case 'InvalidAccessKeyId':
      return 'the server does not know this access key: check AWS_ACCESS_KEY_ID or the profile (AWS_PROFILE), and the endpoint';
    case 'SignatureDoesNotMatch':
      return 'the secret key does not match the access key: check AWS_SECRET_ACCESS_KEY or the profile';
    case 'ExpiredToken':
    case 'ExpiredTokenException':
    case 'TokenRefreshRequired':
    case 'RequestExpired':
      return 'the credentials expired: refresh them, then run the same command to resume';
    case 'InsufficientCapacity':
      return 'the server is out of space: free space on it (or ask its operator), then run the same command to resume';
    case 'QuotaExceeded':
      return 'a quota on the bucket or the user is used up: raise it or free space, then run the same command to resume';
    case 'RegionMissing':
      return 'no region is configured: set AWS_REGION, a region in the profile, or pass --region';
    // Nothing reached the server in either case, so "refused" would mislead.
    case 'NoCredentials':
      return 'no credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (a profile with credentials), then run the same command';
    case 'CredentialsProviderError':
      return "the configured credentials could not be loaded (the SDK's message says why): fix that source (an SSO profile: aws sso login; the profile's name; its credential_process), then run the same command";
    case 'NoSuchUpload':
      return 'the server no longer has this multipart upload';
    case 'NoSuchKey':
      // Only said of ListParts once the server, asked again, listed the upload (session.ts).
      if (operation === 'ListParts') return 'a passing answer: the server listed the upload when asked again a moment later; the upload and its journal are kept: run the same command to resume';
      break;
    case 'ECONNREFUSED':
      return "nothing answers at the endpoint: check --endpoint / AWS_ENDPOINT_URL / the profile's endpoint_url and that the server is up, then run the same command";
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return "the endpoint's host name does not resolve: check --endpoint / AWS_ENDPOINT_URL / the profile's endpoint_url and the network";
    case 'ETIMEDOUT':
    case 'TimeoutError':
    case 'RequestTimeout':
    case 'RequestTimeoutException':
      return 'the server did not answer in time: check the network, then run the same command to resume';
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ECONNABORTED':
    case 'UND_ERR_SOCKET':
      return 'the connection was cut: run the same command to resume';
    case 'SlowDown':
    case 'Throttling':
    case 'TooManyRequests':
      return 'the server kept asking to slow down: run the same command to resume (with a lower --concurrency)';
    case 'BadDigest':
    case 'PartChecksumMismatch':
    case 'PartETagMismatch':
      return 'the server kept storing other bytes than were sent: check the network and the server, then run the same command to resume';
  }
  if (status !== undefined && status >= 500) return `the server failed: run the same command to resume (later, if it persists)`;
  if (status === 403) return `the request was refused (it needs ${PERMISSION[operation] ?? 'a permission these credentials lack'}): check the credentials and the bucket policy`;
  return `the server refused the request${status ? '' : ' (no HTTP answer)'}: not a passing fault, so check the options, the bucket and the server's limits, then run the same command again`;
}
