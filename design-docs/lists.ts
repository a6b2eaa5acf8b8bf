// List functions that render any view of their design document: `csv` and
// `html` (one self-contained page: caption, a form for top/from/to, a
// sortable table whose last column is a bar chart; no scripts, no external
// styles or fonts). ES5 only. Column names and the caption's words come
// from the view metadata that serialization puts in place of __VIEW_META__;
// the helpers (sorting IPs as addresses, ISO dates, from/to, top, caption)
// are design-docs/report-lib.ts, put in place of __REPORT_LIB__, the same
// code `couchlog report` runs.
// Each list sends its whole answer with one send(): PouchDB Server answers
// a list that sends several chunks with both Content-Length and
// Transfer-Encoding, which strict HTTP clients (undici, the ingress's
// proxy) rightly refuse.
//
// Query parameters, besides the view's own (group_level, startkey, ...):
//   top=N                 the N rows with the highest counts
//   from=YYYY-MM-DD, to=  only rows whose date is in that range (inclusive)
//   sort=<column>, order=asc|desc
//
//   /log_fail2ban/_design/report/_list/html/attackers?group_level=5&top=10
//   /log_fail2ban/_design/report/_list/csv/attacks?group_level=4&from=2026-02-26

import type { ReportLib } from './report-lib.js';

declare global {
  /** Replaced with report-lib.ts's reportLib when serialized. */
  const __REPORT_LIB__: () => ReportLib;
}

export function csvList(_head: unknown, req: ListRequest): void {
  var lib = __REPORT_LIB__();
  var meta = __VIEW_META__[req.path[req.path.length - 1]!] || null;
  start({ headers: { 'Content-Type': 'text/csv; charset=utf-8' } });
  var input: ViewRow[] = [];
  var row: ViewRow | null;
  while ((row = getRow())) input.push(row);
  var t = lib.table(meta, input, req.query);
  var header: string[] = [];
  for (var c = 0; c < t.columns.length; c++) header.push(t.columns[c]!.name);
  var lines: string[] = [header.join(',')];
  for (var r = 0; r < t.rows.length; r++) {
    var cells: string[] = [];
    for (var k = 0; k < t.rows[r]!.cells.length; k++) cells.push(lib.csvCell(t.rows[r]!.cells[k]));
    lines.push(cells.join(','));
  }
  send(lines.join('\r\n') + '\r\n');
}

export function htmlList(_head: unknown, req: ListRequest): void {
  var lib = __REPORT_LIB__();
  var view = req.path[req.path.length - 1]!;
  var meta = __VIEW_META__[view] || null;
  start({ headers: { 'Content-Type': 'text/html; charset=utf-8' } });
  function esc(v: unknown): string {
    if (v === null || v === undefined) return '';
    var s = typeof v === 'object' ? JSON.stringify(v) : String(v);
    return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
  }
  /**
   * A logged value as page text: escaped, and with control characters and
   * bidi overrides shown as \u escapes (anyone can write a log value, and
   * U+202E would show "gnp.exe" as "exe.png"), as `couchlog report` does on a
   * terminal. Not for attribute values that must round-trip (form fields).
   */
  function shown(v: unknown): string {
    return esc(v).replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, function (c) {
      return '\\u' + ('000' + c.charCodeAt(0).toString(16)).slice(-4);
    });
  }
  var input: ViewRow[] = [];
  var row: ViewRow | null;
  while ((row = getRow())) input.push(row);
  var t = lib.table(meta, input, req.query);

  /** This page's query with some parameters changed (null drops one). */
  function link(changes: Record<string, string | null>): string {
    var parts: string[] = [];
    var q: string;
    for (q in req.query) {
      if (!Object.prototype.hasOwnProperty.call(req.query, q) || Object.prototype.hasOwnProperty.call(changes, q)) continue;
      if (req.query[q] === '') continue;
      parts.push(encodeURIComponent(q) + '=' + encodeURIComponent(req.query[q]!));
    }
    for (q in changes) if (Object.prototype.hasOwnProperty.call(changes, q) && changes[q] !== null) parts.push(encodeURIComponent(q) + '=' + encodeURIComponent(changes[q]!));
    return '?' + parts.join('&');
  }
  var db = req.path[0]!;
  var title = db + ' · ' + view;
  var out: string[] = [];
  out.push('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">');
  out.push('<meta name="viewport" content="width=device-width, initial-scale=1">');
  out.push('<title>' + esc(title + ' — ' + t.caption) + '</title>');
  out.push(
    '<style>' +
      'body{font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:16px;color:#1d2430;background:#fff}' +
      'h1{font-size:20px;margin:0 0 4px}p{margin:4px 0}.caption{font-size:16px;font-weight:600}.note{color:#a33}' +
      'form{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:end;margin:10px 0}label{display:flex;flex-direction:column;font-size:12px;color:#556}' +
      'input{font:inherit;padding:3px 6px;border:1px solid #bbc;border-radius:4px;width:9.5em}button{font:inherit;padding:4px 12px}' +
      '.wrap{overflow-x:auto;max-width:100%}table{border-collapse:collapse;margin-top:8px;min-width:min(100%,640px)}' +
      'th,td{border-bottom:1px solid #e2e5ea;padding:4px 10px;text-align:left;white-space:nowrap}th{background:#f3f5f8;position:sticky;top:0}' +
      'th a{color:inherit;text-decoration:none}th a:hover{text-decoration:underline}th.sorted a::after{content:" \\25BE"}th.sorted.asc a::after{content:" \\25B4"}' +
      '.n{text-align:right;font-variant-numeric:tabular-nums}.none{color:#889}td.bar{width:40%;min-width:90px}' +
      'td.bar span{display:block;height:12px;background:#3b6fb6;border-radius:2px}' +
      'footer{margin-top:12px;font-size:12px;color:#667}footer a{color:#3b6fb6}' +
      '@media (max-width:600px){body{padding:10px;font-size:14px}th,td{padding:3px 6px}td.bar{min-width:50px}}' +
      '</style></head><body>',
  );
  out.push('<h1>' + esc(title) + '</h1>');
  out.push('<p class="caption" id="caption">' + esc(t.caption) + '</p>');
  for (var n = 0; n < t.notes.length; n++) out.push('<p class="note">' + esc(t.notes[n]) + '</p>');

  // The form keeps the view's own parameters (group_level...) as hidden fields.
  out.push('<form method="get">');
  for (var h in req.query) {
    if (!Object.prototype.hasOwnProperty.call(req.query, h) || h === 'top' || h === 'from' || h === 'to') continue;
    out.push('<input type="hidden" name="' + esc(h) + '" value="' + esc(req.query[h]) + '">');
  }
  out.push('<label>top<input type="number" min="1" name="top" value="' + esc(req.query.top || '') + '" placeholder="all"></label>');
  if (meta && meta.dateAt >= 0) {
    out.push('<label>from<input type="date" name="from" value="' + esc(req.query.from || '') + '"></label>');
    out.push('<label>to<input type="date" name="to" value="' + esc(req.query.to || '') + '"></label>');
  }
  out.push('<button type="submit">show</button></form>');

  out.push('<div class="wrap"><table><thead><tr>');
  for (var c = 0; c < t.columns.length; c++) {
    var col = t.columns[c]!;
    var sorted = t.sort === col.name;
    var next = sorted ? (t.order === 'asc' ? 'desc' : 'asc') : col.numeric && c === t.columns.length - 1 ? 'desc' : 'asc';
    out.push(
      '<th class="' + (col.numeric ? 'n' : 't') + (sorted ? ' sorted ' + t.order : '') + '" data-col="' + esc(col.name) + '">' +
        '<a href="' + esc(link({ sort: col.name, order: next })) + '" title="sort by ' + esc(col.name) + '">' + esc(col.name) + '</a></th>',
    );
  }
  if (t.reduced) out.push('<th class="bar" aria-hidden="true"></th>');
  out.push('</tr></thead><tbody>');
  for (var r = 0; r < t.rows.length; r++) {
    var tr = t.rows[r]!;
    out.push('<tr>');
    for (var k = 0; k < tr.cells.length; k++) {
      var v = tr.cells[k];
      var cls = t.columns[k]!.numeric ? 'n' : 't';
      out.push(v === null || v === undefined ? '<td class="' + cls + ' none">(none)</td>' : '<td class="' + cls + '">' + shown(v) + '</td>');
    }
    if (t.reduced) {
      var pct = t.max > 0 && tr.count !== null ? Math.max(0.5, Math.round((tr.count / t.max) * 1000) / 10) : 0;
      out.push('<td class="bar"><span class="bar" style="width:' + pct + '%" title="' + shown(tr.label) + ': ' + esc(tr.count) + '"></span></td>');
    }
    out.push('</tr>');
  }
  if (t.rows.length === 0) out.push('<tr><td colspan="' + (t.columns.length + 1) + '" class="none">no rows</td></tr>');
  out.push('</tbody></table></div>');
  /**
   * One shell word: as it is when plain, else single-quoted. The values come
   * from the URL, and the line is there to be pasted into a terminal: a
   * crafted link (from=$(touch /tmp/x)) must not put a command in it.
   */
  function sh(v: unknown): string {
    var s = String(v);
    return /^[A-Za-z0-9_.:@%+=,\/-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'";
  }
  function opt(name: string, v: string | undefined): string {
    return v ? ' ' + name + ' ' + esc(sh(v)) : '';
  }
  out.push(
    '<footer>Sort by a column by clicking its name. The same rows as CSV: <a href="' + esc('../csv/' + encodeURIComponent(view) + link({})) + '">' + esc(view) + '.csv</a>. ' +
      'The terminal: <code>couchlog report ' + esc(sh(view)) + ' --app ' + esc(sh(db.replace(/^log_/, ''))) + opt('--group-level', req.query.group_level) +
      opt('--top', req.query.top) + opt('--from', req.query.from) + opt('--to', req.query.to) + '</code></footer>',
  );
  out.push('</body></html>');
  send(out.join('\n'));
}
