import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { ChecksumAlgorithm } from './checksums.ts';
import type { LocalDigest } from './hashing.ts';
import type { HashJob, HashReply } from './hash-worker.ts';
import type { PlannedPart } from './planner.ts';

export interface HashPartsOptions {
  /** worker threads; default: one per core */
  workers?: number;
  onBytes?: (bytes: number) => void;
  onPart?: (partNumber: number) => void;
  signal?: AbortSignal;
  /** compute MD5 too (default true); false when the server's part checksums are the evidence */
  md5?: boolean;
}

const fromSource = import.meta.url.endsWith('.ts');

/**
 * Built, the worker is plain .js. Run from source (tests and benchmarks under tsx), Node 20 loads a
 * worker's entry before tsx's hooks apply in it, so a two-line bootstrap registers tsx first.
 */
function startWorker(): Worker {
  if (!fromSource) return new Worker(new URL('./hash-worker.js', import.meta.url));
  const api = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./hash-worker.ts', import.meta.url).href;
  return new Worker(`import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`, { eval: true });
}

/**
 * Hashes the given parts of a file on worker threads, one job per part pulled from a shared
 * queue, so all cores stay busy on uneven part sizes. Used for the resume verification phase,
 * where every part the server claims has to be re-hashed from the local file.
 */
export async function hashPartsInWorkers(path: string, parts: PlannedPart[], alg: ChecksumAlgorithm | undefined, opts: HashPartsOptions = {}): Promise<Map<number, LocalDigest>> {
  const result = new Map<number, LocalDigest>();
  if (parts.length === 0) return result;
  const count = Math.max(1, Math.min(opts.workers ?? availableParallelism(), parts.length));
  const queue = [...parts];
  let firstError: Error | undefined;

  const runWorker = () =>
    new Promise<void>((resolve) => {
      const worker = startWorker();
      let current: PlannedPart | undefined;
      const next = () => {
        current = firstError || opts.signal?.aborted ? undefined : queue.shift();
        if (!current) {
          worker.postMessage('close');
          return;
        }
        worker.postMessage({ id: current.partNumber, path, offset: current.offset, length: current.size, alg, md5: opts.md5 !== false } satisfies HashJob);
      };
      worker.on('message', (m: HashReply) => {
        if (m.type === 'progress') opts.onBytes?.(m.bytes);
        else if (m.type === 'error') {
          firstError ??= new Error(`hashing part ${m.id}: ${m.message}`);
          next();
        } else {
          result.set(m.id, { ...(m.md5Hex ? { md5Hex: m.md5Hex } : {}), ...(m.checksum ? { checksum: Buffer.from(m.checksum) } : {}) });
          opts.onPart?.(m.id);
          next();
        }
      });
      worker.on('error', (err) => {
        firstError ??= err;
        resolve();
      });
      worker.on('exit', () => resolve());
      next();
    });

  await Promise.all(Array.from({ length: count }, runWorker));
  if (firstError) throw firstError;
  if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
  return result;
}
