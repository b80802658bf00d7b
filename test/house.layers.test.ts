/**
 * The house: src/ is in layer folders whose imports point only down
 * (cli → jobs → upload → local, s3 → core), with no circle anywhere, and only the S3 adapter
 * imports the SDK. Read from the source itself, type-only imports included: a type is a tie too.
 * The same check anyone can run: `node --import tsx --test test/house.layers.test.ts`.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';

const SRC = new URL('../src/', import.meta.url).pathname;

/** Lower ranks are lower floors; a file may import its own folder and folders of a lower rank only. */
const RANK: Record<string, number> = { core: 0, s3: 1, local: 1, upload: 2, jobs: 3, cli: 4, '.': 5 };
/** Each folder's main file, which opens with the sentence that says what lives there and what it may import. */
const MAIN: Record<string, string> = { core: 'core/planner.ts', s3: 's3/port.ts', local: 'local/journal.ts', upload: 'upload/engine.ts', jobs: 'jobs/folder-job.ts', cli: 'cli/main.ts' };

function files(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [relative(SRC, join(dir, e.name))] : []));
}

const IMPORT = /(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|new URL\(\s*['"](\.[^'"]+)['"]/g;

function importsOf(file: string): { local: string[]; packages: string[] } {
  const text = readFileSync(join(SRC, file), 'utf8');
  const local: string[] = [];
  const packages: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3]!;
    if (spec.startsWith('.')) local.push(relative(SRC, resolve(dirname(join(SRC, file)), spec)).replace(/\.js$/, '.ts'));
    else packages.push(spec);
  }
  return { local, packages };
}

const folderOf = (f: string) => (f.includes('/') ? f.slice(0, f.indexOf('/')) : '.');

test('layers: every source file lives in a layer folder (only index.ts and bin.ts at the top)', () => {
  for (const f of files()) {
    assert.ok(folderOf(f) in RANK, `${f} is in no layer`);
    if (folderOf(f) === '.') assert.ok(['index.ts', 'bin.ts'].includes(f), `${f} belongs in a layer folder`);
  }
});

test('layers: every import points down (or stays in its folder); s3 and local do not lean on each other', () => {
  const wrong: string[] = [];
  for (const f of files()) {
    for (const t of importsOf(f).local) {
      const [from, to] = [folderOf(f), folderOf(t)];
      if (from !== to && !(RANK[to]! < RANK[from]!)) wrong.push(`${f} → ${t}`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('layers: no import circle anywhere (type-only ties included)', () => {
  const graph = new Map(files().map((f) => [f, importsOf(f).local.filter((t) => t !== f)]));
  // Tarjan's strongly connected components: any of more than one file is a circle.
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const circles: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1) circles.push(c.sort());
    }
  };
  for (const f of graph.keys()) if (!idx.has(f)) visit(f);
  assert.deepEqual(circles, []);
});

test('layers: only the S3 adapter (s3/adapter.ts, and s3/client.ts, which loads the SDK and builds its client) imports the AWS SDK', () => {
  const users = files().filter((f) => importsOf(f).packages.some((p) => p.startsWith('@aws-sdk/')));
  assert.deepEqual(users.sort(), ['s3/adapter.ts', 's3/client.ts']);
});

test('layers: each folder\'s main file opens by saying what lives there and what it may import', () => {
  for (const [folder, main] of Object.entries(MAIN)) {
    const head = readFileSync(join(SRC, main), 'utf8').slice(0, 600);
    assert.match(head, /^\/\*\*\n \* Layer /, `${main} opens with its layer sentence`);
    assert.ok(head.includes(`${folder}/`), `${main} names its folder`);
  }
});
