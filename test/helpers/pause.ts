import assert from 'node:assert/strict';
import { Upload, type EngineOptions } from '../../src/upload/engine.ts';
import { PausedError } from '../../src/core/errors.ts';
import { SdkS3Port, createS3Client } from '../../src/s3/adapter.ts';

/**
 * Starts an upload and pauses it with its AbortSignal right after `afterParts` parts are
 * acknowledged (concurrency 1 unless given, so nothing else is in flight). Asserts it ended
 * PAUSED; returns its uploadId and the parts it reported done, in order.
 */
export async function uploadThenPause(
  opts: Omit<EngineOptions, 's3' | 'signal'> & { s3?: EngineOptions['s3'] },
  afterParts: number,
): Promise<{ uploadId: string; done: number[] }> {
  const ac = new AbortController();
  const up = new Upload({ concurrency: 1, ...opts, s3: opts.s3 ?? new SdkS3Port(createS3Client()), signal: ac.signal });
  let uploadId = '';
  const done: number[] = [];
  up.on('plan', (e) => (uploadId = e.uploadId));
  up.on('part-done', (e) => {
    done.push(e.partNumber);
    if (done.length === afterParts) ac.abort();
  });
  await assert.rejects(up.done(), PausedError);
  return { uploadId, done };
}
