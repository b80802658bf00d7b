/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and a .heapsnapshot and sums them into the few figures
 * RESULTS.md keeps: where the CPU went (self time by module group and by function) and what the
 * heap held (self size by constructor).
 */
import { readFileSync } from 'node:fs';

interface CpuNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: CpuNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface CpuSummary {
  totalMs: number;
  byGroup: [string, number][];
  byFunction: [string, number][];
}

/** Which part of the process a frame belongs to: the groups the lean-path work is about. */
export function groupOf(url: string, fn: string): string {
  if (fn === '(idle)') return 'idle (waiting on network or disk)';
  if (fn === '(garbage collector)') return 'garbage collector';
  if (fn === '(program)') return 'V8/native (program)';
  if (/@aws-sdk|@smithy|@aws-crypto/.test(url)) return 'AWS SDK';
  if (/partwise|\/dist\/src\//.test(url) && !url.includes('node_modules')) return 'partwise';
  if (url.includes('node_modules')) return 'other packages';
  if (url.startsWith('node:') || url === '') return 'Node core (http, streams, fs, module loading)';
  return 'other';
}

export function summarizeCpu(path: string, top = 8): CpuSummary {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  const groups = new Map<string, number>();
  const fns = new Map<string, number>();
  for (const [id, ms] of self) {
    const n = byId.get(id)!;
    const { functionName, url, lineNumber } = n.callFrame;
    const g = groupOf(url, functionName);
    groups.set(g, (groups.get(g) ?? 0) + ms);
    const short = url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/(dist|src)\//, '$1/');
    const name = `${functionName || '(anonymous)'}${short ? ` ${short}:${lineNumber + 1}` : ''}`;
    fns.set(name, (fns.get(name) ?? 0) + ms);
  }
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return { totalMs: (p.endTime - p.startTime) / 1000, byGroup: sorted(groups), byFunction: sorted(fns).filter(([n]) => !n.startsWith('(idle)')).slice(0, top) };
}

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

/** Self size by node name (constructor or native kind), largest first. */
export function summarizeHeap(path: string, top = 8): { totalMiB: number; byName: [string, number][] } {
  const h = JSON.parse(readFileSync(path, 'utf8')) as HeapSnapshot;
  const f = h.snapshot.meta.node_fields;
  const stride = f.length;
  const iType = f.indexOf('type');
  const iName = f.indexOf('name');
  const iSize = f.indexOf('self_size');
  const types = h.snapshot.meta.node_types[0];
  const sizes = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < h.nodes.length; i += stride) {
    const type = types[h.nodes[i + iType]!]!;
    const name = type === 'string' || type === 'concatenated string' || type === 'sliced string' ? '(strings)' : type === 'code' ? '(compiled code)' : h.strings[h.nodes[i + iName]!] || `(unnamed ${type})`;
    const size = h.nodes[i + iSize]!;
    total += size;
    sizes.set(name, (sizes.get(name) ?? 0) + size);
  }
  return { totalMiB: total / 2 ** 20, byName: [...sizes].sort((a, b) => b[1] - a[1]).slice(0, top).map(([n, s]) => [n, s / 2 ** 20]) };
}
