/**
 * npm run interop [-- NAME...]: the conformance matrix. Starts every S3 server the project can run
 * here (the test server Ceph 20, and scripts/interop-servers.sh's Ceph 16, Swift + s3api, moto,
 * s3rver, fauxqs), plus the S3 emulator in the documented profiles of servers that cannot run here
 * (Cloudflare R2, Backblaze B2, GCS's XML API, MinIO, Swift's limits), runs the same scenarios
 * against each, prints the table and writes it to docs/interop.md. Exit 1 when any cell is FAIL.
 * Servers it started are stopped at the end; ones already running are left as they were.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { S3Emulator, type EmulatorOptions } from '../emulator/server.ts';
import { COLUMNS, readEnvFile, Scenarios, type Cell, type Column, type Target } from './scenarios.ts';

const root = new URL('../../', import.meta.url).pathname;

interface Real {
  kind: 'real';
  name: string;
  server: string;
  /** how it is started: the test server's script, or interop-servers.sh NAME */
  script: 's3-server' | 'interop';
  envFile: string;
  extra?: Partial<Target>;
}
interface Emulated {
  kind: 'emulated';
  name: string;
  server: string;
  options: EmulatorOptions;
  extra?: Partial<Target>;
}

const SERVERS: (Real | Emulated)[] = [
  { kind: 'real', name: 'rgw20', server: 'Ceph RGW 20.2 (sid; the test server)', script: 's3-server', envFile: '.local-s3/env' },
  { kind: 'real', name: 'ceph16', server: 'Ceph RGW 16.2.15 (bookworm)', script: 'interop', envFile: '.local-interop/ceph16/env' },
  { kind: 'real', name: 'swift', server: 'OpenStack Swift 2.38 + s3api (sid)', script: 'interop', envFile: '.local-interop/swift/env', extra: { maxParts: 1000 } },
  { kind: 'real', name: 'moto', server: 'moto 5.2 (sid, with crc32c)', script: 'interop', envFile: '.local-interop/moto/env' },
  { kind: 'real', name: 's3rver', server: 's3rver 3.7.1 (npm)', script: 'interop', envFile: '.local-interop/s3rver/env' },
  { kind: 'real', name: 'fauxqs', server: 'fauxqs 2.4.1 (npm, Node 22)', script: 'interop', envFile: '.local-interop/fauxqs/env' },
  // Documented behaviour of servers that cannot run here (sources: shared reference servers.md, docs/servers-and-limits.md).
  { kind: 'emulated', name: 'r2', server: 'Cloudflare R2 (emulated: CRC32/CRC32C/SHA only COMPOSITE, CRC64NVME only FULL_OBJECT)', options: { checksumTypes: { CRC32: 'COMPOSITE', CRC32C: 'COMPOSITE', SHA1: 'COMPOSITE', SHA256: 'COMPOSITE', CRC64NVME: 'FULL_OBJECT' } } },
  { kind: 'emulated', name: 'b2', server: 'Backblaze B2 (emulated: every x-amz-checksum-* header refused)', options: { checksums: 'rejected' }, extra: { noChecksumHeaders: true } },
  { kind: 'emulated', name: 'gcs', server: 'GCS XML API (emulated: no x-amz-checksum, opaque multipart ETag)', options: { checksums: 'ignored', multipartEtag: 'opaque', headChecksums: false } },
  { kind: 'emulated', name: 'minio', server: 'MinIO (emulated: a repeated Complete answers NoSuchUpload)', options: { repeatCompleteSucceeds: false } },
  { kind: 'emulated', name: 'swift-limits', server: 'Swift s3api limits (emulated: 1,000 parts, checksums checked not stored)', options: { maxParts: 1000, checksums: 'ignored', minPartSize: 1024 }, extra: { maxParts: 1000, smallParts: true } },
];

const wanted = process.argv.slice(2);
const chosen = wanted.length ? SERVERS.filter((s) => wanted.includes(s.name)) : SERVERS;
if (wanted.length && chosen.length !== wanted.length) {
  console.error(`unknown server; choose from: ${SERVERS.map((s) => s.name).join(' ')}`);
  process.exit(2);
}

/** The server of this env file answers now (started earlier, by this run or another): it is left running. */
const answers = (envFile: string): boolean => {
  if (!existsSync(root + envFile)) return false;
  try {
    const ep = /AWS_ENDPOINT_URL=(\S+)/.exec(readFileSync(root + envFile, 'utf8'))?.[1];
    execFileSync('curl', ['-s', '-o', '/dev/null', '--max-time', '2', ep!]);
    return true;
  } catch {
    return false;
  }
};

function script(s: Real, verb: 'start' | 'stop'): void {
  const args = s.script === 's3-server' ? ['scripts/s3-server.sh', verb] : ['scripts/interop-servers.sh', verb, s.name];
  execFileSync('bash', args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
}

const rows: { s: Real | Emulated; cells: Record<Column, Cell> }[] = [];
const started: Real[] = [];
try {
  for (const s of chosen) {
    process.stderr.write(`${s.name}: ${s.server}\n`);
    if (s.kind === 'real') {
      if (!answers(s.envFile)) {
        script(s, 'start');
        started.push(s);
      }
      const env = await readEnvFile(root + s.envFile);
      rows.push({ s, cells: await new Scenarios({ name: s.name, env, ...s.extra }).all() });
    } else {
      const emu = await S3Emulator.start(s.options);
      try {
        const env = { AWS_ENDPOINT_URL: emu.endpoint, AWS_ACCESS_KEY_ID: 'emulator', AWS_SECRET_ACCESS_KEY: 'emulator-secret', AWS_REGION: 'us-east-1' };
        rows.push({ s, cells: await new Scenarios({ name: s.name, env, emulator: emu, ...s.extra }).all() });
      } finally {
        await emu.close();
      }
    }
  }
} finally {
  for (const s of started) script(s, 'stop');
}

const mark = (c: Cell) => ({ pass: '✅ pass', unverified: '⚠️ unverified', refused: '⛔ refused', 'n/a': '–', FAIL: '❌ FAIL' })[c.verdict];
const esc = (t: string) => t.replace(/\|/g, '\\|').replace(/\n/g, ' ');
let md = `# Conformance matrix\n\nWritten by \`npm run interop\` on ${new Date().toISOString().slice(0, 10)}. Each cell: the verdict, then what partwise reported (the evidence level for a pass, its own words otherwise). A pass is exit 0 **and** an independent download byte-identical to the file; FAIL is exit 0 for other bytes, or a "do not trust it" (exit 3) for identical ones.\n\n`;
md += `| server | ${COLUMNS.join(' | ')} |\n|---|${COLUMNS.map(() => '---').join('|')}|\n`;
for (const { s, cells } of rows) md += `| **${s.name}** | ${COLUMNS.map((c) => mark(cells[c])).join(' | ')} |\n`;
md += `\n## What partwise said, cell by cell\n`;
for (const { s, cells } of rows) {
  md += `\n### ${s.name}: ${s.server}\n\n`;
  for (const c of COLUMNS) md += `- **${c}**: ${mark(cells[c])}: ${esc(cells[c].words)}\n`;
}
if (!wanted.length) await writeFile(root + 'docs/interop.md', md);
process.stdout.write(md);
const failed = rows.flatMap(({ s, cells }) => COLUMNS.filter((c) => cells[c].verdict === 'FAIL').map((c) => `${s.name} · ${c}`));
if (failed.length) {
  console.error(`\nFAIL: ${failed.join('; ')}`);
  process.exit(1);
}
