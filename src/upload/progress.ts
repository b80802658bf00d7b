/**
 * Progress derived from per-part state, never from accumulated deltas, so retries can't push it
 * past 100%. The tracker follows the upload's own events (`follow`), so what it shows can never
 * disagree with what the engine reported.
 */
import type { EventEmitter } from 'eventemitter3';
import type { Phase, ProgressSnapshot, UploadEvents } from './events.ts';

export type { Phase, ProgressSnapshot } from './events.ts';

interface PartState {
  size: number;
  sent: number;
  acked: boolean;
}

export class ProgressTracker {
  phase: Phase = 'prepare';
  bytesHashed = 0;
  bytesToHash = 0;
  partsSkipped = 0;
  bytesSkipped = 0;
  retries = 0;
  concurrency = 0;
  private readonly parts = new Map<number, PartState>();
  private readonly started = Date.now();
  private uploadStarted: number | undefined;
  private lastEmit = 0;

  constructor(
    public totalBytes: number,
    public partsTotal: number,
    private readonly emit: (s: ProgressSnapshot) => void,
    private readonly intervalMs = 100,
  ) {}

  setPhase(phase: Phase): void {
    this.phase = phase;
    if (phase === 'upload') this.uploadStarted ??= Date.now();
    this.push(true);
  }

  hashed(bytes: number): void {
    this.bytesHashed = Math.min(this.bytesToHash, this.bytesHashed + bytes);
    this.push(false);
  }

  skip(size: number): void {
    this.partsSkipped++;
    this.bytesSkipped += size;
  }

  startPart(partNumber: number, size: number): void {
    // Parts the server did not list go up during the verification phase: the rate counts from the first.
    this.uploadStarted ??= Date.now();
    this.parts.set(partNumber, { size, sent: 0, acked: false });
    this.push(false);
  }

  sent(partNumber: number, bytes: number): void {
    const p = this.parts.get(partNumber);
    if (!p || p.acked) return;
    p.sent = Math.min(p.size, p.sent + bytes);
    this.push(false);
  }

  retry(partNumber: number): void {
    this.retries++;
    const p = this.parts.get(partNumber);
    if (p && !p.acked) p.sent = 0;
    this.push(true);
  }

  acked(partNumber: number): void {
    const p = this.parts.get(partNumber);
    if (!p) return;
    p.acked = true;
    p.sent = p.size;
    this.push(true);
  }

  /** a part that failed for good: it no longer counts as in flight */
  dropped(partNumber: number): void {
    const p = this.parts.get(partNumber);
    if (p && !p.acked) this.parts.delete(partNumber);
  }

  snapshot(): ProgressSnapshot {
    let bytesSent = 0;
    let bytesAcknowledged = 0;
    let partsUploaded = 0;
    let partsInFlight = 0;
    for (const p of this.parts.values()) {
      bytesSent += p.sent;
      if (p.acked) {
        bytesAcknowledged += p.size;
        partsUploaded++;
      } else partsInFlight++;
    }
    const now = Date.now();
    const upSecs = this.uploadStarted ? (now - this.uploadStarted) / 1000 : 0;
    const done = this.bytesSkipped + bytesAcknowledged;
    return {
      phase: this.phase,
      totalBytes: this.totalBytes,
      partsTotal: this.partsTotal,
      bytesHashed: this.bytesHashed,
      bytesToHash: this.bytesToHash,
      partsSkipped: this.partsSkipped,
      bytesSkipped: this.bytesSkipped,
      bytesSent,
      bytesAcknowledged,
      partsUploaded,
      partsInFlight,
      concurrency: this.concurrency,
      retries: this.retries,
      fractionDone: this.totalBytes === 0 ? (this.phase === 'done' ? 1 : 0) : Math.min(1, done / this.totalBytes),
      bytesPerSecond: upSecs > 0 ? bytesAcknowledged / upSecs : 0,
      elapsedMs: now - this.started,
    };
  }

  push(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.lastEmit < this.intervalMs) return;
    this.lastEmit = now;
    this.emit(this.snapshot());
  }

  /**
   * A tracker fed only by an upload's events: plan (totals), phase, verify-progress, part-skip,
   * part-start, part-sent, part-retry, part-failed, part-done. Its snapshots go out as `progress`.
   */
  static follow(source: EventEmitter<UploadEvents>, intervalMs = 100): ProgressTracker {
    const t = new ProgressTracker(0, 0, (s) => source.emit('progress', s), intervalMs);
    source.on('plan', (e) => {
      t.totalBytes = e.fileSize;
      t.partsTotal = e.partCount;
    });
    source.on('phase', (e) => t.setPhase(e.phase));
    source.on('verify-progress', (e) => {
      t.bytesToHash = e.bytesToHash;
      t.bytesHashed = Math.min(e.bytesToHash, e.bytesHashed);
      t.push(false);
    });
    source.on('part-skip', (e) => t.skip(e.size));
    source.on('part-start', (e) => t.startPart(e.partNumber, e.size));
    source.on('part-sent', (e) => t.sent(e.partNumber, e.bytes));
    source.on('part-retry', (e) => t.retry(e.partNumber));
    source.on('part-failed', (e) => t.dropped(e.partNumber));
    source.on('part-done', (e) => t.acked(e.partNumber));
    source.on('concurrency', (e) => {
      t.concurrency = e.concurrency;
      t.push(true);
    });
    return t;
  }
}
