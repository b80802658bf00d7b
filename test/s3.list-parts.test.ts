import assert from 'node:assert/strict';
import { test } from 'node:test';
import { listAllParts } from '../src/s3/list-parts.ts';
import type { ListPartsOutput } from '../src/s3/port.ts';

const part = (n: number) => ({ partNumber: n, size: 1, etag: `e${n}` });

/** A scripted server: pages of a sorted part list, with knobs for misbehaviour. */
function server(numbers: number[], pageSize: number, misbehave: 'none' | 'stuck-marker' | 'no-marker' | 'always-truncated' = 'none') {
  const calls: (number | undefined)[] = [];
  const call = async (marker: number | undefined): Promise<ListPartsOutput> => {
    calls.push(marker);
    if (calls.length > 100) throw new Error('runaway loop');
    const rest = numbers.filter((n) => n > (marker ?? 0));
    const page = rest.slice(0, pageSize);
    const truncated = misbehave === 'always-truncated' || rest.length > pageSize;
    const out: ListPartsOutput = { parts: page.map(part), isTruncated: truncated };
    if (misbehave === 'stuck-marker') out.nextPartNumberMarker = 0;
    else if (misbehave !== 'no-marker') out.nextPartNumberMarker = page.at(-1) ?? 0;
    return out;
  };
  return { call, calls };
}

test('listAllParts: follows pages to the end', async () => {
  const nums = Array.from({ length: 2500 }, (_, i) => i + 1);
  const s = server(nums, 1000);
  const r = await listAllParts(s.call);
  assert.equal(r.parts.length, 2500);
  assert.deepEqual(s.calls, [undefined, 1000, 2000]);
  assert.equal(r.pages, 3);
  assert.equal(r.stoppedEarly, false);
});

test('listAllParts: sparse part numbers across pages', async () => {
  const s = server([1, 3, 7, 10, 250], 2);
  const r = await listAllParts(s.call);
  assert.deepEqual(r.parts.map((p) => p.partNumber), [1, 3, 7, 10, 250]);
  assert.deepEqual(s.calls, [undefined, 3, 10]);
});

test('listAllParts: a marker that does not advance falls back to the highest part seen', async () => {
  const s = server(Array.from({ length: 25 }, (_, i) => i + 1), 10, 'stuck-marker');
  const r = await listAllParts(s.call);
  assert.equal(r.parts.length, 25);
  assert.deepEqual(s.calls, [undefined, 10, 20]);
});

test('listAllParts: a missing NextPartNumberMarker also falls back', async () => {
  const s = server(Array.from({ length: 25 }, (_, i) => i + 1), 10, 'no-marker');
  assert.equal((await listAllParts(s.call)).parts.length, 25);
});

test('listAllParts: IsTruncated true for ever (RGW with MaxParts=0) ends instead of looping', async () => {
  const s = server([1, 2, 3], 10, 'always-truncated');
  const r = await listAllParts(s.call);
  assert.deepEqual(r.parts.map((p) => p.partNumber), [1, 2, 3]);
  assert.equal(r.stoppedEarly, true);
  assert.ok(s.calls.length <= 2, `calls: ${s.calls.length}`);
});
