/**
 * Worker thread for the verification phase: hashes byte ranges of the source file, reading them
 * itself so no part-sized buffer ever crosses threads.
 */
import { closeSync, openSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { loadHashers, type ChecksumAlgorithm } from '../core/checksums.ts';
import { computesMd5 } from '../core/hashing.ts';
import { digestFdRangeSync } from './file-hashing.ts';

export interface HashJob {
  id: number;
  path: string;
  offset: number;
  length: number;
  alg: ChecksumAlgorithm | undefined;
  /** false: the checksum alone (the server's part checksums are the evidence) */
  md5: boolean;
}

export type HashReply =
  | { id: number; type: 'progress'; bytes: number }
  | { id: number; type: 'done'; md5Hex?: string; checksum?: Uint8Array }
  | { id: number; type: 'error'; message: string };

const port = parentPort;
if (!port) throw new Error('hash-worker must run as a worker thread');

const fds = new Map<string, number>();
const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
let queue = Promise.resolve();

port.on('message', (job: HashJob | 'close') => {
  // One job at a time per worker: the shared read buffer and the hash instances are reused.
  queue = queue.then(async () => {
    if (job === 'close') {
      for (const fd of fds.values()) closeSync(fd);
      fds.clear();
      port.close();
      return;
    }
    try {
      await loadHashers([job.alg, computesMd5(job.alg, job.md5) ? 'MD5' : undefined]);
      let fd = fds.get(job.path);
      if (fd === undefined) {
        fd = openSync(job.path, 'r');
        fds.set(job.path, fd);
      }
      let pending = 0;
      const report = (n: number) => {
        pending += n;
        if (pending >= 16 * 1024 * 1024) {
          port.postMessage({ id: job.id, type: 'progress', bytes: pending } satisfies HashReply);
          pending = 0;
        }
      };
      const d = digestFdRangeSync(fd, job.offset, job.length, job.alg, buf, report, job.md5);
      if (pending) port.postMessage({ id: job.id, type: 'progress', bytes: pending } satisfies HashReply);
      const reply: HashReply = { id: job.id, type: 'done', ...(d.md5Hex ? { md5Hex: d.md5Hex } : {}), ...(d.checksum ? { checksum: d.checksum } : {}) };
      port.postMessage(reply);
    } catch (err) {
      port.postMessage({ id: job.id, type: 'error', message: (err as Error).message } satisfies HashReply);
    }
  });
});
