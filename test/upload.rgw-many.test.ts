/**
 * Many uploads at once, the backup-tool case (issue 9): 20 files through the library sharing one
 * concurrency budget, through a fault proxy resetting 5% of the connections (per MiB carried):
 * every object byte-identical, the budget never exceeded, peak memory within budget × part size +
 * 100 MiB. Then the same with a kill: all 20 interrupted mid-way by SIGKILL, rerun, all complete.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import { MiB } from '../src/index.ts';
import { FaultProxy, mulberry32 } from './helpers/fault-proxy.ts';
import { getObjectBytes, loadS3Env, makeBucket, sha256, tempDir } from './helpers/s3.ts';

const FILES = 20;
const BUDGET = 6;
const PART = 5 * MiB;

interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  lines: string[];
}

function runChild(args: object, killAfterParts?: number): Promise<ChildRun> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [new URL('./fixtures/many-child.mjs', import.meta.url).pathname], { env: { ...process.env, PARTWISE_CHILD_ARGS: JSON.stringify(args) }, stdio: ['ignore', 'pipe', 'inherit'] });
    const lines: string[] = [];
    createInterface({ input: c.stdout! }).on('line', (l) => {
      lines.push(l);
      if (killAfterParts !== undefined && l === `part-done ${killAfterParts}`) c.kill('SIGKILL');
    });
    c.on('exit', (code, signal) => resolve({ code, signal, lines }));
  });
}

describe('20 uploads sharing one budget, through a fault proxy to the real server', () => {
  let bucket: string;
  let proxy: FaultProxy;
  before(async () => {
    loadS3Env();
    bucket = await makeBucket('pw-many');
    proxy = await FaultProxy.start(process.env.AWS_ENDPOINT_URL!, { seed: 9, resetPerMiB: 0.05 });
  });
  after(() => proxy.close());

  async function files(tag: string) {
    const dir = await tempDir();
    const random = mulberry32(42);
    const out: { path: string; key: string; sha: string }[] = [];
    for (let i = 0; i < FILES; i++) {
      const bytes = randomBytes(Math.floor((4 + random() * 8) * MiB)); // 4–12 MiB: 1 to 3 parts
      const path = join(dir, `f${i}.bin`);
      await writeFile(path, bytes);
      out.push({ path, key: `many/${tag}/f${i}.bin`, sha: sha256(bytes) });
    }
    return { dir, files: out };
  }

  async function assertIdentical(fs: { key: string; sha: string }[]) {
    for (const f of fs) assert.equal(sha256(await getObjectBytes(bucket, f.key)), f.sha, `${f.key} is byte-identical`);
  }

  test('all 20 byte-identical at a 5% reset rate; the budget never exceeded; peak RSS within budget × part size + 100 MiB', async () => {
    const { dir, files: fs } = await files('faults');
    const resetsBefore = proxy.resets;
    const r = await runChild({ files: fs.map(({ path, key }) => ({ path, key })), bucket, endpoint: proxy.endpoint, stateDir: dir, budget: BUDGET, partSize: PART });
    assert.equal(r.code, 0, r.lines.filter((l) => l.startsWith('failed')).join('\n'));
    assert.ok(proxy.resets - resetsBefore >= 1, 'the proxy did reset connections');
    const maxInFlight = Number(r.lines.find((l) => l.startsWith('max-in-flight '))!.split(' ')[1]);
    assert.ok(maxInFlight <= BUDGET, `${maxInFlight} UploadPart calls in flight at once, budget ${BUDGET}`);
    assert.ok(maxInFlight >= 2, 'the uploads did run concurrently');
    const rss = Number(r.lines.find((l) => l.startsWith('peak-rss '))!.split(' ')[1]);
    const bound = BUDGET * PART + 100 * MiB;
    assert.ok(rss <= bound, `peak RSS ${(rss / MiB).toFixed(0)} MiB > ${(bound / MiB).toFixed(0)} MiB`);
    assert.equal(r.lines.filter((l) => l.startsWith('ok ')).length, FILES);
    await assertIdentical(fs);
  });

  test('all 20 killed mid-way (SIGKILL), then rerun: all complete, byte-identical', async () => {
    const { dir, files: fs } = await files('killed');
    const args = { files: fs.map(({ path, key }) => ({ path, key })), bucket, endpoint: proxy.endpoint, stateDir: dir, budget: BUDGET, partSize: PART };
    const first = await runChild(args, 15);
    assert.equal(first.signal, 'SIGKILL');
    const again = await runChild(args);
    assert.equal(again.code, 0, again.lines.filter((l) => l.startsWith('failed')).join('\n'));
    assert.equal(again.lines.filter((l) => l.startsWith('ok ')).length, FILES);
    await assertIdentical(fs);
  });
});
