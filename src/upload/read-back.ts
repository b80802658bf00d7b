/**
 * Reading back an object's settings, to prove it carries what this run asks for before anything
 * on the server is taken as this run's: HEAD's headers, the tags and the ACL, compared in one place
 * (`compareSettings`). A read the server refuses or does not offer leaves that setting unknown,
 * and unknown is never taken as proof.
 */
import type { EngineContext } from './context.ts';
import { S3RequestError } from '../core/errors.ts';
import { compareSettings, hasExplicitSettings, objectSettings } from '../core/object-settings.ts';
import { classifyError } from '../core/retry.ts';
import type { HeadOutput } from '../s3/port.ts';

/** A refusal (no permission, not implemented) is "cannot be read"; a network failure after its retries is thrown. */
function unreadable(err: unknown): undefined {
  if (err instanceof S3RequestError && classifyError(err) === 'fatal') return undefined;
  throw err;
}

/**
 * Why the object at the run's key does not carry the requested settings, or undefined when it does
 * (or none beyond the defaults are asked: then nothing is read). `head`: the object as HEAD showed
 * it; without it (the object cannot be read) nothing can be proven.
 */
export async function settingsNotCarried(cx: EngineContext, head: HeadOutput | undefined, file: string | undefined): Promise<string | undefined> {
  const o = cx.o;
  if (!hasExplicitSettings(o)) return undefined;
  if (!head) return 'whether it carries the requested object settings cannot be checked (the object cannot be read)';
  const ref = { bucket: o.bucket, key: o.key };
  const s3 = cx.s3;
  const [tags, acl] = await Promise.all([
    s3.getObjectTagging ? cx.retry(() => s3.getObjectTagging!(ref, cx.req, cx.signal)).catch(unreadable) : undefined,
    s3.getObjectAcl ? cx.retry(() => s3.getObjectAcl!(ref, cx.req, cx.signal)).catch(unreadable) : undefined,
  ]);
  const r = compareSettings(objectSettings(o, file), { ...head, tags, acl });
  if (r.differs.length) return `it carries other object settings (${r.differs.join('; ')})`;
  if (r.unknown.length) return `whether it carries the requested object settings cannot be checked: ${r.unknown.join('; ')}`;
  return undefined;
}
