// List functions that render any view of their design document: `csv` and
// `html` (a self-contained page: table plus inline SVG bar chart, no
// scripts, no external fonts). ES5 only. Column names come from the view
// metadata that serialization puts in place of __VIEW_META__; a view
// without metadata gets key_1..key_n and value.
// Each list sends its whole answer with one send(): PouchDB Server answers
// a list that sends several chunks with both Content-Length and
// Transfer-Encoding, which strict HTTP clients (undici, the ingress's
// proxy) rightly refuse.
//
//   /log_fail2ban/_design/report/_list/csv/attacks?group_level=4
//   /log_fail2ban/_design/report/_list/html/attacks?group_level=4

export function csvList(_head: unknown, req: ListRequest): void {
  var meta = __VIEW_META__[req.path[req.path.length - 1]!] || null;
  start({ headers: { 'Content-Type': 'text/csv; charset=utf-8' } });
  function cell(v: unknown): string {
    if (v === null || v === undefined) return '';
    var s = typeof v === 'object' ? JSON.stringify(v) : String(v);
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }
  function header(keyCount: number, mapped: boolean): string[] {
    var cols: string[] = [];
    for (var i = 0; i < keyCount; i++) cols.push(meta && meta.keys[i] ? meta.keys[i]! : 'key_' + (i + 1));
    if (mapped) cols.push('id');
    cols.push(meta ? (mapped ? meta.mapped : meta.reduced) : 'value');
    return cols;
  }
  var lines: string[] = [];
  var row: ViewRow | null;
  while ((row = getRow())) {
    var keys = Array.isArray(row.key) ? (row.key as unknown[]) : [row.key];
    var mapped = row.id !== undefined;
    if (lines.length === 0) lines.push(header(keys.length, mapped).join(','));
    var cells: string[] = [];
    for (var k = 0; k < keys.length; k++) cells.push(cell(keys[k]));
    if (mapped) cells.push(cell(row.id));
    cells.push(cell(row.value));
    lines.push(cells.join(','));
  }
  if (lines.length === 0) lines.push(header(meta ? meta.keys.length : 1, false).join(','));
  send(lines.join('\r\n') + '\r\n');
}

export function htmlList(_head: unknown, req: ListRequest): void {
  var view = req.path[req.path.length - 1]!;
  var meta = __VIEW_META__[view] || null;
  start({ headers: { 'Content-Type': 'text/html; charset=utf-8' } });
  function esc(v: unknown): string {
    if (v === null || v === undefined) return '';
    var s = typeof v === 'object' ? JSON.stringify(v) : String(v);
    return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  }
  var rows: ViewRow[] = [];
  var row: ViewRow | null;
  while ((row = getRow())) rows.push(row);
  var mapped = rows.length > 0 && rows[0]!.id !== undefined;
  var keyCount = rows.length > 0 ? (Array.isArray(rows[0]!.key) ? (rows[0]!.key as unknown[]).length : 1) : meta ? meta.keys.length : 1;
  var cols: string[] = [];
  for (var i = 0; i < keyCount; i++) cols.push(meta && meta.keys[i] ? meta.keys[i]! : 'key_' + (i + 1));
  if (mapped) cols.push('id');
  var valueName = meta ? (mapped ? meta.mapped : meta.reduced) : 'value';
  cols.push(valueName);

  var labels: string[] = [];
  var max = 0;
  var numeric = rows.length > 0;
  for (var r = 0; r < rows.length; r++) {
    var key = rows[r]!.key;
    labels.push(Array.isArray(key) ? (key as unknown[]).join(' ') : String(key));
    var v = rows[r]!.value;
    if (typeof v !== 'number') numeric = false;
    else if (v > max) max = v;
  }
  var query: string[] = [];
  for (var q in req.query) if (Object.prototype.hasOwnProperty.call(req.query, q)) query.push(q + '=' + req.query[q]);
  var title = req.path[0] + ' / ' + view + (query.length ? ' (' + query.join(', ') + ')' : '');

  var out: string[] = [];
  out.push('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>' + esc(title) + '</title>');
  out.push('<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin-top:1em}' +
    'td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}td.n{text-align:right}svg text{font:12px system-ui,sans-serif}' +
    '.bar{fill:#3b6fb6}</style></head><body>');
  out.push('<h1>' + esc(title) + '</h1><p>' + rows.length + ' rows</p>');
  if (numeric) {
    var barH = 18;
    var gap = 4;
    var labelW = 260;
    var chartW = 520;
    var height = rows.length * (barH + gap) + gap;
    out.push('<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="' + esc(valueName) + ' per row" width="' + (labelW + chartW + 80) + '" height="' + height + '">');
    for (var b = 0; b < rows.length; b++) {
      var val = rows[b]!.value as number;
      var w = max > 0 ? Math.max(1, Math.round((val / max) * chartW)) : 1;
      var yPos = gap + b * (barH + gap);
      out.push('<text x="' + (labelW - 6) + '" y="' + (yPos + barH - 5) + '" text-anchor="end">' + esc(labels[b]) + '</text>');
      out.push('<rect class="bar" x="' + labelW + '" y="' + yPos + '" width="' + w + '" height="' + barH + '"><title>' + esc(labels[b]) + ': ' + val + '</title></rect>');
      out.push('<text x="' + (labelW + w + 6) + '" y="' + (yPos + barH - 5) + '">' + val + '</text>');
    }
    out.push('</svg>');
  }
  out.push('<table><thead><tr>');
  for (var c = 0; c < cols.length; c++) out.push('<th>' + esc(cols[c]) + '</th>');
  out.push('</tr></thead><tbody>');
  for (var t = 0; t < rows.length; t++) {
    var rk = Array.isArray(rows[t]!.key) ? (rows[t]!.key as unknown[]) : [rows[t]!.key];
    out.push('<tr>');
    for (var j = 0; j < rk.length; j++) out.push('<td>' + esc(rk[j]) + '</td>');
    if (mapped) out.push('<td>' + esc(rows[t]!.id) + '</td>');
    out.push('<td class="n">' + esc(rows[t]!.value) + '</td></tr>');
  }
  out.push('</tbody></table></body></html>');
  send(out.join('\n'));
}
