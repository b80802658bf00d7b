/**
 * The shapes the phases of one upload hand each other: a session (what begin or resume opens and
 * send and finish work on), the proof of a finished object, a resume's verification. Kept apart
 * from the phases so that each phase may name them without importing another phase.
 */
import type { ChecksumAlgorithm } from '../core/checksums.ts';
import type { LocalDigest } from '../core/hashing.ts';
import type { PartPlan } from '../core/planner.ts';
import type { ReconcileReport, RemotePart } from '../core/reconcile.ts';
import type { ObjectJudgement } from '../core/verify-object.ts';
import type { JournalData } from '../local/journal.ts';
import type { HeadOutput } from '../s3/port.ts';

export interface Session {
  journalPath: string;
  /** mutable: parts are added as they are acknowledged; etagIsMd5 can only turn false */
  journal: JournalData;
  plan: PartPlan;
  alg: ChecksumAlgorithm | null;
  /** digest of every part this run knows to be on the server with these bytes */
  digests: Map<number, LocalDigest>;
  resumed: boolean;
  /** parts to send, ascending */
  toUpload: number[];
  report?: ReconcileReport;
  /** no file to re-check before Complete: a stream's upload, or a shared upload's finish step */
  noFile?: boolean;
}

export type Opened = { kind: 'session'; session: Session } | { kind: 'finished'; journal: JournalData; plan: PartPlan; proof: Proof };

export interface Proof {
  proven: boolean;
  judgement: ObjectJudgement;
  /** the object as the server reported it (absent when it could not be read) */
  head?: HeadOutput;
  /** why nothing was proven, in words */
  why?: string;
}

export interface RemoteVerification {
  report: ReconcileReport;
  local: Map<number, LocalDigest>;
  remote: Map<number, RemotePart>;
  stoppedEarly: boolean;
}
