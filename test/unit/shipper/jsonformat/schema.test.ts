// The jsonformat schema language (shipper/jsonformat/schema.ts) and the line
// formatter (shipper/jsonformat/line-formatter.ts): the seed's example gives
// exactly the seed's object; escapes, quoted and bracketed captures, the
// rest of the line, skips, types and constants; bad schemas are clear
// errors; the fast "plain" path and the general path always agree.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '../../../../lib/errors.js';
import { compileSchema } from '../../../../shipper/jsonformat/schema.js';
import { LineFormatter, type FormatterOptions } from '../../../../shipper/jsonformat/line-formatter.js';
import { convertValue, parseAssignments, parseTypes } from '../../../../shipper/jsonformat/field-options.js';

const SEED_LINE = '2017-06-14 17:16:12,329 fail2ban.actions        [1112]: NOTICE  [sshd] Ban 59.45.175.88';
const SEED_SCHEMA = '$date $hour _ _ _ \\[$process\\] _ $ip';

function fmt(schema: string, line: string, extra: Omit<FormatterOptions, 'schema'> = {}): unknown {
  const f = new LineFormatter({ schema, ...extra });
  const json = f.format(line);
  return json === null ? null : JSON.parse(json);
}

function badSchema(schema: string, message: RegExp): void {
  assert.throws(
    () => compileSchema(schema),
    (err: unknown) => err instanceof UsageError && message.test(err.message),
    `schema ${JSON.stringify(schema)} should be refused with ${message}`,
  );
}

describe('the seed example', () => {
  test('gives exactly the seed output (key order aside)', () => {
    const f = new LineFormatter({ schema: SEED_SCHEMA, fields: parseAssignments(['machine=server'], '--fields') });
    const json = f.format(SEED_LINE);
    assert.ok(json !== null);
    assert.deepEqual(JSON.parse(json), { date: '2017-06-14', process: 'sshd', machine: 'server', hour: '17:16:12,329', ip: '59.45.175.88' });
    // Captures in schema order, then constants: the seed's own line of output, minus its spaces.
    assert.equal(json, '{"date":"2017-06-14","hour":"17:16:12,329","process":"sshd","ip":"59.45.175.88","machine":"server"}');
  });

  test('a line with fewer or more tokens does not match, and says why', () => {
    const f = new LineFormatter({ schema: SEED_SCHEMA });
    assert.equal(f.format('2017-06-14 17:16:12,329 fail2ban.actions [1112]: NOTICE [sshd] Ban'), null);
    assert.equal(f.lastMismatch.reason, 'does not match the schema');
    assert.equal(f.format(`${SEED_LINE} extra`), null);
    assert.equal(f.format('2017-06-14 17:16:12,329 fail2ban.actions [1112]: NOTICE sshd Ban 1.2.3.4'), null, 'literal [ ] must be there');
  });

  test('tabs, runs of spaces, leading/trailing blanks and a CRLF ending are separators, not content', () => {
    assert.deepEqual(fmt('$a $b', '\t x \t\t y  \r'), { a: 'x', b: 'y' });
  });
});

describe('escapes', () => {
  test('\\[ \\] \\" \\$ \\\\ and \\_ are literal characters', () => {
    assert.deepEqual(fmt('\\[$a\\]', '[sshd]'), { a: 'sshd' });
    assert.deepEqual(fmt('\\"$a\\"', '"x"'), { a: 'x' });
    assert.deepEqual(fmt('\\$$a', '$HOME'), { a: 'HOME' });
    assert.deepEqual(fmt('$a\\\\$b', 'dom\\user'), { a: 'dom', b: 'user' });
    assert.deepEqual(fmt('\\_ $a', '_ x'), { a: 'x' });
    assert.equal(fmt('\\_ $a', 'y x'), null, '\\_ is a literal underscore, not a skip');
  });

  test('literal text around and between captures must match; a capture stops at the first literal that lets the rest match', () => {
    assert.deepEqual(fmt('$host:$port', '10.0.0.1:8080'), { host: '10.0.0.1', port: '8080' });
    assert.deepEqual(fmt('$a:$b', 'x:y:z'), { a: 'x', b: 'y:z' });
    assert.deepEqual(fmt('pid=$pid', 'pid=42'), { pid: '42' });
    assert.equal(fmt('pid=$pid', 'uid=42'), null);
    assert.deepEqual(fmt('\\[$p\\]:', '[a]b]:'), { p: 'a]b' }, 'backtracks to the ] that ends the token');
    assert.deepEqual(fmt('\\[$p\\]', '[]'), { p: '' }, 'an empty capture between literals');
  });

  test('regex metacharacters in literals are literal', () => {
    assert.deepEqual(fmt('a.b*c+(d)?{e}|/$x', 'a.b*c+(d)?{e}|/1'), { x: '1' });
    assert.equal(fmt('a.b $x', 'aXb 1'), null);
  });
});

describe('quoted and bracketed captures', () => {
  test('"$request" captures a quoted field with spaces; \\" and \\\\ inside are decoded', () => {
    assert.deepEqual(fmt('$ip "$request" $status', '1.2.3.4 "GET / HTTP/1.1" 200'), { ip: '1.2.3.4', request: 'GET / HTTP/1.1', status: '200' });
    assert.deepEqual(fmt('"$ua"', '"say \\"hi\\" C:\\\\dir"'), { ua: 'say "hi" C:\\dir' });
    assert.deepEqual(fmt('"$a" "$b"', '"" "x"'), { a: '', b: 'x' });
    assert.equal(fmt('"$a" $b', '"unterminated x'), null);
  });

  test('[$time] captures a bracketed field with spaces', () => {
    assert.deepEqual(fmt('[$time] $x', '[10/Oct/2000:13:55:36 -0700] ok'), { time: '10/Oct/2000:13:55:36 -0700', x: 'ok' });
  });

  test('"_" and [_] skip such fields', () => {
    assert.deepEqual(fmt('$a "_" [_] $b', 'x "a b c" [d e] y'), { a: 'x', b: 'y' });
  });
});

describe('skips and the rest of the line', () => {
  test('_ skips exactly one token', () => {
    assert.deepEqual(fmt('_ $b _', 'a b c'), { b: 'b' });
    assert.equal(fmt('_ $b _', 'a b'), null);
  });

  test('$msg... captures the rest, spaces included, trailing blanks trimmed; possibly empty', () => {
    assert.deepEqual(fmt('$host $msg...', 'web1 Failed password for root  from 1.2.3.4  '), { host: 'web1', msg: 'Failed password for root  from 1.2.3.4' });
    assert.deepEqual(fmt('$host $msg...', 'web1'), { host: 'web1', msg: '' });
    assert.deepEqual(fmt('$all...', '  everything here'), { all: 'everything here' });
  });

  test('U+2028 and U+2029 are ordinary characters of a line, with or without something to escape', () => {
    assert.deepEqual(fmt('$host $msg...', 'web1 a\u2028b\u2029c'), { host: 'web1', msg: 'a\u2028b\u2029c' });
    assert.deepEqual(fmt('$host $msg...', 'web1 say "hi"\u2028there'), { host: 'web1', msg: 'say "hi"\u2028there' });
    assert.deepEqual(fmt('$a "$q" _...', 'x "a\\\u2028b" z\u2029'), { a: 'x', q: 'a\\\u2028b' });
  });

  test('_... ignores the rest, so longer lines match', () => {
    assert.deepEqual(fmt('$a _...', 'x y z'), { a: 'x' });
    assert.deepEqual(fmt('$a _...', 'x'), { a: 'x' });
  });
});

describe('types and constants', () => {
  test('int, float and bool convert; "-" is null; a value that does not convert makes the line not match', () => {
    const types = parseTypes(['port=int,ratio=float', 'ok=bool']);
    assert.deepEqual(fmt('$port $ratio $ok', '007 2.5e3 yes', { types }), { port: 7, ratio: 2500, ok: true });
    assert.deepEqual(fmt('$port $ratio $ok', '- - -', { types }), { port: null, ratio: null, ok: null });
    const f = new LineFormatter({ schema: '$port', types: parseTypes(['port=int']) });
    assert.equal(f.format('http'), null);
    assert.equal(f.lastMismatch.reason, 'port: "http" is not an int');
    assert.equal(convertValue('9007199254740993', 'int'), undefined, 'beyond 2^53 an int cannot be exact');
    assert.equal(convertValue('1.5', 'int'), undefined);
    assert.equal(convertValue('Infinity', 'float'), undefined);
  });

  test('--fields: several, repeated, values with "=" and escaped commas; typed constants', () => {
    const fields = parseAssignments(['machine=server,env=prod', 'url=a=b\\,c', 'machine=web'], '--fields');
    assert.deepEqual(fields, [
      ['machine', 'web'],
      ['env', 'prod'],
      ['url', 'a=b,c'],
    ]);
    assert.deepEqual(fmt('$x', 'v', { fields: [['n', '3']], types: parseTypes(['n=int']) }), { x: 'v', n: 3 });
    assert.deepEqual(fmt('_', 'v', { fields: [['only', 'const']] }), { only: 'const' }, 'a schema without captures still gives the constants');
    assert.deepEqual(fmt('_', 'v'), {});
  });

  test('bad --fields and --types are usage errors (exit code 2)', () => {
    const usage = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: unknown) => e instanceof UsageError && re.test(e.message));
    usage(() => parseAssignments(['machine'], '--fields'), /expected name=value/);
    usage(() => parseAssignments(['_id=x'], '--fields'), /not a field name/);
    usage(() => parseTypes(['port=integer']), /must be one of string, int, float, bool/);
    usage(() => new LineFormatter({ schema: '$ip', fields: [['ip', 'x']] }), /also captured/);
    usage(() => new LineFormatter({ schema: '$ip', types: parseTypes(['port=int']) }), /neither captured/);
    usage(() => new LineFormatter({ schema: '$ip', fields: [['n', 'x']], types: parseTypes(['n=int']) }), /n=x is not an int/);
  });
});

describe('JSON output', () => {
  test('values with quotes, backslashes and control characters are escaped; the output always parses', () => {
    const f = new LineFormatter({ schema: '$a $rest...' });
    for (const line of ['x\\y say"hi"', 'x a\tb', 'x \u0001\u001f', 'x é ü 😀', 'x {"json":"inside"}']) {
      const json = f.format(line);
      assert.ok(json !== null, line);
      const parsed = JSON.parse(json) as { a: string; rest: string };
      assert.equal(`${parsed.a} ${parsed.rest}`, line.replace(/\s+$/, ''));
    }
  });

  test('the plain fast path and the general path agree on every line', () => {
    const schemas = ['$a $b', '$h:$p _ $r...', '\\[$x\\] "$q" [$t] $z', '$k=$v'];
    const pieces = ['a', 'b:c', '"', '\\', '[x]', '"q q"', '[t t]', 'k=v', '\t', 'é', '=', ':', '""', '[]'];
    let compared = 0;
    for (const schema of schemas) {
      const { regex, plainRegex } = compileSchema(schema);
      for (let i = 0; i < 4000; i++) {
        let line = '';
        let n = i;
        for (let k = 0; k < 4; k++) {
          line += (k ? ' ' : '') + pieces[n % pieces.length];
          n = Math.floor(n / pieces.length) + k * 7;
        }
        const plain = plainRegex.exec(line);
        if (plain === null) continue;
        const full = regex.exec(line);
        assert.deepEqual([...plain], full && [...full], `${schema} on ${JSON.stringify(line)}`);
        compared++;
      }
    }
    assert.ok(compared > 100, `${compared} lines compared`);
  });
});

describe('schema errors', () => {
  test('each says where and what', () => {
    badSchema('', /the schema is empty/);
    badSchema('   ', /the schema is empty/);
    badSchema('$a $a', /\$a is captured twice/);
    badSchema('$a$b', /need a literal character between them/);
    badSchema('$', /followed by a name starting with a letter/);
    badSchema('$1x', /followed by a name starting with a letter/);
    badSchema('$_x', /followed by a name starting with a letter/);
    badSchema('$rest... $b', /must be the last token/);
    badSchema('x$rest...', /token of its own/);
    badSchema('[sshd]', /opens a bracketed capture/);
    badSchema('"$a', /must be closed by "/);
    badSchema('$a]', /write \\\] for a literal \]/);
    badSchema('abc\\', /must be followed by the character/);
    badSchema('"$a""$b"', /need a literal character between them/);
  });

  test('the error points at the character (1-based)', () => {
    assert.throws(() => compileSchema('$a $b [x]'), /at character 7/);
  });
});
