// Whether CouchDB's status for a write means the write is stored. One rule
// for every writer (the ingress, the correlator's sink, checkpoints, the
// writer claim, the shipper reading the ingress's pass-through), so that a
// cluster's 202 is never taken for a failure again: that once cost every
// checkpoint save with two of three nodes down.

/**
 * 201 Created, or 202 Accepted: a cluster stored the write on fewer copies
 * than its write quorum so far; the other copies catch up once they are back.
 * Either way it is stored: retrying it would only conflict.
 */
export function isStoredWrite(status: number): boolean {
  return status === 201 || status === 202;
}

/**
 * A PUT of a `_local` document: as {@link isStoredWrite}, and 200, which
 * PouchDB Server answers where CouchDB answers 201.
 */
export function isStoredLocalWrite(status: number): boolean {
  return status === 200 || isStoredWrite(status);
}
