// Unit tests of the write routes' input rules: server/write/parse-body.ts
// (parseJson, parseNdjson) and server/write/validate-docs.ts (jsonDepth,
// validateDoc, checkCount, bulkDocsOf). Each refusal is checked for the
// CouchlogError's statusCode, stable `code` and CouchDB `error` name.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CouchlogError } from '../../../../lib/errors.js';
import { parseJson, parseNdjson } from '../../../../server/write/parse-body.js';
import { bulkDocsOf, checkCount, checkDocSizes, jsonDepth, loneSurrogateIn, validateDoc, type DocRules } from '../../../../server/write/validate-docs.js';

interface Expected {
  statusCode: number;
  code: string;
  couchError: string;
  /** Text the reason must contain. */
  reason?: string | RegExp;
}

const EMPTY: Expected = { statusCode: 400, code: 'INGRESS_EMPTY_BODY', couchError: 'bad_request' };
const INVALID_JSON: Expected = { statusCode: 400, code: 'INGRESS_INVALID_JSON', couchError: 'bad_request' };
const NOT_OBJECT: Expected = { statusCode: 400, code: 'INGRESS_DOC_NOT_OBJECT', couchError: 'bad_request' };
const HAS_REV: Expected = { statusCode: 403, code: 'INGRESS_DOC_HAS_REV', couchError: 'forbidden' };
const DELETED: Expected = { statusCode: 403, code: 'INGRESS_DOC_DELETED', couchError: 'forbidden' };
const ATTACHMENTS: Expected = { statusCode: 403, code: 'INGRESS_DOC_ATTACHMENTS', couchError: 'forbidden' };
const RESERVED_ID: Expected = { statusCode: 403, code: 'INGRESS_RESERVED_ID', couchError: 'forbidden' };
const BAD_ID: Expected = { statusCode: 400, code: 'INGRESS_BAD_ID', couchError: 'bad_request' };
const SPECIAL: Expected = { statusCode: 400, code: 'INGRESS_SPECIAL_FIELD', couchError: 'doc_validation' };
const TOO_DEEP: Expected = { statusCode: 400, code: 'INGRESS_TOO_DEEP', couchError: 'bad_request' };
const TOO_MANY: Expected = { statusCode: 413, code: 'INGRESS_TOO_MANY_DOCS', couchError: 'too_large' };
const NEW_EDITS: Expected = { statusCode: 403, code: 'INGRESS_NEW_EDITS', couchError: 'forbidden' };
const BAD_BULK: Expected = { statusCode: 400, code: 'INGRESS_BAD_BULK', couchError: 'bad_request' };

/** `fn` must throw a CouchlogError matching `expected`. */
function throwsCouch(fn: () => unknown, expected: Expected): CouchlogError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof CouchlogError, `expected a CouchlogError, got ${caught === undefined ? 'no error' : String(caught)}`);
  assert.deepEqual(
    { statusCode: caught.statusCode, code: caught.code, couchError: caught.couchError },
    { statusCode: expected.statusCode, code: expected.code, couchError: expected.couchError },
  );
  assert.deepEqual(caught.toBody(), { error: expected.couchError, reason: caught.message, code: expected.code });
  if (typeof expected.reason === 'string')
    assert.ok(caught.message.includes(expected.reason), `reason ${JSON.stringify(caught.message)} should contain ${JSON.stringify(expected.reason)}`);
  else if (expected.reason) assert.match(caught.message, expected.reason);
  return caught;
}

const show = (v: unknown) => {
  const s = typeof v === 'string' ? JSON.stringify(v) : v === undefined ? 'undefined' : JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
};

describe('parseJson', () => {
  for (const body of ['', ' ', '\n', '\t \r\n ']) {
    test(`empty body ${JSON.stringify(body)} → 400 INGRESS_EMPTY_BODY`, () => {
      throwsCouch(() => parseJson(body), { ...EMPTY, reason: 'request body is empty' });
    });
  }

  for (const body of ['{', '}', '{"a":1,}', 'nul', "{'a':1}", '[1 2]', '{"a":1} x', 'undefined', '{a:1}', '"unterminated', '01']) {
    test(`invalid JSON ${JSON.stringify(body)} → 400 INGRESS_INVALID_JSON`, () => {
      throwsCouch(() => parseJson(body), { ...INVALID_JSON, reason: /^request body is not valid JSON: / });
    });
  }

  test('the label names where the error is', () => {
    throwsCouch(() => parseJson('{', 'line 7'), { ...INVALID_JSON, reason: /^line 7 is not valid JSON/ });
    throwsCouch(() => parseJson('  ', 'line 2'), { ...EMPTY, reason: /^line 2 is empty/ });
  });

  const valid: Array<[string, unknown]> = [
    ['{"a":1}', { a: 1 }],
    [' {"msg":"x","n":[1,2,{"b":null}]} \n', { msg: 'x', n: [1, 2, { b: null }] }],
    ['[{"a":1},{"b":2}]', [{ a: 1 }, { b: 2 }]],
    ['"s"', 's'],
    ['42', 42],
    ['null', null],
    ['{"_rev":"1-x"}', { _rev: '1-x' }], // parsing does not judge documents
  ];
  for (const [body, value] of valid) {
    test(`valid JSON ${JSON.stringify(body)} is returned as is`, () => {
      assert.deepEqual(parseJson(body), value);
    });
  }

  test('a RangeError from the parser (stack overflow) becomes a 400, not a crash', (t) => {
    t.mock.method(JSON, 'parse', () => {
      throw new RangeError('Maximum call stack size exceeded');
    });
    throwsCouch(() => parseJson('[[[[1]]]]'), { ...INVALID_JSON, reason: 'nested too deeply' });
  });

  test('another parser error keeps its message', (t) => {
    t.mock.method(JSON, 'parse', () => {
      throw new SyntaxError('boom at 3');
    });
    throwsCouch(() => parseJson('{}'), { ...INVALID_JSON, reason: 'boom at 3' });
  });

  // 100k nested arrays/objects: JSON.parse may accept them (V8's parser is
  // iterative) or overflow; either way the result is a value or a 400, and
  // the document rules then refuse it without overflowing either.
  const N = 100_000;
  const deep: Array<[string, string]> = [
    ['arrays', `${'['.repeat(N)}${']'.repeat(N)}`],
    ['objects', `${'{"a":'.repeat(N)}1${'}'.repeat(N)}`],
    ['an object holding arrays', `{"a":${'['.repeat(N)}${']'.repeat(N)}}`],
  ];
  for (const [what, body] of deep) {
    test(`100k nested ${what} do not crash: a value or a 400, then refused by validateDoc`, () => {
      let value: unknown;
      try {
        value = parseJson(body);
      } catch (err) {
        assert.ok(err instanceof CouchlogError, `not a CouchlogError: ${String(err)}`);
        assert.equal(err.statusCode, 400);
        assert.equal(err.code, 'INGRESS_INVALID_JSON');
        return;
      }
      assert.equal(typeof value, 'object');
      // A top-level array is not a document; an object is too deep.
      const expected = Array.isArray(value) ? NOT_OBJECT : TOO_DEEP;
      throwsCouch(() => validateDoc(value, { maxDepth: 32, maxDocs: 10, maxDocBytes: 8_000_000 }, 'document'), expected);
    });
  }
});

describe('parseNdjson', () => {
  const good: Array<[string, string, unknown[]]> = [
    ['one line', '{"a":1}', [{ a: 1 }]],
    ['trailing newline', '{"a":1}\n', [{ a: 1 }]],
    ['blank and whitespace lines', '\n{"a":1}\n\n   \n{"b":2}\n\t\n', [{ a: 1 }, { b: 2 }]],
    ['CRLF line ends', '{"a":1}\r\n{"b":2}\r\n', [{ a: 1 }, { b: 2 }]],
    ['any JSON value per line (judged later)', '1\n"x"\n[2]\nnull', [1, 'x', [2], null]],
    ['a newline inside a string is escaped, so one line', '{"m":"a\\nb"}\n', [{ m: 'a\nb' }]],
  ];
  for (const [what, body, docs] of good) {
    test(`${what}`, () => {
      assert.deepEqual(parseNdjson(body), docs);
    });
  }

  // [body, the 1-based line number the error must name]
  const bad: Array<[string, number]> = [
    ['{', 1],
    ['{"a":1}\n{', 2],
    ['{"a":1}\n\n{"b":2}\nnot json\n{"c":3}', 4],
    ['\n\n\n{"a":1,}', 4],
    ['{"a":1}\r\n\r\n{bad}\r\n', 3],
    ['{"a":1} {"b":2}', 1],
  ];
  for (const [body, line] of bad) {
    test(`a bad line is reported as line ${line}: ${JSON.stringify(body)}`, () => {
      throwsCouch(() => parseNdjson(body), { ...INVALID_JSON, reason: new RegExp(`^line ${line} is not valid JSON`) });
    });
  }

  test('the first bad line is the one reported', () => {
    throwsCouch(() => parseNdjson('{"ok":1}\nx\ny'), { ...INVALID_JSON, reason: /^line 2 / });
  });

  for (const body of ['', '\n', '\n\n  \n', '\r\n\r\n']) {
    test(`no documents ${JSON.stringify(body)} → 400 INGRESS_EMPTY_BODY`, () => {
      throwsCouch(() => parseNdjson(body), { ...EMPTY, reason: 'no documents' });
    });
  }
});

describe('jsonDepth', () => {
  const cases: Array<[unknown, number]> = [
    [1, 0],
    ['x', 0],
    [null, 0],
    [true, 0],
    [{}, 1],
    [[], 1],
    [{ a: 1, b: 'x', c: null }, 1],
    [[[]], 2],
    [{ a: [{ b: 1 }] }, 3],
    [{ a: 1, b: { c: { d: {} } }, e: [] }, 4],
    [[1, [2, [3, [4]]], []], 4],
  ];
  for (const [value, depth] of cases) {
    test(`${show(value)} has depth ${depth}`, () => {
      assert.equal(jsonDepth(value), depth);
    });
  }

  test('a 200k-deep value is measured without recursion', () => {
    let v: unknown = {};
    for (let i = 1; i < 200_000; i++) v = { a: v };
    assert.equal(jsonDepth(v), 200_000);
  });
});

describe('validateDoc', () => {
  const rules: DocRules = { maxDepth: 4, maxDocs: 3, maxDocBytes: 8_000_000 };

  for (const doc of [null, undefined, [], [{ a: 1 }], 'str', '', 42, 0, true, false]) {
    test(`${show(doc)} → 400 INGRESS_DOC_NOT_OBJECT`, () => {
      throwsCouch(() => validateDoc(doc, rules, 'document 3'), { ...NOT_OBJECT, reason: 'document 3 must be a JSON object' });
    });
  }

  const accepted: unknown[] = [
    {},
    { msg: 'hello', level: 'info' },
    { _id: 'abc' },
    { _id: 'a/b:c d' },
    { _id: 'x'.repeat(512) },
    { _id: 'design/x' },
    { msg: '_rev', a_b: 1, x_: 2 }, // only keys starting with "_" are special
    { data: { _rev: '1-a', _deleted: true, _attachments: {}, _id: '_design/x', _foo: 1 } }, // nested: plain data
    { a: { b: { c: {} } } }, // depth 4 = the limit
    { a: [[[1, 'x', null]]] }, // depth 4 with arrays
  ];
  for (const doc of accepted) {
    test(`accepted: ${show(doc)} (the same object is returned)`, () => {
      assert.equal(validateDoc(doc, rules, 'document'), doc);
    });
  }

  // [doc, expected]
  const refused: Array<[Record<string, unknown>, Expected]> = [
    [{ _rev: '1-abc' }, HAS_REV],
    [{ _rev: null }, HAS_REV],
    [{ _id: 'a', _rev: '2-def', msg: 1 }, HAS_REV],
    [{ _deleted: true }, DELETED],
    [{ _id: 'a', _deleted: 1 }, DELETED],
    [{ _attachments: {} }, ATTACHMENTS],
    [{ _attachments: { 'f.txt': { content_type: 'text/plain', data: 'aGk=' } } }, ATTACHMENTS],
    [{ _id: '_design/x' }, RESERVED_ID],
    [{ _id: '_design/couchlog', validate_doc_update: 'function(){}' }, RESERVED_ID],
    [{ _id: '_local/x' }, RESERVED_ID],
    [{ _id: '_x' }, RESERVED_ID],
    [{ _id: '_' }, RESERVED_ID],
    [{ _id: 5 }, BAD_ID],
    [{ _id: null }, BAD_ID],
    [{ _id: '' }, BAD_ID],
    [{ _id: {} }, BAD_ID],
    [{ _id: ['a'] }, BAD_ID],
    [{ _id: true }, BAD_ID],
    [{ _id: 'x'.repeat(513) }, BAD_ID],
    [{ _foo: 1 }, { ...SPECIAL, reason: '_foo' }],
    [{ _revisions: { start: 1, ids: ['a'] } }, { ...SPECIAL, reason: '_revisions' }],
    [{ _conflicts: [] }, { ...SPECIAL, reason: '_conflicts' }],
    [{ _local_seq: 1 }, { ...SPECIAL, reason: '_local_seq' }],
    [{ _: 1 }, SPECIAL],
    [
      { msg: 'x', _Id: 'a' },
      { ...SPECIAL, reason: '_Id' },
    ],
    [JSON.parse('{"__proto__": {"x": 1}}') as Record<string, unknown>, { ...SPECIAL, reason: '__proto__' }],
    [{ a: { b: { c: { d: {} } } } }, TOO_DEEP], // depth 5
    [{ a: [[[[1]]]] }, TOO_DEEP],
    [{ a: 1, b: 'x', c: { d: [{ e: [] }] } }, TOO_DEEP], // the deep branch is not the first one
  ];
  for (const [doc, expected] of refused) {
    test(`${show(doc)} → ${expected.statusCode} ${expected.code}`, () => {
      const err = throwsCouch(() => validateDoc(doc, rules, 'document 2'), expected);
      assert.ok(err.message.startsWith('document 2'), `the reason names the document: ${err.message}`);
    });
  }

  test('the depth limit is the configured one', () => {
    const doc = { a: { b: { c: {} } } }; // depth 4
    assert.equal(validateDoc(doc, { maxDepth: 4, maxDocs: 1, maxDocBytes: 8_000_000 }, 'd'), doc);
    throwsCouch(() => validateDoc(doc, { maxDepth: 3, maxDocs: 1, maxDocBytes: 8_000_000 }, 'd'), { ...TOO_DEEP, reason: 'deeper than 3 levels' });
    throwsCouch(() => validateDoc({ x: {} }, { maxDepth: 1, maxDocs: 1, maxDocBytes: 8_000_000 }, 'd'), TOO_DEEP);
  });

  test('a reserved field is refused whatever else the document holds', () => {
    throwsCouch(() => validateDoc({ msg: 'a', level: 'info', time: 1, _deleted: false }, rules, 'd'), DELETED);
  });
});

describe('checkCount', () => {
  const rules: DocRules = { maxDepth: 32, maxDocs: 3, maxDocBytes: 8_000_000 };
  for (const n of [0, 1, 2, 3]) {
    test(`${n} documents with a limit of 3 pass`, () => {
      assert.doesNotThrow(() => checkCount(n, rules));
    });
  }
  for (const n of [4, 5, 1_000_000]) {
    test(`${n} documents with a limit of 3 → 413 INGRESS_TOO_MANY_DOCS`, () => {
      throwsCouch(() => checkCount(n, rules), { ...TOO_MANY, reason: `${n} documents` });
    });
  }
});

describe('bulkDocsOf', () => {
  test('returns the docs array itself', () => {
    const docs = [{ a: 1 }, { b: 2 }];
    assert.equal(bulkDocsOf({ docs }), docs);
    assert.equal(bulkDocsOf({ docs, new_edits: true }), docs);
    assert.equal(bulkDocsOf({ new_edits: true, docs }), docs);
  });

  test('an empty docs array is returned (checked later)', () => {
    assert.deepEqual(bulkDocsOf({ docs: [] }), []);
  });

  test('the documents are not judged here', () => {
    const docs = [{ _rev: '1-a' }, 5];
    assert.equal(bulkDocsOf({ docs }), docs);
  });

  const refused: Array<[string, unknown, Expected]> = [
    ['new_edits:false', { docs: [{ a: 1 }], new_edits: false }, NEW_EDITS],
    ['new_edits:false before docs', { new_edits: false, docs: [] }, NEW_EDITS],
    ['new_edits:false without docs', { new_edits: false }, NEW_EDITS],
    ['new_edits as a string', { docs: [], new_edits: 'false' }, BAD_BULK],
    ['new_edits as 0', { docs: [], new_edits: 0 }, BAD_BULK],
    ['new_edits as null', { docs: [], new_edits: null }, BAD_BULK],
    ['unknown field all_or_nothing', { docs: [], all_or_nothing: true }, { ...BAD_BULK, reason: 'all_or_nothing' }],
    ['unknown field foo', { foo: 1, docs: [] }, { ...BAD_BULK, reason: 'foo' }],
    ['missing docs', {}, { ...BAD_BULK, reason: '"docs" array' }],
    ['docs as an object', { docs: {} }, BAD_BULK],
    ['docs as a string', { docs: '[]' }, BAD_BULK],
    ['docs as null', { docs: null }, BAD_BULK],
    ['docs as a number', { docs: 3 }, BAD_BULK],
    ['a null body', null, BAD_BULK],
    ['an array body', [{ a: 1 }], BAD_BULK],
    ['a string body', 'docs', BAD_BULK],
    ['a number body', 1, BAD_BULK],
    ['undefined', undefined, BAD_BULK],
  ];
  for (const [what, body, expected] of refused) {
    test(`${what} → ${expected.statusCode} ${expected.code}`, () => {
      throwsCouch(() => bulkDocsOf(body), expected);
    });
  }
});

test('loneSurrogateIn: a lone surrogate in any key or value (with the key it is under), only when the text has a surrogate escape', () => {
  const parse = (text: string) => loneSurrogateIn(text, JSON.parse(text));
  assert.deepEqual(parse('{"m":"\\ud800x"}'), { text: '\ud800x', key: 'm' });
  assert.deepEqual(parse('{"m":"x\\uDC00"}'), { text: 'x\udc00', key: 'm' });
  assert.deepEqual(parse('{"a":{"b":["ok","\\udbff"]}}'), { text: '\udbff', key: null });
  assert.deepEqual(parse('{"\\ud800":1}'), { text: '\ud800', key: null });
  assert.deepEqual(parse('{"docs":[{"_id":"a\\ud800"}]}'), { text: 'a\ud800', key: '_id' });
  assert.equal(parse('{"m":"\\ud83d\\ude00 a pair is fine"}'), null);
  assert.equal(parse('{"m":"🙂 raw, no escape"}'), null);
  assert.equal(parse('{"m":"\\\\ud800 an escaped backslash, not an escape"}'), null);
  // No surrogate escape in the text: nothing is walked, whatever the value.
  assert.equal(loneSurrogateIn('{}', { m: '\ud800' }), null);
});

describe('checkDocSizes (ingress.max_document_bytes)', () => {
  const rules = { maxDocBytes: 2_000 };
  test('a body too small to hold a document over the limit is not serialised', () => {
    const doc = {
      get a() {
        throw new Error('serialised');
      },
    };
    assert.doesNotThrow(() => checkDocSizes([doc], 100, rules));
  });
  test('a document over the limit as stored (UTF-8 bytes) is refused, named by its place; one at the limit passes', () => {
    const at = { _id: 'x', m: 'é'.repeat(Math.floor((2_000 - 18) / 2)) };
    const bytes = Buffer.byteLength(JSON.stringify(at));
    assert.ok(bytes <= 2_000 && bytes > 1_990, String(bytes));
    assert.doesNotThrow(() => checkDocSizes([at, at], 5_000, rules));
    const over = { ...at, more: 'é' };
    throwsCouch(() => checkDocSizes([at, over], 5_000, rules), {
      statusCode: 413,
      code: 'INGRESS_DOC_TOO_LARGE',
      couchError: 'too_large',
      reason: 'document 2 is',
    });
    throwsCouch(() => checkDocSizes([over], 5_000, rules), {
      statusCode: 413,
      code: 'INGRESS_DOC_TOO_LARGE',
      couchError: 'too_large',
      reason: 'the document is',
    });
  });
});
