import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProgressTracker, type ProgressSnapshot } from '../src/upload/progress.ts';

test('progress never exceeds 100%, even when parts are retried after sending bytes', () => {
  const snaps: ProgressSnapshot[] = [];
  const t = new ProgressTracker(30, 3, (s) => snaps.push(s), 0);
  t.skip(10); // part 1 verified on the server
  t.setPhase('upload');
  t.startPart(2, 10);
  t.sent(2, 8);
  t.retry(2); // connection reset: part 2 starts over
  t.sent(2, 10);
  t.sent(2, 10); // an over-report is clamped to the part size
  t.acked(2);
  t.startPart(3, 10);
  t.sent(3, 10);
  t.retry(3);
  t.sent(3, 10);
  t.acked(3);
  t.acked(3); // a duplicate ack changes nothing
  t.setPhase('done');
  for (const s of snaps) {
    assert.ok(s.fractionDone <= 1, `fraction ${s.fractionDone}`);
    assert.ok(s.bytesSent <= s.totalBytes, `sent ${s.bytesSent}`);
    assert.ok(s.bytesSkipped + s.bytesAcknowledged <= s.totalBytes);
  }
  const last = snaps.at(-1)!;
  assert.equal(last.fractionDone, 1);
  assert.equal(last.bytesAcknowledged, 20);
  assert.equal(last.bytesSkipped, 10);
  assert.equal(last.partsUploaded, 2);
  assert.equal(last.partsSkipped, 1);
  assert.equal(last.retries, 2);
  assert.equal(last.partsInFlight, 0);
});

test('progress of an empty file is 0 until done, then 1', () => {
  const snaps: ProgressSnapshot[] = [];
  const t = new ProgressTracker(0, 1, (s) => snaps.push(s), 0);
  t.setPhase('upload');
  assert.equal(snaps.at(-1)!.fractionDone, 0);
  t.setPhase('done');
  assert.equal(snaps.at(-1)!.fractionDone, 1);
});
