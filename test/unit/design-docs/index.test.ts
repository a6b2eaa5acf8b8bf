// Unit tests of the design documents: design-docs/append-only.ts (the
// validate_doc_update every log database gets), serialize.ts (fnSource,
// canonical, sameDesignDoc) and index.ts (validateDesignDoc, designDocsForApp).
// The validator is tested as CouchDB runs it: its SERIALIZED source is
// evaluated with `new Function`, so it must not depend on anything outside
// itself; and every function source of every design document is parsed with
// acorn as ES5 (CouchDB 3's older SpiderMonkey 1.8.5 knows nothing newer).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parse, type Node } from 'acorn';
import {
  EXISTS_REASON_PREFIX,
  REPORT_SET_NAMES,
  VALIDATE_DDOC_ID,
  designDocsForApp,
  sameDesignDoc,
  validateDesignDoc,
  correlatedValidateDoc,
  type DesignDoc,
} from '../../../design-docs/index.js';
import { canonical, fnSource } from '../../../design-docs/serialize.js';
import { WRITER_ROLE, READER_ROLE } from '../../../setup/ensure-users.js';
import { matchResults } from '../../../server/write/bulk-writer.js';

interface UserCtx {
  name: string | null;
  roles: string[];
  db?: string;
}
type Doc = { _id: string; [k: string]: unknown };
type Validate = (newDoc: Doc, oldDoc: Doc | null, userCtx: UserCtx, secObj?: unknown) => unknown;

/** The validator exactly as CouchDB gets it: a string, evaluated on its own. */
function serializedValidator(): { src: string; fn: Validate } {
  const src = validateDesignDoc().validate_doc_update;
  assert.equal(typeof src, 'string');
  const fn = new Function(`return (${src as string})`)() as Validate;
  assert.equal(typeof fn, 'function');
  return { src: src as string, fn };
}

/** Runs the validator; returns what it threw (undefined when it accepted). */
function verdict(newDoc: Doc, oldDoc: Doc | null, userCtx: UserCtx): unknown {
  const { fn } = serializedValidator();
  try {
    fn(newDoc, oldDoc, userCtx, { members: { roles: [WRITER_ROLE, READER_ROLE] }, admins: {} });
  } catch (thrown) {
    return thrown;
  }
  return undefined;
}

/** What was thrown must be CouchDB's `{forbidden: reason}` and nothing else. */
function forbiddenReason(thrown: unknown): string {
  assert.ok(thrown !== undefined, 'expected the validator to refuse');
  assert.ok(thrown !== null && typeof thrown === 'object' && !(thrown instanceof Error), `expected {forbidden}, got ${String(thrown)}`);
  assert.deepEqual(Object.keys(thrown), ['forbidden']);
  const reason = (thrown as { forbidden: unknown }).forbidden;
  assert.equal(typeof reason, 'string');
  assert.ok((reason as string).length > 0);
  return reason as string;
}

const ADMIN: UserCtx = { name: 'root', roles: ['_admin'] };
const DB_ADMIN: UserCtx = { name: 'ops', roles: ['ops', '_admin'] };
const WRITER: UserCtx = { name: 'writer', roles: [WRITER_ROLE] };
const READER: UserCtx = { name: 'reader', roles: [READER_ROLE] };
const ANON: UserCtx = { name: null, roles: [] };

const newLog: Doc = { _id: '0190a1b2c3d4e5f6a7b8c9d0e1f2a3b4', msg: 'hello', received_at: '2026-01-01T00:00:00.000Z' };
const stored: Doc = { ...newLog, _rev: '1-abc' };

describe('validate_doc_update (serialized)', () => {
  test('the serialized source is an anonymous function expression', () => {
    const { src } = serializedValidator();
    assert.match(src, /^function \(/);
  });

  test('the design document around it', () => {
    const ddoc = validateDesignDoc();
    assert.equal(VALIDATE_DDOC_ID, '_design/couchlog');
    assert.equal(ddoc._id, VALIDATE_DDOC_ID);
    assert.equal(ddoc.language, 'javascript');
    assert.deepEqual(Object.keys(ddoc).sort(), ['_id', 'language', 'validate_doc_update']);
    assert.equal(ddoc._rev, undefined, 'CouchDB owns _rev');
  });

  // [who, newDoc, oldDoc]: admins may do anything.
  const adminCases: Array<[string, Doc, Doc | null]> = [
    ['create a log document', newLog, null],
    ['update a log document', { ...stored, msg: 'redacted' }, stored],
    ['delete a log document', { _id: stored._id, _rev: stored._rev, _deleted: true }, stored],
    ['create a design document', { _id: '_design/x', views: {} }, null],
    ['update a design document', { _id: '_design/x', _rev: '2-b' }, { _id: '_design/x', _rev: '1-a' }],
    ['delete a design document', { _id: '_design/x', _deleted: true }, { _id: '_design/x' }],
  ];
  for (const [what, nd, od] of adminCases) {
    for (const [who, ctx] of [['a server admin', ADMIN], ['an admin with other roles', DB_ADMIN]] as const) {
      test(`${who} may ${what}`, () => {
        assert.equal(verdict(nd, od, ctx), undefined);
      });
    }
  }

  test('a writer may create a new document', () => {
    assert.equal(verdict(newLog, null, WRITER), undefined);
    assert.equal(verdict({ _id: 'my-own-id', level: 'warn' }, null, WRITER), undefined);
    assert.equal(verdict(newLog, null, { name: 'w2', roles: ['other', WRITER_ROLE] }), undefined);
  });

  test('updating an existing document is refused with the "exists" reason', () => {
    const reason = forbiddenReason(verdict({ ...stored, msg: 'changed' }, stored, WRITER));
    assert.ok(reason.startsWith(EXISTS_REASON_PREFIX), reason);
    assert.ok(reason.includes(stored._id), 'the reason names the document');
  });

  test('writing the same id again (a retry) is refused with the "exists" reason', () => {
    const reason = forbiddenReason(verdict(newLog, stored, WRITER));
    assert.ok(reason.startsWith(EXISTS_REASON_PREFIX), reason);
  });

  test('the "exists" refusal is what the ingress turns into a 409 conflict', () => {
    const reason = forbiddenReason(verdict(newLog, stored, WRITER));
    assert.deepEqual(matchResults([{ _id: newLog._id }], [{ id: newLog._id, error: 'forbidden', reason }]), [
      { id: newLog._id, error: 'conflict', reason: 'Document update conflict.' },
    ]);
  });

  test('a revision branch written beside the stored one (new_edits=false: oldDoc null) is refused', () => {
    // CouchDB hands a replicated write whose history does not meet the stored revision no oldDoc.
    const reason = forbiddenReason(verdict({ ...newLog, _rev: '2-ffffffffffffffffffffffffffffffff', msg: 'forged' }, null, WRITER));
    assert.match(reason, /cannot carry a revision/);
    forbiddenReason(verdict({ ...newLog, _rev: '1-ffffffffffffffffffffffffffffffff' }, null, WRITER));
    assert.equal(verdict({ ...newLog, _rev: '2-ffffffffffffffffffffffffffffffff' }, null, ADMIN), undefined, 'admins may replicate');
  });

  test('deleting an existing document is refused', () => {
    forbiddenReason(verdict({ _id: stored._id, _rev: '1-abc', _deleted: true }, stored, WRITER));
  });

  test('a deletion marker for a document that does not exist is refused', () => {
    const reason = forbiddenReason(verdict({ _id: 'ghost', _deleted: true }, null, WRITER));
    assert.match(reason, /deleted/);
    assert.ok(!reason.startsWith(EXISTS_REASON_PREFIX), 'not a conflict: nothing exists');
  });

  for (const id of ['_design/x', '_design/couchlog', '_design/logs']) {
    test(`a non-admin writing ${id} is refused (not as a conflict)`, () => {
      const created = forbiddenReason(verdict({ _id: id, views: {} }, null, WRITER));
      assert.match(created, /admin/);
      assert.ok(!created.startsWith(EXISTS_REASON_PREFIX));
      const updated = forbiddenReason(verdict({ _id: id, _rev: '2-b' }, { _id: id, _rev: '1-a' }, WRITER));
      assert.ok(!updated.startsWith(EXISTS_REASON_PREFIX), 'a design document is never reported as a mere conflict');
      forbiddenReason(verdict({ _id: id, _deleted: true }, { _id: id }, WRITER));
    });
  }

  // Roles that are not admin and not writer may not add anything.
  const notWriters: Array<[string, UserCtx]> = [
    ['a reader', READER],
    ['an anonymous caller', ANON],
    ['a user with no roles', { name: 'bob', roles: [] }],
    ['a role merely named "admin"', { name: 'x', roles: ['admin'] }],
    ['a role containing "_admin"', { name: 'x', roles: ['x_admin', '_admins'] }],
    ['a role containing the writer role', { name: 'x', roles: [`${WRITER_ROLE}s`, `x${WRITER_ROLE}`] }],
  ];
  for (const [who, ctx] of notWriters) {
    test(`${who} may not create a document`, () => {
      forbiddenReason(verdict(newLog, null, ctx));
    });
  }

  test('the validator needs nothing but its arguments (evaluated in a fresh scope, all branches)', () => {
    const { fn } = serializedValidator();
    // Each branch runs without a ReferenceError: only {forbidden} or nothing comes out.
    const runs: Array<[Doc, Doc | null, UserCtx]> = [
      [newLog, null, ADMIN],
      [newLog, null, READER],
      [{ _id: '_design/x' }, null, WRITER],
      [newLog, stored, WRITER],
      [{ _id: 'g', _deleted: true }, null, WRITER],
      [newLog, null, WRITER],
    ];
    for (const [nd, od, ctx] of runs) {
      try {
        fn(nd, od, ctx);
      } catch (thrown) {
        assert.ok(!(thrown instanceof Error), `threw ${String(thrown)}`);
      }
    }
  });
});

/** Every function source in a design document (views, lists, validate_doc_update...). */
function functionSources(value: unknown, path: string, out: Array<[string, string]> = []): Array<[string, string]> {
  if (typeof value === 'string') {
    if (/^\s*function\b/.test(value)) out.push([path, value]);
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) functionSources(v, `${path}.${k}`, out);
  }
  return out;
}

/** Every node of an acorn AST. */
function* nodes(node: unknown): Generator<Node & Record<string, unknown>> {
  if (Array.isArray(node)) {
    for (const n of node) yield* nodes(n);
  } else if (node !== null && typeof node === 'object' && typeof (node as { type?: unknown }).type === 'string') {
    yield node as Node & Record<string, unknown>;
    for (const [k, v] of Object.entries(node)) if (k !== 'loc') yield* nodes(v);
  }
}

const parseEs5 = (src: string) => parse(`(${src})`, { ecmaVersion: 5, sourceType: 'script' });

/** ES2015+ library names SpiderMonkey 1.8.5 lacks; ES5 syntax alone would not catch their use. */
const MODERN_METHODS = new Set([
  'includes', 'startsWith', 'endsWith', 'repeat', 'padStart', 'padEnd', 'find', 'findIndex', 'fill',
  'assign', 'flat', 'flatMap', 'trimStart', 'trimEnd', 'codePointAt', 'fromCodePoint', 'isInteger', 'isNaN',
]);
const MODERN_GLOBALS = new Set(['Map', 'Set', 'WeakMap', 'WeakSet', 'Symbol', 'Promise', 'Proxy', 'Reflect']);

/** ES2015+ library uses in an ES5-parsed source. */
function modernUses(src: string): string[] {
  const found: string[] = [];
  for (const n of nodes(parseEs5(src))) {
    if (n.type === 'MemberExpression' && !n.computed) {
      const name = (n.property as { name?: string }).name ?? '';
      if (MODERN_METHODS.has(name)) found.push(`.${name}`);
    }
    if (n.type === 'Identifier') {
      const name = (n as { name?: string }).name ?? '';
      if (MODERN_GLOBALS.has(name)) found.push(name);
    }
  }
  return found;
}

describe('design documents are ES5', () => {
  test('acorn with ecmaVersion 5 refuses ES2015+ syntax (the check bites)', () => {
    for (const src of [
      'function () { return (x) => x; }',
      'function () { let a = 1; return a; }',
      'function () { const a = 1; return a; }',
      'function () { return `t${1}`; }',
      'function (a = 1) { return a; }',
      'function () { var { a } = {}; return a; }',
      'function () { for (var x of []) {} }',
      'function () { class A {} }',
      'function () { return [...arguments]; }',
    ]) {
      assert.throws(() => parseEs5(src), SyntaxError, src);
    }
    assert.doesNotThrow(() => parseEs5('function (doc) { var a = [1]; if (a.indexOf(1) !== -1) { emit(doc._id, null); } }'));
  });

  test('the library check finds ES2015+ methods and globals (the check bites)', () => {
    assert.deepEqual(modernUses('function (d) { if (d._id.startsWith("_")) { return new Map(); } }'), ['.startsWith', 'Map']);
    assert.deepEqual(modernUses('function (d) { return [d].find(function (x) { return Object.assign({}, x); }); }'), ['.find', '.assign']);
    assert.deepEqual(modernUses('function (d) { return isNaN(d.n) || d.s.indexOf("x") !== -1 || Object.keys(d); }'), []);
  });

  test('the serialized validate_doc_update parses as ES5', () => {
    const { src } = serializedValidator();
    const ast = parseEs5(src);
    assert.equal(ast.body.length, 1);
  });

  const docs: DesignDoc[] = designDocsForApp(REPORT_SET_NAMES);
  const sources = docs.flatMap((d) => functionSources(d, d._id));

  test('every design document of an app with every report set holds function sources', () => {
    assert.ok(docs.some((d) => d._id === VALIDATE_DDOC_ID));
    // With the `correlated` set (log_correlated), only the correlator writes, and it may correct its records.
    assert.deepEqual(docs[0], correlatedValidateDoc());
    assert.deepEqual(designDocsForApp([])[0], validateDesignDoc(), 'the other log databases stay append-only');
    assert.ok(sources.some(([path]) => path === `${VALIDATE_DDOC_ID}.validate_doc_update`));
    for (const d of docs) assert.equal(d.language, 'javascript');
  });

  for (const [path, src] of sources) {
    test(`${path} parses as ES5 and uses no ES2015+ library`, () => {
      try {
        parseEs5(src);
      } catch (err) {
        assert.fail(`${path} is not ES5: ${(err as Error).message}\n${src}`);
      }
      assert.ok(!src.includes('__VIEW_META__'), 'placeholders are filled in');
      assert.deepEqual(modernUses(src), [], `${path} uses ES2015+ library features`);
    });
  }
});

describe('fnSource', () => {
  test('a named function becomes anonymous; the body is kept', () => {
    function namedThing(a: number, b: number) {
      return a + b;
    }
    const src = fnSource(namedThing as (...args: never[]) => unknown);
    assert.match(src, /^function \(a, b\)/);
    assert.ok(src.includes('return a + b'));
    assert.equal((new Function(`return (${src})`)() as typeof namedThing)(2, 3), 5);
  });

  test('names with $ and _ and digits are removed too', () => {
    const src = fnSource(function $my_fn2(x: number) {
      return x;
    } as (...args: never[]) => unknown);
    assert.match(src, /^function \(x\)/);
  });

  test('an anonymous function stays as it is', () => {
    const fn = function (x: number) {
      return x * 2;
    };
    assert.equal(fnSource(fn as (...args: never[]) => unknown), fn.toString());
  });
});

describe('sameDesignDoc and canonical', () => {
  const base = validateDesignDoc();

  test('canonical sorts keys at every level and keeps array order', () => {
    assert.equal(canonical({ b: 1, a: [{ d: 1, c: 2 }, 3] }), '{"a":[{"c":2,"d":1},3],"b":1}');
    assert.equal(canonical({ a: undefined, b: null }), '{"b":null}');
    assert.equal(canonical('x"y'), '"x\\"y"');
  });

  // [what, other document, same?]
  const cases: Array<[string, Record<string, unknown>, boolean]> = [
    ['an identical copy', { ...base }, true],
    ['the stored copy with a _rev', { ...base, _rev: '3-abcdef' }, true],
    ['the stored copy with _revisions and _conflicts', { ...base, _rev: '2-a', _revisions: { start: 2, ids: ['a', 'b'] }, _conflicts: ['1-x'] }, true],
    ['the same keys in another order', { validate_doc_update: base.validate_doc_update, language: 'javascript', _id: base._id }, true],
    ['a JSON round trip (as read back from CouchDB)', JSON.parse(JSON.stringify({ ...base, _rev: '1-a' })) as Record<string, unknown>, true],
    ['an undefined extra field', { ...base, extra: undefined }, true],
    ['a changed function', { ...base, validate_doc_update: (base.validate_doc_update as string).replace('conflict:', 'conflict!') }, false],
    ['a function with one more space', { ...base, validate_doc_update: `${base.validate_doc_update as string} ` }, false],
    ['an extra field', { ...base, views: {} }, false],
    ['a missing field', { _id: base._id, language: 'javascript' }, false],
    ['a null field instead of a missing one', { ...base, options: null }, false],
    ['another id', { ...base, _id: '_design/other' }, false],
  ];
  for (const [what, other, same] of cases) {
    test(`${what} → ${same ? 'same' : 'different'}`, () => {
      assert.equal(sameDesignDoc(base, other), same);
      assert.equal(sameDesignDoc(other, base), same, 'symmetric');
    });
  }

  const views = {
    _id: '_design/v',
    language: 'javascript',
    views: { by: { map: 'function (doc) { emit(1, null); }', reduce: '_count' } },
    lists: { csv: 'function () {}' },
  };

  test('nested key order does not matter', () => {
    const reordered = {
      lists: { csv: 'function () {}' },
      views: { by: { reduce: '_count', map: 'function (doc) { emit(1, null); }' } },
      _rev: '7-x',
      language: 'javascript',
      _id: '_design/v',
    };
    assert.equal(sameDesignDoc(views, reordered), true);
  });

  test('a changed nested value is detected', () => {
    assert.equal(sameDesignDoc(views, { ...views, views: { by: { map: 'function (doc) { emit(2, null); }', reduce: '_count' } } }), false);
    assert.equal(sameDesignDoc(views, { ...views, views: { by: { map: views.views.by.map, reduce: '_sum' } } }), false);
    assert.equal(sameDesignDoc(views, { ...views, views: { ...views.views, other: { map: 'function () {}' } } }), false);
  });

  test('only top-level server fields are ignored', () => {
    const a = { _id: '_design/v', language: 'javascript', meta: { _rev: 1 } };
    const b = { _id: '_design/v', language: 'javascript', meta: { _rev: 2 } };
    assert.equal(sameDesignDoc(a, b), false);
  });

  test('array order matters', () => {
    assert.equal(sameDesignDoc({ _id: 'x', a: [1, 2] }, { _id: 'x', a: [2, 1] }), false);
  });

  test('types matter', () => {
    assert.equal(sameDesignDoc({ _id: 'x', a: 1 }, { _id: 'x', a: '1' }), false);
  });
});
