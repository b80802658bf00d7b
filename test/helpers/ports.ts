/**
 * S3Port wrappers for tests: they sit between the engine and the real server (the SDK adapter
 * talking to RGW) to slow it down, observe it or make it fail on demand. No module is mocked.
 */
import type { S3Port } from '../../src/s3/port.ts';

type Method = Exclude<keyof S3Port, never>;

/** Delegates every call to `inner`, except the methods given in `overrides`. */
export function wrapPort(inner: S3Port, overrides: Partial<S3Port>): S3Port {
  const out = {} as Record<Method, unknown>;
  for (const m of ['describeEndpoint', 'clientMaxAttempts', 'createMultipartUpload', 'uploadPart', 'putObject', 'listParts', 'completeMultipartUpload', 'abortMultipartUpload', 'headObject', 'listMultipartUploads', 'getObjectAttributes', 'getObjectTagging', 'getObjectAcl', 'putObjectRetention', 'getObject', 'deleteObject'] as const) {
    const own = inner[m];
    if (overrides[m] ?? own) out[m] = overrides[m] ?? (own!.bind(inner) as unknown);
  }
  return out as unknown as S3Port;
}

/** Delays every UploadPart, so a test can act (kill, abort) while parts are in flight. */
export function slowParts(inner: S3Port, delayMs: number): S3Port {
  return wrapPort(inner, {
    uploadPart: async (input, req, signal) => {
      await new Promise((r) => setTimeout(r, delayMs));
      return inner.uploadPart(input, req, signal);
    },
  });
}

/** Tracks the highest number of UploadPart calls in flight at once. */
export function concurrencyProbe(inner: S3Port): { port: S3Port; max: () => number } {
  let now = 0;
  let max = 0;
  return {
    port: wrapPort(inner, {
      uploadPart: async (input, req, signal) => {
        now++;
        max = Math.max(max, now);
        try {
          await new Promise((r) => setTimeout(r, 20));
          return await inner.uploadPart(input, req, signal);
        } finally {
          now--;
        }
      },
    }),
    max: () => max,
  };
}
