import type { ChecksumAlgorithm } from './checksums.ts';
import type { PartwiseError } from './errors.ts';
import type { ReconcileReport } from './reconcile.ts';

export type Phase = 'prepare' | 'verify' | 'upload' | 'complete' | 'done';

export interface ProgressSnapshot {
  phase: Phase;
  totalBytes: number;
  partsTotal: number;
  /** verification phase: bytes of the local file hashed so far / to hash */
  bytesHashed: number;
  bytesToHash: number;
  /** parts the server already held and that were verified, so not sent again */
  partsSkipped: number;
  bytesSkipped: number;
  /** this run: body bytes handed to the network for parts in flight or done (a retried part restarts at 0) */
  bytesSent: number;
  /** this run: bytes of parts the server acknowledged */
  bytesAcknowledged: number;
  partsUploaded: number;
  partsInFlight: number;
  retries: number;
  /** (skipped + acknowledged) / total, 0..1, never above 1 */
  fractionDone: number;
  /** acknowledged bytes per second since the upload phase began */
  bytesPerSecond: number;
  elapsedMs: number;
}

export interface PlanEvent {
  bucket: string;
  key: string;
  uploadId: string;
  fileSize: number;
  partSize: number;
  partCount: number;
  checksumAlgorithm: ChecksumAlgorithm | null;
  resumed: boolean;
  /** set when the requested part size was raised to fit 10,000 parts */
  partSizeAdjustedFrom?: number;
  journalPath: string;
}

export type VerificationLevel = 'full-object-checksum' | 'composite-checksum' | 'multipart-etag' | 'size';

export interface UploadResult {
  bucket: string;
  key: string;
  uploadId: string;
  etag: string;
  size: number;
  partCount: number;
  partsUploaded: number;
  partsSkipped: number;
  bytesSent: number;
  retries: number;
  resumed: boolean;
  checksumAlgorithm: ChecksumAlgorithm | null;
  /** the object's checksum as the server reports it, when it reports one */
  checksum?: string;
  checksumType?: string;
  /** how strongly the object on the server is known to equal the local file */
  verification: { level: VerificationLevel; checks: string[] };
  reconcile?: ReconcileReport;
  durationMs: number;
}

export interface UploadEvents {
  plan: (e: PlanEvent) => void;
  reconcile: (report: ReconcileReport) => void;
  'verify-progress': (e: { bytesHashed: number; bytesToHash: number; partsHashed: number; partsToHash: number }) => void;
  'part-start': (e: { partNumber: number; size: number; attempt: number }) => void;
  'part-done': (e: { partNumber: number; size: number; etag: string; attempts: number }) => void;
  'part-retry': (e: { partNumber: number; attempt: number; delayMs: number; error: string; throttled: boolean }) => void;
  'part-skip': (e: { partNumber: number; size: number; basis: string[] }) => void;
  progress: (s: ProgressSnapshot) => void;
  warning: (e: { code: string; message: string }) => void;
  complete: (r: UploadResult) => void;
  error: (err: PartwiseError) => void;
}

interface PartState {
  size: number;
  sent: number;
  acked: boolean;
}

/** Progress derived from per-part state, never from accumulated deltas, so retries can't push it past 100%. */
export class ProgressTracker {
  phase: Phase = 'prepare';
  bytesHashed = 0;
  bytesToHash = 0;
  partsSkipped = 0;
  bytesSkipped = 0;
  retries = 0;
  private readonly parts = new Map<number, PartState>();
  private readonly started = Date.now();
  private uploadStarted: number | undefined;
  private lastEmit = 0;

  constructor(
    readonly totalBytes: number,
    readonly partsTotal: number,
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
      retries: this.retries,
      fractionDone: this.totalBytes === 0 ? (this.phase === 'done' ? 1 : 0) : Math.min(1, done / this.totalBytes),
      bytesPerSecond: upSecs > 0 ? bytesAcknowledged / upSecs : 0,
      elapsedMs: now - this.started,
    };
  }

  private push(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.lastEmit < this.intervalMs) return;
    this.lastEmit = now;
    this.emit(this.snapshot());
  }
}
