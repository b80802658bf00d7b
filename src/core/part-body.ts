/**
 * A part's bytes: a buffer, or (for parts too large to hold) a source the S3 adapter streams from,
 * read afresh on every call of `chunks`. The file side makes them, the wire side sends them.
 */
export type PartBody = Buffer | { length: number; chunks(): AsyncIterable<Buffer> };
