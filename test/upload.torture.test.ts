/**
 * The crash torture, small: one round per kill moment (and one double kill), against the local
 * RADOS Gateway. `npm run torture` runs 30 and more and keeps the figures in RELIABILITY.md.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeBucket, plainClient } from './helpers/s3.ts';
import { MOMENTS, figures, runTorture, torturePlan } from './torture/run.ts';

test('crash torture, one round per moment: every object identical, no unreadable journal, re-sends within what was in flight, nothing left open', async () => {
  const bucket = await makeBucket('pw-torture');
  const results = await runTorture({ client: plainClient(), bucket, plan: torturePlan(7), seed: 11 });
  const f = figures(results);
  assert.deepEqual(f.errors, []);
  assert.equal(f.identical, 7);
  assert.equal(f.unreadableJournals, 0);
  assert.equal(f.roundsOverBound, 0, `re-sent ${f.bytesResent} > bound in some round`);
  assert.equal(f.openUploadsLeft, 0);
  for (const m of MOMENTS) assert.ok(f.killsByMoment[m]!.landed >= 1, `a kill landed at ${m}`);
  assert.ok(f.midWriteKills >= 1, 'a kill landed in the middle of a journal write');
});
