import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { ChecksumAlgorithm } from '../core/checksums.ts';
import type { LocalDigest } from '../core/hashing.ts';
import type { HashJob, HashReply } from './hash-worker.ts';
import type { PlannedPart } from '../core/planner.ts';

export interface HashPartsOptions {
  /** worker threads at most; default: one per core */
  workers?: number;
  /** how a thread is started (tests start real ones they can then stop from outside) */
  startThread?: () => Worker;
  onBytes?: (bytes: number, partNumber: number) => void;
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
export function startHashThread(): Worker {
  if (!fromSource) return new Worker(new URL('./hash-worker.js', import.meta.url));
  const api = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./hash-worker.ts', import.meta.url).href;
  return new Worker(`import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`, { eval: true });
}

interface Batch {
  parts: PlannedPart[];
  resolve: (digests: Map<number, LocalDigest>) => void;
  reject: (err: unknown) => void;
}

/**
 * Worker threads hashing parts of one file, one job per part pulled from a shared queue, so all
 * cores stay busy on uneven part sizes. Parts can be added while earlier ones are hashed: a resume
 * starts on the parts its journal lists before the server's listing arrives, then adds the ones
 * only the server knows, on the same threads (a thread costs tens of milliseconds to start).
 * Idle threads keep the process alive until `close()`: every owner closes its pool when done.
 */
export class HashPool {
  private readonly queue: PlannedPart[] = [];
  /** every part number asked for, with the byte range it stands for: one number, one range */
  private readonly asked = new Map<number, PlannedPart>();
  private readonly results = new Map<number, LocalDigest>();
  private readonly batches = new Set<Batch>();
  private readonly idle: Array<() => void> = [];
  private readonly max: number;
  private readonly signal: AbortSignal | undefined;
  private readonly onAbort = () => this.fail(this.signal?.reason ?? new Error('aborted'));
  private threads = 0;
  private failed: unknown;
  private closed = false;

  constructor(
    private readonly path: string,
    private readonly alg: ChecksumAlgorithm | undefined,
    private readonly opts: HashPartsOptions = {},
  ) {
    this.max = Math.max(1, opts.workers ?? availableParallelism());
    this.signal = opts.signal;
    if (this.signal?.aborted) this.onAbort();
    else this.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Starts on these parts before anyone waits for them (hashed once, however often asked for). */
  prefetch(parts: PlannedPart[]): void {
    if (this.failed !== undefined || this.closed) return;
    for (const p of parts) {
      const was = this.asked.get(p.partNumber);
      // A digest is found by part number: the same number for other bytes would hand back a
      // digest of the wrong range (two plans mixed up), so that is refused outright.
      if (was && (was.offset !== p.offset || was.size !== p.size)) throw new Error(`part ${p.partNumber} asked for as bytes ${p.offset}+${p.size}, already as ${was.offset}+${was.size}`);
      if (was) continue;
      this.asked.set(p.partNumber, p);
      this.queue.push(p);
    }
    while (this.idle.length && this.queue.length) this.idle.pop()!();
    while (this.threads < this.max && this.queue.length) this.spawn();
  }

  /** Digests of these parts, once all are hashed. */
  hash(parts: PlannedPart[]): Promise<Map<number, LocalDigest>> {
    // A stop on the signal has already failed the pool (its listener runs at the abort).
    if (this.failed !== undefined) return Promise.reject(this.failed);
    if (this.closed) return Promise.reject(new Error('hash pool closed'));
    const done = new Promise<Map<number, LocalDigest>>((resolve, reject) => this.batches.add({ parts, resolve, reject }));
    this.prefetch(parts);
    this.settle();
    return done;
  }

  /** Queued parts neither in `keep` nor waited for are dropped (the ones being hashed finish). */
  retain(keep: ReadonlySet<number>): void {
    const waited = new Set([...this.batches].flatMap((b) => b.parts.map((p) => p.partNumber)));
    const stays = (p: PlannedPart) => keep.has(p.partNumber) || waited.has(p.partNumber);
    for (const p of this.queue) if (!stays(p)) this.asked.delete(p.partNumber);
    this.queue.splice(0, this.queue.length, ...this.queue.filter(stays));
  }

  /** No more parts: what nobody waits for is dropped, and the threads exit once the rest is hashed. */
  close(): void {
    this.retain(new Set());
    this.closed = true;
    this.signal?.removeEventListener('abort', this.onAbort);
    while (this.idle.length) this.idle.pop()!();
  }

  private fail(err: unknown): void {
    this.failed ??= err;
    this.queue.length = 0;
    for (const b of this.batches) b.reject(this.failed);
    this.batches.clear();
    this.close();
  }

  private settle(): void {
    for (const b of this.batches) {
      if (!b.parts.every((p) => this.results.has(p.partNumber))) continue;
      this.batches.delete(b);
      b.resolve(new Map(b.parts.map((p) => [p.partNumber, this.results.get(p.partNumber)!])));
    }
  }

  private spawn(): void {
    this.threads++;
    const worker = (this.opts.startThread ?? startHashThread)();
    let current: PlannedPart | undefined;
    let told = false;
    const next = (): void => {
      current = this.failed === undefined ? this.queue.shift() : undefined;
      if (current) {
        worker.postMessage({ id: current.partNumber, path: this.path, offset: current.offset, length: current.size, alg: this.alg, md5: this.opts.md5 !== false } satisfies HashJob);
        return;
      }
      if (this.closed || this.failed !== undefined) {
        told = true;
        worker.postMessage('close');
        return;
      }
      this.idle.push(next);
    };
    worker.on('message', (m: HashReply) => {
      if (m.type === 'progress') this.opts.onBytes?.(m.bytes, m.id);
      else if (m.type === 'error') this.fail(new Error(`hashing part ${m.id}: ${m.message}`));
      else {
        this.results.set(m.id, { ...(m.md5Hex ? { md5Hex: m.md5Hex } : {}), ...(m.checksum ? { checksum: Buffer.from(m.checksum) } : {}) });
        this.opts.onPart?.(m.id);
        this.settle();
      }
      if (m.type !== 'progress') next();
    });
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', () => {
      this.threads--;
      // A thread gone unasked (killed, out of memory), busy or idle, must not leave anything waiting
      // on it: the part in hand, or the next one it would have been given.
      if (current && !this.results.has(current.partNumber)) this.fail(new Error(`hash worker exited while hashing part ${current.partNumber}`));
      else if (!told) this.fail(new Error('a hash worker exited unexpectedly'));
    });
    next();
  }
}

/** Hashes the given parts of a file on worker threads (a pool of its own, closed when done). */
export async function hashPartsInWorkers(path: string, parts: PlannedPart[], alg: ChecksumAlgorithm | undefined, opts: HashPartsOptions = {}): Promise<Map<number, LocalDigest>> {
  if (parts.length === 0) return new Map();
  // No more threads than parts: each thread starts with a part in hand.
  const pool = new HashPool(path, alg, opts);
  try {
    return await pool.hash(parts);
  } finally {
    pool.close();
  }
}

/**
 * Hashing of a file's parts with progress kept per part: it may start before the server's listing
 * says which parts count, and only those are then reported.
 */
export interface PartHashing {
  pool: HashPool;
  /** Date.now() when it began: a head start counts in the time the hashing took */
  startedAt: number;
  /** whether MD5 is computed alongside the checksum */
  md5: boolean;
  hashedBytes: Map<number, number>;
  hashedParts: Set<number>;
  /** where progress goes once the parts that count are known */
  sink?: { bytes(n: number, part: number): void; part(part: number): void };
}

export function partHashing(path: string, alg: ChecksumAlgorithm | undefined, md5: boolean, opts: Pick<HashPartsOptions, 'workers' | 'signal'> = {}): PartHashing {
  const h: PartHashing = {
    startedAt: Date.now(),
    md5,
    hashedBytes: new Map(),
    hashedParts: new Set(),
    pool: new HashPool(path, alg, {
      ...opts,
      md5,
      onBytes: (n, part) => {
        h.hashedBytes.set(part, (h.hashedBytes.get(part) ?? 0) + n);
        h.sink?.bytes(n, part);
      },
      onPart: (part) => {
        h.hashedParts.add(part);
        h.sink?.part(part);
      },
    }),
  };
  return h;
}
