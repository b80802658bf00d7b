/**
 * The checksum probe: until the server has shown that it stores and checks part checksums, the
 * first part goes alone with Content-MD5 too, and the others wait for its answer so they can skip
 * MD5 (the slowest hash here: at 8 × 64 MiB, half a GiB of it). Waiting pays on a fast, local pipe,
 * where the probe is answered in a fraction of a second and the CPU is what limits; on a long, slow
 * pipe the probe takes seconds and the pipe would sit nearly empty, so there the others go at once
 * with MD5. The probe's own sending rate tells which: a pure decision, fed by the caller's clock.
 */

export interface ProbeProgress {
  /** ms since the probe's first body byte went to the network; undefined while it is still being read and hashed */
  sendingMs: number | undefined;
  /** body bytes of the probe handed to the network so far */
  bytesSent: number;
  /**
   * the bandwidth cap (bytes/ms), when the run has one: a probe that alone fills most of it is
   * not slow, the cap is the limit, and the others would add MD5 and nothing else
   */
  capBytesPerMs?: number;
}

export interface ProbeTuning {
  /** the probe's rate is judged once it has sent for this long */
  judgeAfterMs: number;
  /** at or above this rate (bytes/ms) the pipe is local enough that waiting costs less than MD5 */
  fastBytesPerMs: number;
  /** under a cap, at or above this share of it the probe alone uses the cap */
  capShare: number;
}

export const DEFAULT_PROBE_TUNING: ProbeTuning = { judgeAfterMs: 250, fastBytesPerMs: 50_000, capShare: 0.8 };

/** Whether the other parts keep waiting for the probe's answer. */
export function keepWaitingForProbe(p: ProbeProgress, t: ProbeTuning = DEFAULT_PROBE_TUNING): boolean {
  // Reading and hashing the probe is local work, as quick as the disk: worth waiting for.
  if (p.sendingMs === undefined || p.sendingMs < t.judgeAfterMs) return true;
  const rate = p.bytesSent / p.sendingMs;
  return rate >= (p.capBytesPerMs === undefined ? t.fastBytesPerMs : Math.min(t.fastBytesPerMs, t.capShare * p.capBytesPerMs));
}
