import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_PROBE_TUNING, keepWaitingForProbe } from '../src/core/probe.ts';

test('the checksum probe: the others wait while it is read and hashed, and after that only while it sends at a local pipe\'s rate', () => {
  const t = DEFAULT_PROBE_TUNING;
  const rows: [string, Parameters<typeof keepWaitingForProbe>[0], boolean][] = [
    ['still read and hashed (1 GiB takes seconds, all local)', { sendingMs: undefined, bytesSent: 0 }, true],
    ['sending, not judged yet', { sendingMs: t.judgeAfterMs - 1, bytesSent: 0 }, true],
    ['loopback: 300 MB/s', { sendingMs: 400, bytesSent: 300_000 * 400 }, true],
    ['at the threshold', { sendingMs: 1000, bytesSent: t.fastBytesPerMs * 1000 }, true],
    ['a WAN connection: 8 MB/s, even with socket buffers filling at first', { sendingMs: 300, bytesSent: 4_000_000 }, false],
    ['a stalled probe', { sendingMs: 5000, bytesSent: 1 }, false],
    ['under a 32 MiB/s cap, a probe at the cap: the cap is the limit, waiting costs nothing', { sendingMs: 1000, bytesSent: 33_000_000, capBytesPerMs: 33_554 }, true],
    ['under a 200 MB/s cap, a probe at 8 MB/s: the pipe is slow, not the cap', { sendingMs: 1000, bytesSent: 8_000_000, capBytesPerMs: 200_000 }, false],
  ];
  for (const [name, p, want] of rows) assert.equal(keepWaitingForProbe(p, t), want, name);
});
