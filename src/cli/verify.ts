/** `partwise verify <file> s3://bucket/key`: a finished object checked against the file, without downloading it. */
import { ObjectUnverifiedError, ObjectVerificationError } from '../core/errors.ts';
import { verifyObject } from '../upload/inspect.ts';
import { fileUrl, port, requestOptions, UsageError, type Values } from './args.ts';
import { EXIT, nextStep, ticker, type Out } from './output.ts';
import { formatBytes } from './render.ts';

export async function cmdVerify(pos: string[], v: Values, argv: string[], out: Out): Promise<number> {
  if (pos.length !== 2) throw new UsageError('verify takes <file> s3://<bucket>/<key>');
  const { bucket, key } = fileUrl(pos[0]!, pos[1]);
  let hashed = 0;
  const stop = out.tty ? ticker(() => `Hashing ${pos[0]}: ${formatBytes(hashed)}`) : () => undefined;
  let r;
  try {
    r = await verifyObject(port(v), { file: pos[0]!, bucket, key, req: requestOptions(v), onBytes: (n) => (hashed += n) });
  } finally {
    stop();
  }
  if (out.json) out.line({ event: 'verify', bucket, key, ok: r.proven, ...r });
  else if (r.proven) out.say(`OK s3://${bucket}/${key} matches ${pos[0]}\n  verification: ${r.level}\n${r.checks.map((c) => `  ✔ ${c}`).join('\n')}`);
  if (r.mismatches.length) {
    const e = new ObjectVerificationError({ bucket, key }, r.mismatches);
    process.stderr.write(`partwise: ${e.code}: ${e.message} Next: ${nextStep(e, argv)}\n`);
    return EXIT.mismatch;
  }
  if (!r.proven) {
    const e = new ObjectUnverifiedError({ bucket, key }, r.why ?? 'nothing identifies the object');
    process.stderr.write(`partwise: ${e.code}: ${e.message}\n`);
    return EXIT.unverified;
  }
  return EXIT.ok;
}
