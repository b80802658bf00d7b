/**
 * A part's bytes: a buffer, or (for parts too large to hold) a source the S3 adapter streams from,
 * read afresh on every call of `chunks`. The file side makes them, the wire side sends them.
 * A chunk is valid until the consumer asks for the chunk after next (the file side cycles its
 * slices through a small arena): a consumer that keeps chunks longer must copy them.
 */
export type PartBody = Buffer | { length: number; chunks(): AsyncIterable<Buffer> };
