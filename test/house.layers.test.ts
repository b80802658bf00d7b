/**
 * The house: src/ is in layer folders whose imports point only down
 * (cli → jobs → upload → local, s3 → core), with no circle anywhere, and only the S3 adapter
 * imports the SDK. Read from the source by the TypeScript parser, type-only, side-effect and dynamic
 * imports and requires included: a type is a tie too.
 * The same check anyone can run: `node --import tsx --test test/house.layers.test.ts`.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';

const SRC = new URL('../src/', import.meta.url).pathname;

/** Lower ranks are lower floors; a file may import its own folder and folders of a lower rank only. */
const RANK: Record<string, number> = { core: 0, s3: 1, local: 1, upload: 2, jobs: 3, cli: 4, '.': 5 };
/** Each folder's main file, which opens with the sentence that says what lives there and what it may import. */
const MAIN: Record<string, string> = { core: 'core/planner.ts', s3: 's3/port.ts', local: 'local/journal.ts', upload: 'upload/engine.ts', jobs: 'jobs/folder-job.ts', cli: 'cli/main.ts' };

function files(dir = SRC): string[] {
  // .mts and .cts compile too; a declaration file ties nothing at run time.
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : /\.[cm]?ts$/.test(e.name) && !e.name.endsWith('.d.ts') ? [relative(SRC, join(dir, e.name))] : []));
}

/**
 * Every tie a file has, read by the TypeScript parser (not a pattern): import and export
 * declarations (type-only and side-effect ones too), `import x = require()`, `import()` and
 * `require()` calls (a `createRequire` one included; a name given as a const string in the file is
 * followed), `typeof import('x')` types, `new URL('./x', import.meta.url)`. A specifier that cannot
 * be read (a computed import or require) is returned in `unreadable`, and fails the layer tests.
 * `sdkStrings` counts every string naming an @aws-sdk/ package, however it is used.
 */
export function tiesOf(text: string, fileName = 'x.ts'): { specs: string[]; unreadable: string[]; sdkStrings: number } {
  const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const consts = new Map<string, string>();
  /** names bound to createRequire(...): calls to them are requires */
  const requires = new Set(['require']);
  const specs: string[] = [];
  const unreadable: string[] = [];
  let sdkStrings = 0;
  const where = (n: ts.Node) => `${fileName}:${sf.getLineAndCharacterOfPosition(n.getStart()).line + 1}`;
  const literal = (n: ts.Node | undefined): string | undefined => {
    if (!n) return undefined;
    if (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) return n.text;
    if (ts.isIdentifier(n)) return consts.get(n.text);
    return undefined;
  };
  const take = (arg: ts.Node | undefined, at: ts.Node) => {
    const v = literal(arg);
    if (v === undefined) unreadable.push(`${where(at)} ${at.getText().slice(0, 60)}`);
    else specs.push(v);
  };
  const collectConsts = (n: ts.Node): void => {
    if (ts.isVariableDeclaration(n) && ts.isIdentifier(n.name) && n.initializer && (ts.isStringLiteral(n.initializer) || ts.isNoSubstitutionTemplateLiteral(n.initializer))) consts.set(n.name.text, n.initializer.text);
    if (ts.isVariableDeclaration(n) && ts.isIdentifier(n.name) && n.initializer && ts.isCallExpression(n.initializer) && ts.isIdentifier(n.initializer.expression) && n.initializer.expression.text === 'createRequire') requires.add(n.name.text);
    ts.forEachChild(n, collectConsts);
  };
  collectConsts(sf);
  const visit = (n: ts.Node): void => {
    if ((ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n) || ts.isTemplateHead(n) || ts.isTemplateMiddle(n) || ts.isTemplateTail(n)) && n.text.includes('@aws-sdk/')) sdkStrings++;
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier) take(n.moduleSpecifier, n);
    else if (ts.isImportEqualsDeclaration(n) && ts.isExternalModuleReference(n.moduleReference)) take(n.moduleReference.expression, n);
    else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument)) take(n.argument.literal, n);
    else if (ts.isCallExpression(n)) {
      const callee = n.expression;
      const isImport = callee.kind === ts.SyntaxKind.ImportKeyword;
      // require(x), or createRequire(url)(x) called at once
      const isRequire = (ts.isIdentifier(callee) && requires.has(callee.text)) || (ts.isCallExpression(callee) && ts.isIdentifier(callee.expression) && callee.expression.text === 'createRequire');
      // import.meta.resolve(x) names a module as surely as import(x)
      const isResolve = callee.getText() === 'import.meta.resolve';
      if (isImport || isRequire || isResolve) take(n.arguments[0], n);
    } else if (ts.isNewExpression(n) && ts.isIdentifier(n.expression) && n.expression.text === 'URL' && n.arguments?.length === 2 && n.arguments[1]!.getText() === 'import.meta.url') {
      const v = literal(n.arguments[0]);
      if (v === undefined) unreadable.push(`${where(n)} ${n.getText().slice(0, 60)}`);
      // a module (a worker's script); a data file beside the code (package.json) is no tie
      else if (v.startsWith('.') && /\.[cm]?[jt]s$/.test(v)) specs.push(v);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return { specs, unreadable, sdkStrings };
}

function importsOf(file: string): { local: string[]; packages: string[]; unreadable: string[]; sdkStrings: number } {
  const t = tiesOf(readFileSync(join(SRC, file), 'utf8'), file);
  const local: string[] = [];
  const packages: string[] = [];
  for (const spec of t.specs) {
    if (spec.startsWith('.')) local.push(relative(SRC, resolve(dirname(join(SRC, file)), spec)).replace(/\.js$/, '.ts'));
    else packages.push(spec);
  }
  return { local, packages, unreadable: t.unreadable, sdkStrings: t.sdkStrings };
}

const folderOf = (f: string) => (f.includes('/') ? f.slice(0, f.indexOf('/')) : '.');

/**
 * What core/ may import besides core/: the libraries that hash bytes (and node:module, to load the
 * native one), node:path for string work, p-limit's types. Nothing that reads a file, opens a
 * socket, starts a thread or a process: core makes no I/O, and a test can run it with no server.
 */
const CORE_PACKAGES = new Set(['node:crypto', 'node:zlib', 'node:module', '@node-rs/crc32', 'hash-wasm', '@aws-crypto/crc32c', '@aws-crypto/sha256-js', '@aws-crypto/crc32', 'node:path', 'p-limit']);

test('layers: core/ imports no package that does I/O (only the hashing libraries, node:path and p-limit\'s types)', () => {
  const wrong = files()
    .filter((f) => folderOf(f) === 'core')
    .flatMap((f) => importsOf(f).packages.filter((p) => !CORE_PACKAGES.has(p)).map((p) => `${f} → ${p}`));
  assert.deepEqual(wrong, []);
});

test('layers: no file imports partwise by its own package name or a # subpath (a tie to everything that no folder rule could see)', () => {
  const self = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).name as string;
  const wrong = files().flatMap((f) => importsOf(f).packages.filter((p) => p === self || p.startsWith(`${self}/`) || p.startsWith('#')).map((p) => `${f} → ${p}`));
  assert.deepEqual(wrong, []);
});

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

test('layers: only the S3 adapter (s3/adapter.ts, and s3/client.ts, which loads the SDK and builds its client) imports the AWS SDK, or names it in any string', () => {
  const users = files().filter((f) => importsOf(f).packages.some((p) => p.startsWith('@aws-sdk/')));
  assert.deepEqual(users.sort(), ['s3/adapter.ts', 's3/client.ts']);
  const naming = files().filter((f) => importsOf(f).sdkStrings > 0 && !f.startsWith('s3/'));
  assert.deepEqual(naming, [], 'a string naming an @aws-sdk/ package outside the S3 layer');
});

test('layers: every import specifier can be read (no computed import or require hides a tie)', () => {
  assert.deepEqual(files().flatMap((f) => importsOf(f).unreadable), []);
});

test('layers: the tie reader finds every form a tie can take (so the layer tests can fail)', () => {
  const t = tiesOf(
    [
      "import './side-effect.ts';",
      "import type { A } from '../upload/a.ts';",
      "export * from '../jobs/b.ts';",
      "import c = require('../cli/c.ts');",
      "const m = await import(`../upload/d.ts`);",
      "const SDK = '@aws-sdk/client-s3';",
      "const req = createRequire(import.meta.url);",
      'const s = req(SDK);',
      'const r = require(SDK);',
      "const direct = createRequire(import.meta.url)('@aws-sdk/lib-storage');",
      "let w: typeof import('hash-wasm');",
      "const u = new URL('./worker.js', import.meta.url);",
      'const x = await import(someName);',
      "const y = import.meta.resolve('../upload/e.ts');",
      'const z = new URL(`../upload/${n}.ts`, import.meta.url);',
    ].join('\n'),
  );
  assert.deepEqual(t.specs.sort(), ['../cli/c.ts', '../jobs/b.ts', '../upload/a.ts', '../upload/d.ts', '../upload/e.ts', './side-effect.ts', './worker.js', '@aws-sdk/client-s3', '@aws-sdk/client-s3', '@aws-sdk/lib-storage', 'hash-wasm'].sort());
  assert.deepEqual(t.unreadable, ['x.ts:13 import(someName)', 'x.ts:15 new URL(`../upload/${n}.ts`, import.meta.url)']);
  assert.equal(t.sdkStrings, 2);
});

test('layers: each folder\'s main file opens by saying what lives there and what it may import', () => {
  for (const [folder, main] of Object.entries(MAIN)) {
    const head = readFileSync(join(SRC, main), 'utf8').slice(0, 600);
    assert.match(head, /^\/\*\*\n \* Layer /, `${main} opens with its layer sentence`);
    assert.ok(head.includes(`${folder}/`), `${main} names its folder`);
  }
});
