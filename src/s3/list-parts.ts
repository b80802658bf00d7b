import type { RemotePart } from '../core/reconcile.ts';
import type { RequestOptions, S3Port, UploadRef } from './port.ts';

export interface ListAllResult {
  parts: RemotePart[];
  pages: number;
  /**
   * true when the server claimed more pages but its marker stopped advancing; the parts not seen
   * are simply treated as missing and re-uploaded (an upload of an existing part number replaces it).
   */
  stoppedEarly: boolean;
  /** what the first page said of the upload */
  checksumAlgorithm?: string;
  checksumType?: string;
  abortDate?: Date;
}

/** S3's page size cap for ListParts. */
export const LIST_PARTS_PAGE = 1000;

/**
 * Every part of an upload, following IsTruncated / NextPartNumberMarker. Guards against servers
 * whose marker does not advance (RGW answers MaxParts=0 with IsTruncated=true for ever): the next
 * marker is never lower than the highest part number seen, and a page that moves nothing ends it.
 */
export async function listAllParts(
  call: (marker: number | undefined) => ReturnType<S3Port['listParts']>,
  range?: { first: number; last: number },
): Promise<ListAllResult> {
  const byNumber = new Map<number, RemotePart>();
  // A range (a shared upload's worker): from just before its first part, until a page reaches its last.
  let marker: number | undefined = range && range.first > 1 ? range.first - 1 : undefined;
  let pages = 0;
  const about: Pick<ListAllResult, 'checksumAlgorithm' | 'checksumType' | 'abortDate'> = {};
  const result = (stoppedEarly: boolean): ListAllResult => {
    const parts = sorted(byNumber);
    return { parts: range ? parts.filter((p) => p.partNumber >= range.first && p.partNumber <= range.last) : parts, pages, stoppedEarly, ...about };
  };
  for (;;) {
    const page = await call(marker);
    pages++;
    if (pages === 1) {
      if (page.checksumAlgorithm) about.checksumAlgorithm = page.checksumAlgorithm;
      if (page.checksumType) about.checksumType = page.checksumType;
      if (page.abortDate) about.abortDate = page.abortDate;
    }
    let highest = marker ?? 0;
    for (const p of page.parts) {
      if (p.partNumber > (marker ?? 0)) byNumber.set(p.partNumber, p); // ignore repeats of earlier pages
      highest = Math.max(highest, p.partNumber);
    }
    if (!page.isTruncated || (range && highest >= range.last)) break;
    const next = Math.max(page.nextPartNumberMarker ?? 0, highest);
    if (next <= (marker ?? 0) || next >= 10_000) {
      // Nothing to gain from asking again (or nothing can follow part 10,000).
      return result(next < 10_000);
    }
    marker = next;
  }
  return result(false);
}

function sorted(m: Map<number, RemotePart>): RemotePart[] {
  return [...m.values()].sort((a, b) => a.partNumber - b.partNumber);
}

export function listPartsCaller(port: S3Port, ref: UploadRef, req: RequestOptions, signal?: AbortSignal, pageSize = LIST_PARTS_PAGE) {
  return (marker: number | undefined) =>
    port.listParts(marker === undefined ? { ...ref, maxParts: pageSize } : { ...ref, maxParts: pageSize, partNumberMarker: marker }, req, signal);
}
