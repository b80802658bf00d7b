/**
 * The SDK side of the S3 wire, with adapter.ts the only code that loads @aws-sdk/client-s3: loading
 * it (late, by require), building a client from the standard chain, naming the endpoint a journal
 * belongs to, and turning every SDK failure into an S3RequestError.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type * as Sdk from '@aws-sdk/client-s3';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { InvalidOptionsError, S3RequestError } from '../core/errors.ts';

// Node loads the SDK's CommonJS build whether it is imported or required (its "module" field is for
// bundlers; Node ignores it). An import first has Node's ESM loader lex the whole bundle for its
// export names, ~30 ms of every CLI start; require() skips that. And it is required when first
// needed, not when this module loads: the CLI reads its journal and starts hashing first, so the
// SDK's ~0.1 s of loading runs beside the hash threads instead of before them.
// Bundling partwise: keep @aws-sdk/client-s3 external (it is a peer dependency).
let loaded: typeof Sdk | undefined;
const SDK = '@aws-sdk/client-s3';
const require = createRequire(import.meta.url);
const missingSdk = (err: unknown) =>
  new InvalidOptionsError(
    `partwise needs the AWS SDK for JavaScript v3 (${SDK}, a peer dependency), which cannot be loaded (${String((err as Error)?.message ?? err).split('\n')[0]}): install it beside partwise (npm install ${SDK}), or repair the installation the error names`,
  );
export function sdk(): typeof Sdk {
  try {
    return (loaded ??= require(SDK) as typeof Sdk);
  } catch (err) {
    throw missingSdk(err);
  }
}

/** Fails at once when the SDK is not even installed (finding it costs a few stats; loading it waits). */
export function assertSdkInstalled(): void {
  if (loaded) return;
  try {
    require.resolve(SDK);
  } catch (err) {
    throw missingSdk(err);
  }
}

export interface ClientOptions {
  endpoint?: string;
  region?: string;
  /** path-style URLs (http://host/bucket/key); default: on when an endpoint is set, as most non-AWS servers need */
  forcePathStyle?: boolean;
  credentials?: S3ClientConfig['credentials'];
  /**
   * A request whose socket stays silent this long fails (and is retried): a stalled server must not
   * hang an upload. Default 60 s.
   */
  requestTimeoutMs?: number;
}

/**
 * Where createS3Client's endpoint comes from: the option, else the environment's; the first one set
 * and not empty, as the SDK picks it (an empty one is passed over). With where it came from, for messages.
 */
export function endpointSource(opts: ClientOptions): { url: string; from: string } | undefined {
  const sources: [string | undefined, string][] = [
    [opts.endpoint, 'the endpoint option, CLI: --endpoint'],
    [process.env.AWS_ENDPOINT_URL_S3, 'AWS_ENDPOINT_URL_S3'],
    [process.env.AWS_ENDPOINT_URL, 'AWS_ENDPOINT_URL'],
  ];
  const hit = sources.find(([url]) => url);
  return hit ? { url: hit[0]!, from: hit[1] } : undefined;
}

/** The endpoint createS3Client gives its client. */
export function endpointOf(opts: ClientOptions): string | undefined {
  return endpointSource(opts)?.url;
}

/** An endpoint the SDK would refuse with a bare "Invalid URL" (an unexpected failure) is refused here, in words. */
export function assertUrl(url: string, from: string): void {
  try {
    new URL(url);
  } catch {
    throw new InvalidOptionsError(`the endpoint ${JSON.stringify(url)} is not a URL (${from}): give one such as http://127.0.0.1:7490 or https://s3.eu-west-1.amazonaws.com`);
  }
}

/**
 * Builds a client from the SDK's standard chain (env, shared config and profiles, AWS_ENDPOINT_URL)
 * with two changes: checksums only when an operation requires one (partwise precomputes its own,
 * and third-party servers reject the SDK's defaults), and no SDK-level retries (the engine retries
 * each request itself, with a fresh body, so attempts never multiply).
 */
export function createS3Client(opts: ClientOptions = {}): S3Client {
  const endpoint = endpointOf(opts);
  const config: S3ClientConfig = {
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
    forcePathStyle: opts.forcePathStyle ?? endpoint !== undefined,
    // Without a logger the SDK prints to the console when a streaming request fails; the engine
    // reports every failure itself, as a typed error or a part-retry event.
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {} },
    // Without throwOnRequestTimeout the SDK only logs a warning and keeps waiting.
    // socketTimeout, not requestTimeout: the handler's requestTimeout is a deadline for the whole
    // request, which a large part on a slow link (or under --max-rate) can never meet; what marks a
    // stalled server is a socket with no traffic either way.
    requestHandler: { socketTimeout: opts.requestTimeoutMs ?? 60_000, connectionTimeout: Math.min(opts.requestTimeoutMs ?? 10_000, 10_000) },
  };
  if (endpoint) config.endpoint = endpoint;
  if (opts.region) config.region = opts.region;
  if (opts.credentials) config.credentials = opts.credentials;
  return new (sdk().S3Client)(config);
}

const NETWORK_CODE = /^E[A-Z_]+$|^UND_ERR/;

export function toS3RequestError(operation: string, err: unknown): S3RequestError {
  if (err instanceof S3RequestError) return err;
  const e = (err ?? {}) as {
    name?: string;
    code?: string;
    Code?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number; requestId?: string };
    $response?: { statusCode?: number };
  };
  const status = e.$metadata?.httpStatusCode ?? e.$response?.statusCode;
  let code = e.Code ?? e.name ?? 'UnknownError';
  if ((code === 'Error' || code === 'UnknownError' || code === 'TypeError') && e.code && NETWORK_CODE.test(e.code)) code = e.code;
  if (code === 'Error' && e.message === 'socket hang up') code = 'ECONNRESET';
  if (/region is missing/i.test(e.message ?? '')) code = 'RegionMissing';
  // The SDK's one name for "none anywhere" and for "one configured but failing" (an SSO token expired, a
  // credential_process failing): only the first is told to set some.
  if (code === 'CredentialsProviderError' && /could not load credentials from any providers/i.test(e.message ?? '')) code = 'NoCredentials';
  // Not the SDK's exception itself: it carries every field of the error body (AWS echoes the
  // canonical request there, headers and all: session token, SSE-C key), which a caller logging
  // the error would print. Only its name and message are kept.
  const cause = new Error(`${e.name ?? 'Error'}${e.message ? `: ${e.message}` : ''}`);
  const args: ConstructorParameters<typeof S3RequestError>[0] = { operation, s3Code: code, cause };
  if (status !== undefined) args.httpStatus = status;
  if (e.$metadata?.requestId) args.requestId = e.$metadata.requestId;
  if (e.message && e.message !== code) args.message = e.message;
  return new S3RequestError(args);
}

/**
 * The same string for the same destination however the client was configured (an explicit
 * endpoint, or AWS_ENDPOINT_URL[_S3], which the SDK applies without exposing it in its config),
 * because the journal's identity depends on it.
 */
export function endpointIdentity(ep: { protocol: string; hostname: string; port?: number | undefined; path?: string } | undefined, region: string): string {
  if (ep) return `${ep.protocol}//${ep.hostname}${ep.port ? `:${ep.port}` : ''}${ep.path && ep.path !== '/' ? ep.path : ''}`;
  const fromEnv = endpointOf({});
  if (fromEnv) return fromEnv.replace(/\/+$/, '');
  return `aws:${region}`;
}

/**
 * What a client createS3Client(opts) would make describes itself as, worked out without the SDK;
 * undefined where only the SDK can tell (a region or endpoint from a shared config profile, a URL
 * it would reject).
 */
export function presetIdentity(opts: ClientOptions): string | undefined {
  const region = opts.region ?? process.env.AWS_REGION;
  // The SDK rewrites FIPS pseudo-regions (us-east-1-fips is us-east-1) and refuses what is not a
  // host label, in words of its own: only a plain region is taken as it is written.
  if (!region || !/^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/.test(region) || region.startsWith('fips-') || region.endsWith('-fips')) return undefined;
  const endpoint = endpointOf(opts);
  if (!endpoint) return sharedFilesMayNameEndpoint() ? undefined : endpointIdentity(undefined, region);
  return urlIdentity(endpoint, region);
}

/** A URL's identity, as the SDK's URL parser reads it (the port as a number when one is written); undefined if it is not one. */
export function urlIdentity(url: string, region: string): string | undefined {
  try {
    const u = new URL(url);
    return endpointIdentity({ protocol: u.protocol, hostname: u.hostname, port: u.port ? Number(u.port) : undefined, path: u.pathname }, region);
  } catch {
    return undefined;
  }
}

/**
 * Whether the shared config or credentials file may name an endpoint (endpoint_url, or a services
 * section that can hold one), which only the SDK reads: then it is asked. Most files name none, and
 * the SDK is not loaded just to learn that.
 */
function sharedFilesMayNameEndpoint(): boolean {
  const home = process.env.HOME || process.env.USERPROFILE || homedir();
  const path = (v: string | undefined, dflt: string) => (v ? v.replace(/^~(?=[\\/])/, home) : join(home, '.aws', dflt));
  for (const f of [path(process.env.AWS_CONFIG_FILE, 'config'), path(process.env.AWS_SHARED_CREDENTIALS_FILE, 'credentials')]) {
    try {
      if (/endpoint_url|^\s*services\s*=/m.test(readFileSync(f, 'utf8'))) return true;
    } catch (err) {
      // Absent: nothing named there. Unreadable for another reason: the SDK's reading decides.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return true;
    }
  }
  return false;
}
