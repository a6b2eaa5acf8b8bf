// Unit tests of server/write/bulk-writer.ts's pure parts: matchResults (hands
// each document its own entry of a _bulk_docs answer, matched by id, in order
// of appearance for repeated ids; turns the validator's "conflict:" refusal
// into CouchDB's conflict; fills in missing results; refuses a non-array
// answer) and statusOfError (the HTTP status of a per-document error).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CONFLICT, matchResults, statusOfError } from '../../../../server/write/bulk-writer.js';
import { EXISTS_REASON_PREFIX } from '../../../../design-docs/index.js';
import { CouchlogError } from '../../../../lib/errors.js';

const docs = (...ids: string[]) => ids.map((_id) => ({ _id }));
const UNKNOWN = (id: string) => ({ id, error: 'unknown', reason: 'CouchDB gave no result for this document' });

describe('matchResults', () => {
  test('results in the same order as the documents', () => {
    assert.deepEqual(
      matchResults(docs('a', 'b'), [
        { ok: true, id: 'a', rev: '1-a' },
        { ok: true, id: 'b', rev: '1-b' },
      ]),
      [
        { ok: true, id: 'a', rev: '1-a' },
        { ok: true, id: 'b', rev: '1-b' },
      ],
    );
  });

  test('results out of order are matched back by id', () => {
    assert.deepEqual(
      matchResults(docs('a', 'b', 'c'), [
        { ok: true, id: 'c', rev: '1-c' },
        { id: 'a', error: 'conflict', reason: 'Document update conflict.' },
        { ok: true, id: 'b', rev: '1-b' },
      ]),
      [
        { id: 'a', error: 'conflict', reason: 'Document update conflict.' },
        { ok: true, id: 'b', rev: '1-b' },
        { ok: true, id: 'c', rev: '1-c' },
      ],
    );
  });

  test("PouchDB Server's conflict (no full stop) reads as CouchDB's", () => {
    assert.deepEqual(matchResults(docs('a'), [{ id: 'a', error: 'conflict', reason: 'Document update conflict' }]), [
      { id: 'a', error: 'conflict', reason: 'Document update conflict.' },
    ]);
  });

  test('repeated ids get their results in order of appearance, whatever the interleaving', () => {
    assert.deepEqual(
      matchResults(docs('x', 'y', 'x', 'x'), [
        { id: 'x', ok: true, rev: '1-first' },
        { id: 'x', error: 'conflict', reason: 'Document update conflict.' },
        { id: 'y', ok: true, rev: '1-y' },
        { id: 'x', error: 'forbidden', reason: 'third' },
      ]),
      [
        { ok: true, id: 'x', rev: '1-first' },
        { ok: true, id: 'y', rev: '1-y' },
        { id: 'x', error: 'conflict', reason: 'Document update conflict.' },
        { id: 'x', error: 'forbidden', reason: 'third' },
      ],
    );
  });

  test('a result with a rev and no error counts as ok even without ok:true', () => {
    assert.deepEqual(matchResults(docs('a'), [{ id: 'a', rev: '2-zz' }]), [{ ok: true, id: 'a', rev: '2-zz' }]);
  });

  test(`a forbidden whose reason starts with ${JSON.stringify(EXISTS_REASON_PREFIX)} becomes CouchDB's conflict`, () => {
    assert.deepEqual(CONFLICT, { error: 'conflict', reason: 'Document update conflict.' });
    const reason = `${EXISTS_REASON_PREFIX} document a exists and log databases are append-only`;
    assert.deepEqual(matchResults(docs('a'), [{ id: 'a', error: 'forbidden', reason }]), [{ id: 'a', error: 'conflict', reason: 'Document update conflict.' }]);
  });

  // Errors that are passed on as they are.
  const kept: Array<[string, Record<string, unknown>, { error: string; reason: string }]> = [
    [
      'another forbidden',
      { error: 'forbidden', reason: 'only admins may write design documents' },
      { error: 'forbidden', reason: 'only admins may write design documents' },
    ],
    [
      'a forbidden merely containing the prefix',
      { error: 'forbidden', reason: `no ${EXISTS_REASON_PREFIX} here` },
      { error: 'forbidden', reason: `no ${EXISTS_REASON_PREFIX} here` },
    ],
    ['a forbidden without a reason', { error: 'forbidden' }, { error: 'forbidden', reason: '' }],
    [
      'a non-forbidden error with the prefix',
      { error: 'unauthorized', reason: `${EXISTS_REASON_PREFIX} x` },
      { error: 'unauthorized', reason: `${EXISTS_REASON_PREFIX} x` },
    ],
    ['a conflict', { error: 'conflict', reason: 'Document update conflict.' }, { error: 'conflict', reason: 'Document update conflict.' }],
    [
      'a doc_validation',
      { error: 'doc_validation', reason: 'Bad special document member: _x' },
      { error: 'doc_validation', reason: 'Bad special document member: _x' },
    ],
  ];
  for (const [what, raw, expected] of kept) {
    test(`${what} is kept`, () => {
      assert.deepEqual(matchResults(docs('a'), [{ id: 'a', ...raw }]), [{ id: 'a', ...expected }]);
    });
  }

  test('a document without a result gets error "unknown"', () => {
    assert.deepEqual(matchResults(docs('a', 'b', 'c'), [{ ok: true, id: 'b', rev: '1-b' }]), [UNKNOWN('a'), { ok: true, id: 'b', rev: '1-b' }, UNKNOWN('c')]);
  });

  test('a repeated id with fewer results than documents: the later ones are unknown', () => {
    assert.deepEqual(matchResults(docs('x', 'x'), [{ ok: true, id: 'x', rev: '1-x' }]), [{ ok: true, id: 'x', rev: '1-x' }, UNKNOWN('x')]);
  });

  test('an empty answer: every document is unknown', () => {
    assert.deepEqual(matchResults(docs('a', 'b'), []), [UNKNOWN('a'), UNKNOWN('b')]);
  });

  test('results for ids that were not sent are ignored', () => {
    assert.deepEqual(
      matchResults(docs('a'), [
        { ok: true, id: 'zzz', rev: '1-z' },
        { ok: true, id: 'a', rev: '1-a' },
      ]),
      [{ ok: true, id: 'a', rev: '1-a' }],
    );
  });

  test('no documents, no results', () => {
    assert.deepEqual(matchResults([], []), []);
  });

  for (const body of [null, undefined, {}, { docs: [] }, { error: 'bad_request' }, 'x', 42]) {
    test(`a non-array answer ${JSON.stringify(body) ?? 'undefined'} throws a 503`, () => {
      assert.throws(
        () => matchResults(docs('a'), body),
        (err: unknown) =>
          err instanceof CouchlogError && err.statusCode === 503 && err.code === 'COUCHDB_BAD_ANSWER' && err.couchError === 'service_unavailable',
      );
    });
  }
});

describe('statusOfError', () => {
  const cases: Array<[string, number]> = [
    ['conflict', 409],
    ['forbidden', 403],
    ['unauthorized', 401],
    ['not_found', 404],
    ['doc_validation', 400],
    ['bad_request', 400],
    ['', 400],
  ];
  for (const [error, status] of cases) {
    test(`${JSON.stringify(error)} → ${status}`, () => {
      assert.equal(statusOfError(error), status);
    });
  }
});
