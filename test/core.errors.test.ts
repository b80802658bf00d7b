/**
 * An unexpected failure says what a rerun can do: continue an upload that exists (its journal is
 * kept), or, with nothing begun, only try again. It never promises a resume there is nothing to
 * resume from.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CompleteFailedError, JournalCorruptError, JournalMismatchError, ObjectVerificationError, RemotePartsInconsistentError, SettingsDifferError, SourceChangedError, StreamFailedError, UnexpectedError, UnverifiableError } from '../src/core/errors.ts';
import { toS3RequestError } from '../src/s3/adapter.ts';

test('UNEXPECTED: resumable, "the journal is kept", only when an upload was begun', () => {
  const begun = new UnexpectedError(new Error('boom'), { bucket: 'b', key: 'k', uploadId: 'u1', journalPath: '/s/j.json' });
  assert.equal(begun.resumable, true);
  assert.match(begun.message, /^Unexpected failure: boom\. The journal is kept; run the same upload again to resume\.$/);
  for (const ctx of [{}, { bucket: 'b', key: 'k' }, { bucket: 'b', key: 'k', journalPath: '/s/j.json' }]) {
    const none = new UnexpectedError(new Error('Invalid thing'), ctx);
    assert.equal(none.resumable, false, JSON.stringify(ctx));
    assert.doesNotMatch(none.message, /journal|resume/i, JSON.stringify(ctx));
    assert.match(none.message, /^Unexpected failure: Invalid thing\. Nothing was begun on the server; run the same command again, and if it fails the same way, report it with this message\.$/);
  }
});

test('credentials: "none found" is told to set some; one configured but failing (an expired SSO token) is told to fix it, not to set what is set', () => {
  const none = toS3RequestError('HeadObject', Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }));
  assert.equal(none.s3Code, 'NoCredentials');
  assert.match(none.message, /no credentials were found: set AWS_ACCESS_KEY_ID/);
  const sso = toS3RequestError('HeadObject', Object.assign(new Error("The SSO session token associated with profile=sso was not found or is invalid. To refresh this SSO session run 'aws sso login'"), { name: 'CredentialsProviderError' }));
  assert.equal(sso.s3Code, 'CredentialsProviderError');
  assert.match(sso.message, /configured credentials could not be loaded .*aws sso login/);
  assert.doesNotMatch(sso.message, /no credentials were found|server refused/);
});

test('every error that says to start over names the option both ways: fresh: true (library) and --fresh (CLI)', () => {
  const cx = { bucket: 'b', key: 'k', uploadId: 'u' };
  const offers = [
    new SourceChangedError('/f', ['size 1 → 2'], cx),
    new JournalCorruptError('/j.json', 'bad JSON'),
    new JournalMismatchError('/j.json', 'another key', cx),
    new SettingsDifferError(cx, ['tags']),
    new RemotePartsInconsistentError('The server holds part 9.', cx),
    new CompleteFailedError(cx, new Error('x'), false),
    new ObjectVerificationError(cx, ['size']),
    new UnverifiableError(cx, 'no checksum and SSE-KMS'),
  ];
  for (const e of offers) {
    assert.match(e.message, /fresh: true/, `${e.code}: ${e.message}`);
    assert.match(e.message, /--fresh/, `${e.code}: ${e.message}`);
    assert.doesNotMatch(e.message, /the fresh option(?! \(fresh: true)/, `${e.code}: ${e.message}`);
  }
});

test('a stream cannot start over with --fresh (the CLI refuses it there): its failure offers the pipeline again instead', () => {
  const cx = { bucket: 'b', key: 'k', uploadId: 'u' };
  const e = new StreamFailedError(cx, 'OBJECT_VERIFICATION_FAILED', new ObjectVerificationError(cx, ['size']));
  assert.doesNotMatch(e.message, /fresh/, e.message);
  assert.match(e.message, /run the whole pipeline again/);
});

test('checksumRefusal: a server refusing a checksum (or its type) is told from bytes that did not match it, or a request that lacked one', async () => {
  const { checksumRefusal } = await import('../src/core/s3-advice.ts');
  const refusals: [string, number, string, string][] = [
    ['InvalidArgument', 400, 'CreateMultipartUpload', "Unsupported header 'x-amz-checksum-algorithm' received for this API call."], // B2
    ['NotImplemented', 501, 'UploadPart', 'x-amz-checksum-crc32'], // R2, January 2025
    ['NotImplemented', 501, 'PutObject', 'A header you provided implies functionality that is not implemented: x-amz-checksum-crc64nvme'], // Swift
    ['InvalidRequest', 400, 'CreateMultipartUpload', 'The FULL_OBJECT checksum type is not supported for the crc32c checksum algorithm; use COMPOSITE.'],
  ];
  for (const [code, status, op, message] of refusals) assert.ok(checksumRefusal(code, status, op, message), `${code}: ${message}`);
  const notRefusals: [string, number, string, string][] = [
    ['XAmzContentChecksumMismatch', 400, 'UploadPart', "The provided 'x-amz-checksum' header does not match what was computed."], // MinIO: damaged bytes
    ['BadDigest', 400, 'PutObject', 'The CRC32C you specified did not match the calculated checksum.'],
    ['InvalidRequest', 400, 'CompleteMultipartUpload', 'The upload was created using a crc32 checksum. The complete request must include the checksum for each part. It was missing for part 1 in the request.'], // AWS
    ['InvalidPart', 400, 'CompleteMultipartUpload', 'The checksum of part 2 does not match.'],
    ['InvalidRequest', 400, 'UploadPart', 'Value for x-amz-checksum-crc32c header is invalid.'],
    ['InvalidArgument', 400, 'HeadObject', "Unsupported header 'x-amz-checksum-mode' received for this API call."], // not a request that carries one
  ];
  for (const [code, status, op, message] of notRefusals) assert.equal(checksumRefusal(code, status, op, message), undefined, `${code}: ${message}`);
});
