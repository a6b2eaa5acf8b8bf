// `couchlog report --format csv`: cells quoted as RFC 4180 says, and logged
// text that starts like a spreadsheet formula kept as text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatCsv, formatTable } from '../../../../cli/report/format-report.js';

const cols = { keys: ['machine', 'ip'], count: 'attacks' };

test('formatCsv quotes cells with commas, quotes and line breaks', () => {
  const csv = formatCsv([{ key: ['we,b "1"', 'a\nb'], count: 2 }], cols);
  assert.equal(csv, 'machine,ip,attacks\n"we,b ""1""","a\nb",2\n');
});

test('formatCsv keeps formula-like text as text; numbers, "-" and inner signs stay', () => {
  const rows = ['=1+1', '+cmd|calc', '@SUM(A1)', '-2+3', '\tx', '-', '-12.5', 'a=b', '10.0.0.1'].map((m, i) => ({ key: [m, null], count: i }));
  const machines = formatCsv(rows, cols)
    .trimEnd()
    .split('\n')
    .slice(1)
    .map((l) => l.split(',')[0]);
  assert.deepEqual(machines, ["'=1+1", "'+cmd|calc", "'@SUM(A1)", "'-2+3", "'\tx", '-', '-12.5', 'a=b', '10.0.0.1']);
  assert.equal(formatCsv([{ key: [-3, 4], count: 1 }], cols), 'machine,ip,attacks\n-3,4,1\n');
});

test('log values cannot drive the terminal: control characters and bidi overrides are shown as escapes in the table and CSV', () => {
  // Found by a black-box test: ESC, BEL and CR from a shipped value reached the terminal raw.
  const rows = [{ key: ['esc\u001b]0;PWNED\u0007', '1.2.3.9\r\u001b[2Kfake'], count: 1 }];
  const table = formatTable(rows, cols);
  assert.doesNotMatch(table, /[\u0000-\u0009\u000b-\u001f]/);
  assert.match(table, /esc\\x1b\]0;PWNED\\x07 +1\.2\.3\.9\\r\\x1b\[2Kfake/);
  assert.equal(formatCsv(rows, cols), 'machine,ip,attacks\nesc\\x1b]0;PWNED\\x07,"1.2.3.9\r\\x1b[2Kfake",1\n');
});
