import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatBytes, renderProgress, stopNotice } from '../src/cli/render.ts';
import type { ProgressSnapshot } from '../src/upload/events.ts';

const MiB = 2 ** 20;
const snap = (over: Partial<ProgressSnapshot>): ProgressSnapshot => ({
  phase: 'upload',
  totalBytes: 0,
  partsTotal: 0,
  bytesHashed: 0,
  bytesToHash: 0,
  concurrency: 4,
  partsSkipped: 0,
  bytesSkipped: 0,
  bytesSent: 0,
  bytesAcknowledged: 0,
  partsUploaded: 0,
  partsInFlight: 0,
  retries: 0,
  fractionDone: 0,
  bytesPerSecond: 0,
  elapsedMs: 0,
  ...over,
});

test('formatBytes: whole bytes below a KiB (a rate is rarely a whole number)', () => {
  for (const [n, want] of [
    [0, '0 B'],
    [283.0188679245283, '283 B'],
    [1023.6, '1023 B'],
    [1536, '1.5 KiB'],
    [100 * MiB, '100 MiB'],
  ] as const) {
    assert.equal(formatBytes(n), want, String(n));
  }
});

test('renderProgress: a known size shows the share, the total and the parts', () => {
  const line = renderProgress(snap({ totalBytes: 64 * MiB, partsTotal: 4, bytesAcknowledged: 32 * MiB, partsUploaded: 2, fractionDone: 0.5, bytesPerSecond: 16 * MiB }));
  assert.match(line, / 50% 32\.0 MiB\/64\.0 MiB 16\.0 MiB\/s ETA 2\.0s parts 2\/4$/);
});

test('renderProgress: a stream of unknown size shows what went up, no share, total or ETA', () => {
  const line = renderProgress(snap({ bytesAcknowledged: 15, partsUploaded: 1, bytesPerSecond: 283.0188679245283 }));
  assert.doesNotMatch(line, /\/0 B|%|ETA|\/0\b/, line);
  assert.match(line, / 15 B sent 283 B\/s parts 1$/, line);
});

test('stopNotice: names what stopped the run, and offers Ctrl-C only to whom pressed it', () => {
  for (const [signal, what, want] of [
    ['SIGINT', 'file', /^partwise: stopping \(Ctrl-C\); finished parts stay recorded in the journal \(Ctrl-C again to quit at once\)$/],
    ['SIGTERM', 'file', /^partwise: stopping \(SIGTERM\); finished parts stay recorded in the journal \(a second signal quits at once\)$/],
    ['SIGHUP', 'stream', /^partwise: stopping \(SIGHUP\); the stream's upload will be aborted \(a second signal quits at once\)$/],
    ['SIGINT', 'stream', /^partwise: stopping \(Ctrl-C\); the stream's upload will be aborted \(Ctrl-C again to quit at once\)$/],
    ['SIGTERM', 'folder', /^partwise: stopping \(SIGTERM\); finished files and parts stay recorded \(run the same command to continue\)$/],
  ] as const) {
    assert.match(stopNotice(signal, what), want, `${signal} ${what}`);
  }
});
