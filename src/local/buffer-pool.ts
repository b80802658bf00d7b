/**
 * Part buffers, recycled: a part's buffer goes back to the pool once the server has acknowledged
 * it, and the next part of any upload sharing the same limiter reads into it (a smaller last part
 * into a view of a larger one). Memory then stays at about concurrency × part size instead of
 * growing with garbage the collector has not yet returned: each part would otherwise be a fresh
 * multi-MiB allocation.
 */
import type { LimitFunction } from 'p-limit';

/** Below this, Node serves allocations from a shared slab: not ours to recycle, and cheap anyway. */
const MIN_POOLED = 64 * 1024;

export class BufferPool {
  private readonly free: ArrayBuffer[] = [];

  constructor(private readonly capacity: () => number) {}

  /**
   * A buffer of `size` bytes. New ones are allocated at `allocate` bytes (the upload's part size),
   * so a last part's buffer serves a full part later: every buffer in the pool fits every part.
   */
  take(size: number, allocate = size): Buffer {
    if (size < MIN_POOLED) return Buffer.allocUnsafe(size);
    // The smallest free buffer that holds it.
    let best = -1;
    for (let i = 0; i < this.free.length; i++) {
      const len = this.free[i]!.byteLength;
      if (len >= size && (best < 0 || len < this.free[best]!.byteLength)) best = i;
    }
    const ab = best < 0 ? Buffer.allocUnsafeSlow(Math.max(size, allocate)).buffer : this.free.splice(best, 1)[0]!;
    return Buffer.from(ab as ArrayBuffer, 0, size);
  }

  /** Only buffers no request holds any more; beyond the limiter's concurrency they are let go. */
  give(b: Buffer): void {
    if (b.length < MIN_POOLED || this.free.length >= this.capacity()) return;
    if (this.free.includes(b.buffer as ArrayBuffer)) return;
    this.free.push(b.buffer as ArrayBuffer);
  }

  get size(): number {
    return this.free.length;
  }
}

const pools = new WeakMap<LimitFunction, BufferPool>();

/** One pool per limiter: uploads sharing a concurrency budget share their buffers too. */
export function poolFor(limiter: LimitFunction): BufferPool {
  let p = pools.get(limiter);
  if (!p) {
    p = new BufferPool(() => limiter.concurrency);
    pools.set(limiter, p);
  }
  return p;
}
