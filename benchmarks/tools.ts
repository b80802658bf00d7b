/**
 * The clients the benchmark runs, each as its users run it from a shell: the command line, its
 * environment, and how to read what a resumed run re-sent. Every tool gets the same part size and
 * concurrency where it has the setting.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Setting {
  partMiB: number;
  concurrency: number;
}

export interface Command {
  cmd: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

export interface Tool {
  name: string;
  /** what the tool checks on the way, in a few words */
  checks: string;
  /** honest caveats: settings the tool lacks */
  note?: string;
  upload(file: string, bucket: string, key: string, s: Setting): Command;
  /** the same command run again after a kill: only tools that resume have one */
  resume?(file: string, bucket: string, key: string, s: Setting): Command;
  /** bytes of the file a resumed run sent, read from its output */
  resentBytes?(stdout: string, stderr: string, size: number, s: Setting): number;
}

const root = new URL('..', import.meta.url).pathname;

export function makeTools(work: string, stateDir: string): Tool[] {
  const e = process.env;
  const endpoint = e.AWS_ENDPOINT_URL!;
  const host = new URL(endpoint).host;
  const base: NodeJS.ProcessEnv = { ...e };
  // rclone refuses to start while AWS_CA_BUNDLE is set (it tries to load it even over http).
  delete base.AWS_CA_BUNDLE;

  const partwise = (checksum: string): Pick<Tool, 'upload' | 'resume' | 'resentBytes'> => {
    const cmd = (file: string, bucket: string, key: string, s: Setting): Command => ({
      cmd: process.execPath,
      args: [join(root, 'dist/src/bin.js'), 'upload', file, `s3://${bucket}/${key}`, '--part-size', `${s.partMiB}MiB`, '--concurrency', String(s.concurrency), '--checksum', checksum, '--state-dir', stateDir, '--json', '--quiet'],
      env: base,
    });
    return {
      upload: cmd,
      resume: cmd,
      resentBytes: (stdout) => {
        const last = stdout.trim().split('\n').at(-1) ?? '';
        const r = JSON.parse(last) as { event: string; bytesSent: number };
        if (r.event !== 'complete') throw new Error(`partwise did not complete: ${last}`);
        return r.bytesSent;
      },
    };
  };

  const awsConfig = (s: Setting) => {
    const p = join(work, `aws-${s.partMiB}-${s.concurrency}.ini`);
    writeFileSync(p, `[default]\ns3 =\n  multipart_chunksize = ${s.partMiB}MB\n  multipart_threshold = ${s.partMiB}MB\n  max_concurrent_requests = ${s.concurrency}\n`);
    return p;
  };
  const s3cfg = join(work, 's3cfg');
  writeFileSync(s3cfg, `[default]\naccess_key = ${e.AWS_ACCESS_KEY_ID}\nsecret_key = ${e.AWS_SECRET_ACCESS_KEY}\nhost_base = ${host}\nhost_bucket = ${host}\nuse_https = False\nsignature_v2 = False\nbucket_location = ${e.AWS_REGION ?? 'us-east-1'}\n`, { mode: 0o600 });
  const s3cmd = (extra: string[]) => (file: string, bucket: string, key: string, s: Setting): Command => ({
    cmd: 's3cmd',
    args: ['-c', s3cfg, '--no-progress', ...extra, `--multipart-chunk-size-mb=${s.partMiB}`, 'put', file, `s3://${bucket}/${key}`],
    env: base,
  });
  const rcloneEnv: NodeJS.ProcessEnv = {
    ...base,
    RCLONE_CONFIG_PWB_TYPE: 's3',
    RCLONE_CONFIG_PWB_PROVIDER: 'Ceph',
    RCLONE_CONFIG_PWB_ENDPOINT: endpoint,
    RCLONE_CONFIG_PWB_ACCESS_KEY_ID: e.AWS_ACCESS_KEY_ID,
    RCLONE_CONFIG_PWB_SECRET_ACCESS_KEY: e.AWS_SECRET_ACCESS_KEY,
    RCLONE_CONFIG_PWB_REGION: e.AWS_REGION ?? 'us-east-1',
    RCLONE_CONFIG: '/dev/null',
  };
  const libStorage = (mode: string) => (file: string, bucket: string, key: string, s: Setting): Command => ({
    cmd: process.execPath,
    args: [join(root, 'benchmarks/lib-storage-one.mjs'), file, bucket, key, String(s.partMiB), String(s.concurrency), mode],
    env: base,
  });

  return [
    { name: 'partwise', checks: 'CRC32C per part (Content-MD5 on part 1 only, until the server echoes checksums), whole object proven by HEAD', ...partwise('crc32c') },
    { name: 'partwise --checksum none', checks: 'Content-MD5 per part, multipart ETag proven', ...partwise('none') },
    { name: 'lib-storage', checks: 'SDK default: CRC32 trailer per part (aws-chunked), nothing compared after', upload: libStorage('default') },
    { name: 'lib-storage WHEN_REQUIRED', checks: 'nothing', upload: libStorage('when-required') },
    {
      name: 'aws-cli',
      checks: 'Content-MD5 per part',
      upload: (file, bucket, key, s) => ({ cmd: '/usr/bin/aws', args: ['--endpoint-url', endpoint, 's3', 'cp', '--only-show-errors', file, `s3://${bucket}/${key}`], env: { ...base, AWS_CONFIG_FILE: awsConfig(s) } }),
    },
    {
      name: 'rclone',
      checks: 'MD5 of the whole file first (stored as metadata), Content-MD5 per part',
      upload: (file, bucket, key, s) => ({
        cmd: 'rclone',
        args: ['copyto', '-I', '-q', '--s3-chunk-size', `${s.partMiB}M`, '--s3-upload-concurrency', String(s.concurrency), '--s3-upload-cutoff', `${s.partMiB}M`, file, `pwb:${bucket}/${key}`],
        env: rcloneEnv,
      }),
    },
    {
      name: 's3cmd',
      checks: 'MD5 of the whole file first, Content-MD5 per part',
      note: 'no concurrency setting: one part at a time',
      upload: s3cmd([]),
      resume: s3cmd(['--continue-put', '-v']),
      // s3cmd names each part it skips; the rest of the file was sent.
      resentBytes: (_out, err, size, s) => {
        const skipped = (err.match(/size and md5sum match for .* part \d+, skipping/g) ?? []).length;
        return Math.max(0, size - skipped * s.partMiB * 1024 * 1024);
      },
    },
  ];
}
