/** The UploadResult a run returns, built in one place from what each way of finishing knows. */
import { stripQuotes } from '../core/checksums.ts';
import type { RunStats } from './context.ts';
import type { UploadResult } from './events.ts';
import type { Proof } from './types.ts';
import type { VerifyObjectResult } from './inspect.ts';
import type { JournalData } from '../local/journal.ts';
import type { PartPlan } from '../core/planner.ts';
import type { ReconcileReport } from '../core/reconcile.ts';

export interface ResultExtra {
  resumed: boolean;
  alreadyComplete: boolean;
  partsSkipped: number;
  reconcile?: ReconcileReport;
  completedEtag?: string;
}

/** An upload this run completed, or one a previous run had (the journal and the proof of the object). */
export function uploadResult(j: JournalData, plan: PartPlan, proof: Proof, stats: RunStats, t0: number, extra: ResultExtra): UploadResult {
  const alg = j.checksumAlgorithm;
  const head = proof.head;
  const checksum = alg ? head?.checksums[alg] : undefined;
  return {
    bucket: j.bucket,
    key: j.key,
    uploadId: j.uploadId,
    etag: stripQuotes(head?.etag ?? extra.completedEtag ?? ''),
    size: head?.size ?? plan.fileSize,
    partCount: plan.partCount,
    partsUploaded: stats.partsSent,
    partsSkipped: extra.partsSkipped,
    bytesSent: stats.bytesSent,
    retries: stats.retries,
    resumed: extra.resumed,
    alreadyComplete: extra.alreadyComplete,
    checksumAlgorithm: alg,
    ...(checksum ? { checksum } : {}),
    ...(head?.checksumType ? { checksumType: head.checksumType } : {}),
    verification: { level: proof.judgement.level, checks: proof.judgement.checks },
    ...(extra.reconcile ? { reconcile: extra.reconcile } : {}),
    durationMs: Date.now() - t0,
  };
}

/** No upload at all: the object at the key was already proven to be the file. */
export function presentResult(o: { bucket: string; key: string }, size: number, p: VerifyObjectResult & { etag: string }, stats: RunStats, t0: number): UploadResult {
  return {
    bucket: o.bucket,
    key: o.key,
    uploadId: '',
    etag: stripQuotes(p.etag),
    size,
    partCount: p.partCount,
    partsUploaded: 0,
    partsSkipped: p.partCount,
    bytesSent: 0,
    retries: stats.retries,
    resumed: false,
    alreadyComplete: true,
    checksumAlgorithm: p.checksumAlgorithm,
    verification: { level: p.level, checks: p.checks },
    durationMs: Date.now() - t0,
  };
}
