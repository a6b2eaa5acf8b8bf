// `couchlog report --format csv`: cells quoted as RFC 4180 says, and logged
// text that starts like a spreadsheet formula kept as text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatCsv } from '../../../../cli/report/format-report.js';

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
