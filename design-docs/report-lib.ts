// What the report pages (design-docs/lists.ts, run inside CouchDB) and
// `couchlog report` (cli/report/, run in Node) share: one function that
// returns the helpers, so that its serialized source can be put inside each
// list function (a list cannot import anything) and the CLI can call the
// very same code. ES5 only: CouchDB 3's JavaScript engines (SpiderMonkey
// 1.8.5 or QuickJS) and PouchDB Server's evaluate it.
//
// - rows keyed by dates show them as ISO 8601 (2026-02-27, 2026-02, 2026);
// - keys sort part by part: numbers as numbers, IP addresses as addresses
//   (IPv4 before IPv6, 35.x before 100.x), then other text;
// - `from`/`to` keep the rows whose date is in range, `top` the N highest
//   counts;
// - the caption says what is shown: "top 10 of 127 attackers, 292 bans,
//   2026-02-26 – 2026-03-03".

export interface ReportMetaSource {
  keys: string[];
  reduced: string;
  mapped: string;
  /** Index of `year` in the key; -1: no date. */
  dateAt: number;
  /** What one row is: [singular, plural]. */
  noun?: [string, string];
  /** What the count counts: [singular, plural]. */
  unit?: [string, string];
}

export interface ReportInputRow {
  key: unknown;
  value: unknown;
  id?: string;
}

export interface ReportQuery {
  top?: string;
  from?: string;
  to?: string;
  sort?: string;
  order?: string;
}

export interface ReportColumn {
  name: string;
  /** Right-aligned (every value a number). */
  numeric: boolean;
}

export interface ReportTableRow {
  cells: unknown[];
  /** The count (reduced rows), else null. */
  count: number | null;
  /** Key parts, dates merged: what the row is, as text. */
  label: string;
}

export interface ReportTable {
  columns: ReportColumn[];
  rows: ReportTableRow[];
  caption: string;
  /** Problems with the query parameters, said on the page. */
  notes: string[];
  sort: string;
  order: 'asc' | 'desc';
  /** Highest count shown (for bars). */
  max: number;
  reduced: boolean;
}

export interface ReportLib {
  compareValues(a: unknown, b: unknown): number;
  compareKeys(a: unknown[], b: unknown[]): number;
  ipSortKey(s: unknown): number[] | null;
  isoDate(parts: unknown[]): string | null;
  parseDay(s: string): number | null;
  caption(o: { shown: number; rows: number; total: number | null; top: number | null; noun: [string, string]; unit: [string, string]; range: string | null }): string;
  table(meta: ReportMetaSource | null, input: ReportInputRow[], query: ReportQuery): ReportTable;
  csvCell(v: unknown): string;
}

export function reportLib(): ReportLib {
  function ipv4(s: string): number[] | null {
    var m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
    if (!m) return null;
    var out = [4];
    for (var i = 1; i <= 4; i++) {
      var n = parseInt(m[i]!, 10);
      if (n > 255) return null;
      out.push(n);
    }
    return out;
  }
  function groups(x: string): number[] | null {
    if (x === '') return [];
    var parts = x.split(':');
    var out: number[] = [];
    for (var i = 0; i < parts.length; i++) {
      var p = parts[i]!;
      if (p.indexOf('.') >= 0 && i === parts.length - 1) {
        var v4 = ipv4(p);
        if (!v4) return null;
        out.push(v4[1]! * 256 + v4[2]!, v4[3]! * 256 + v4[4]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return null;
        out.push(parseInt(p, 16));
      }
    }
    return out;
  }
  function ipv6(s: string): number[] | null {
    if (s.indexOf(':') < 0 || !/^[0-9a-fA-F:.]+$/.test(s)) return null;
    var halves = s.split('::');
    if (halves.length > 2) return null;
    var head = groups(halves[0]!);
    var tail = halves.length === 2 ? groups(halves[1]!) : [];
    if (!head || !tail) return null;
    var fill = 8 - head.length - tail.length;
    if (halves.length === 1 ? fill !== 0 : fill < 1) return null;
    var out = [6].concat(head);
    for (var i = 0; i < fill; i++) out.push(0);
    return out.concat(tail);
  }
  /** [4, a, b, c, d] or [6, g1..g8]: IPv4 before IPv6, each in address order. */
  function ipSortKey(s: unknown): number[] | null {
    return typeof s === 'string' ? ipv4(s) || ipv6(s) : null;
  }
  function rank(v: unknown): number {
    if (v === null || v === undefined) return 0;
    if (typeof v === 'number') return 1;
    if (typeof v === 'string') return ipSortKey(v) ? 2 : 3;
    return 4;
  }
  function compareValues(a: unknown, b: unknown): number {
    var ra = rank(a);
    var rb = rank(b);
    if (ra !== rb) return ra - rb;
    if (ra === 1) return (a as number) - (b as number);
    if (ra === 2) {
      var ia = ipSortKey(a)!;
      var ib = ipSortKey(b)!;
      for (var i = 0; i < ia.length && i < ib.length; i++) if (ia[i] !== ib[i]) return ia[i]! - ib[i]!;
      return ia.length - ib.length;
    }
    var sa = ra === 3 ? (a as string) : JSON.stringify(a);
    var sb = ra === 3 ? (b as string) : JSON.stringify(b);
    return sa < sb ? -1 : sa > sb ? 1 : 0;
  }
  function compareKeys(a: unknown[], b: unknown[]): number {
    for (var i = 0; i < a.length && i < b.length; i++) {
      var c = compareValues(a[i], b[i]);
      if (c !== 0) return c;
    }
    return a.length - b.length;
  }
  function pad(n: number): string {
    return n < 10 ? '0' + n : String(n);
  }
  /** [2026, 2, 27] -> 2026-02-27; [2026, 2] -> 2026-02; [2026] -> 2026. */
  function isoDate(parts: unknown[]): string | null {
    if (parts.length === 0) return null;
    for (var i = 0; i < parts.length; i++) if (typeof parts[i] !== 'number') return null;
    var out = String(parts[0]);
    for (var j = 1; j < parts.length; j++) out += '-' + pad(parts[j] as number);
    return out;
  }
  /** 'YYYY-MM-DD' -> YYYYMMDD, or null when it is not a real date. */
  function parseDay(s: string): number | null {
    var m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
    if (!m) return null;
    var y = parseInt(m[1]!, 10);
    var mo = parseInt(m[2]!, 10);
    var d = parseInt(m[3]!, 10);
    if (mo < 1 || mo > 12 || d < 1 || d > new Date(Date.UTC(y, mo, 0)).getUTCDate()) return null;
    return y * 10000 + mo * 100 + d;
  }
  function plural(n: number, word: [string, string]): string {
    return n + ' ' + (n === 1 ? word[0] : word[1]);
  }
  function caption(o: { shown: number; rows: number; total: number | null; top: number | null; noun: [string, string]; unit: [string, string]; range: string | null }): string {
    var parts: string[] = [];
    parts.push((o.top !== null && o.shown < o.rows ? 'top ' + o.shown + ' of ' : '') + plural(o.rows, o.noun));
    if (o.total !== null) parts.push(plural(o.total, o.unit));
    if (o.range) parts.push(o.range);
    return parts.join(', ');
  }
  function table(meta: ReportMetaSource | null, input: ReportInputRow[], query: ReportQuery): ReportTable {
    var notes: string[] = [];
    var mapped = input.length > 0 && input[0]!.id !== undefined;
    var keyLen = 0;
    for (var r = 0; r < input.length; r++) {
      var k0 = input[r]!.key;
      var len = Array.isArray(k0) ? k0.length : k0 === null || k0 === undefined ? 0 : 1;
      if (len > keyLen) keyLen = len;
    }
    if (input.length === 0 && meta) keyLen = meta.keys.length;
    var names: string[] = [];
    for (var i = 0; i < keyLen; i++) names.push(meta && meta.keys[i] ? meta.keys[i]! : 'key_' + (i + 1));
    // Date parts (year, month, day) become one ISO date column.
    var dateAt = meta && meta.dateAt >= 0 && meta.dateAt < keyLen ? meta.dateAt : -1;
    var dateLen = dateAt >= 0 ? Math.min(3, keyLen - dateAt) : 0;
    var colNames: string[] = [];
    for (var c = 0; c < keyLen; c++) {
      if (c === dateAt) colNames.push('date');
      else if (c > dateAt && c < dateAt + dateLen) continue;
      else colNames.push(names[c]!);
    }
    if (mapped) colNames.push('id');
    var valueName = meta ? (mapped ? meta.mapped : meta.reduced) : 'value';
    colNames.push(valueName);

    var from = query.from ? parseDay(query.from) : null;
    var to = query.to ? parseDay(query.to) : null;
    if (query.from && from === null) notes.push('from must be a date as YYYY-MM-DD, got "' + query.from + '": ignored');
    if (query.to && to === null) notes.push('to must be a date as YYYY-MM-DD, got "' + query.to + '": ignored');
    if ((from !== null || to !== null) && dateLen < 3) {
      notes.push(
        meta && meta.dateAt >= 0
          ? 'from/to need rows with a whole date: ask group_level=' + (meta.dateAt + 3) + ' or more (from/to ignored)'
          : 'this view has no date in its key (from/to ignored)',
      );
      from = null;
      to = null;
    }
    var top: number | null = null;
    if (query.top !== undefined && query.top !== '') {
      if (/^\d+$/.test(query.top) && parseInt(query.top, 10) > 0) top = parseInt(query.top, 10);
      else notes.push('top must be a positive whole number, got "' + query.top + '": ignored');
    }

    var rows: ReportTableRow[] = [];
    var sortKeys: unknown[][] = [];
    var total = 0;
    var minDay: string | null = null;
    var maxDay: string | null = null;
    for (var t = 0; t < input.length; t++) {
      var row = input[t]!;
      var key: unknown[] = Array.isArray(row.key) ? row.key : row.key === null || row.key === undefined ? [] : [row.key];
      var cells: unknown[] = [];
      var sk: unknown[] = [];
      var labelParts: string[] = [];
      var iso: string | null = null;
      for (var p = 0; p < keyLen; p++) {
        if (p === dateAt) {
          iso = isoDate(key.slice(dateAt, dateAt + dateLen));
          cells.push(iso);
          sk.push(iso);
          if (iso !== null) labelParts.push(iso);
        } else if (p > dateAt && p < dateAt + dateLen) {
          continue;
        } else {
          var v = key[p];
          cells.push(v === undefined ? null : v);
          sk.push(v === undefined ? null : v);
          if (v !== null && v !== undefined) labelParts.push(typeof v === 'object' ? JSON.stringify(v) : String(v));
        }
      }
      if (dateLen === 3 && iso !== null && (from !== null || to !== null)) {
        var day = parseInt(iso.replace(/-/g, ''), 10);
        if ((from !== null && day < from) || (to !== null && day > to)) continue;
      }
      if (dateLen === 3 && iso !== null) {
        if (minDay === null || iso < minDay) minDay = iso;
        if (maxDay === null || iso > maxDay) maxDay = iso;
      }
      if (mapped) {
        cells.push(row.id);
        sk.push(row.id);
      }
      var count = !mapped && typeof row.value === 'number' ? row.value : null;
      cells.push(row.value === undefined ? null : row.value);
      sk.push(row.value);
      if (count !== null) total += count;
      rows.push({ cells: cells, count: count, label: labelParts.length ? labelParts.join(' · ') : 'all' });
      sortKeys.push(sk);
    }
    var reduced = !mapped && rows.length > 0 && rows[0]!.count !== null;
    var all = rows.length;

    // Which rows: the `top` highest counts (ties in key order).
    var idx: number[] = [];
    for (var x = 0; x < rows.length; x++) idx.push(x);
    if (top !== null && reduced) {
      idx.sort(function (a, b) {
        return rows[b]!.count! - rows[a]!.count! || compareKeys(sortKeys[a]!, sortKeys[b]!);
      });
      idx = idx.slice(0, top);
    }
    // In what order: by a column (sort=<name>, order=asc|desc); default the
    // counts highest first when `top` is given, else the key.
    var sortCol = -1;
    for (var s = 0; s < colNames.length; s++) if (colNames[s] === query.sort) sortCol = s;
    if (query.sort && sortCol < 0) notes.push('sort: no column "' + query.sort + '" (columns: ' + colNames.join(', ') + ')');
    var valueCol = colNames.length - 1;
    if (sortCol < 0) sortCol = top !== null && reduced ? valueCol : -1;
    var order: 'asc' | 'desc' = query.order === 'desc' || query.order === 'asc' ? query.order : sortCol === valueCol && reduced ? 'desc' : 'asc';
    var sign = order === 'desc' ? -1 : 1;
    idx.sort(function (a, b) {
      var c1 = sortCol >= 0 ? compareValues(sortKeys[a]![sortCol], sortKeys[b]![sortCol]) : 0;
      return sign * c1 || compareKeys(sortKeys[a]!, sortKeys[b]!) || a - b;
    });
    var shown: ReportTableRow[] = [];
    var max = 0;
    for (var y = 0; y < idx.length; y++) {
      var sr = rows[idx[y]!]!;
      shown.push(sr);
      if (sr.count !== null && sr.count > max) max = sr.count;
    }
    var columns: ReportColumn[] = [];
    for (var col = 0; col < colNames.length; col++) {
      var numeric = shown.length > 0;
      for (var q = 0; q < shown.length; q++) {
        var cell = shown[q]!.cells[col];
        if (cell !== null && typeof cell !== 'number') numeric = false;
      }
      if (col === valueCol && reduced) numeric = true;
      columns.push({ name: colNames[col]!, numeric: numeric });
    }
    var range: string | null = null;
    var lo = from !== null ? query.from! : minDay;
    var hi = to !== null ? query.to! : maxDay;
    if (lo !== null || hi !== null) range = lo === hi ? lo : (lo || '…') + ' – ' + (hi || '…');
    var noun: [string, string] = meta && meta.noun ? meta.noun : ['row', 'rows'];
    var unit: [string, string] = meta && meta.unit ? meta.unit : [valueName, valueName];
    if (keyLen === 0) noun = ['total', 'totals'];
    var text =
      keyLen === 0 && reduced
        ? plural(total, unit) + (range ? ', ' + range : '')
        : caption({ shown: shown.length, rows: all, total: reduced ? total : null, top: reduced ? top : null, noun: noun, unit: unit, range: range });
    return { columns: columns, rows: shown, caption: text, notes: notes, sort: sortCol >= 0 ? colNames[sortCol]! : '', order: order, max: max, reduced: reduced };
  }
  /**
   * One CSV cell (RFC 4180 quoting). Logged text starting like a formula (=, +, -, @, tab, CR,
   * LF; also after leading blanks or zero-width characters, which an import may trim, and in
   * their full-width forms) would run as one in a spreadsheet (CSV injection): a leading '
   * keeps it text. Plain numbers and "-" stay.
   */
  function csvCell(v: unknown): string {
    if (v === null || v === undefined) return '';
    var s = typeof v === 'object' ? JSON.stringify(v) : String(v);
    var formula = /^[\t\r\n]|^[\s\u200b-\u200d\u2060\ufeff]*[=+\-@\uff1d\uff0b\uff0d\uff20]/.test(s);
    if (typeof v !== 'number' && formula && !/^[+-]?\d+(\.\d+)?$/.test(s) && s !== '-') s = "'" + s;
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  return { compareValues: compareValues, compareKeys: compareKeys, ipSortKey: ipSortKey, isoDate: isoDate, parseDay: parseDay, caption: caption, table: table, csvCell: csvCell };
}
