// The live dashboard's browser code. It is serialized with toString() into
// the page (server/dashboard/page.ts), so it must not use anything from
// outside this function: no imports, no module-level names. Everything it
// reads goes through the ingress with the reader's own session cookie, to
// the same CouchDB routes Fauxton uses (/_session, /<db>, /<db>/_changes,
// /<db>/_all_docs, /<db>/_design/report/_view/...), so the ingress's checks
// apply as to any other reader request.
//
// How it stays cheap with 100,000 documents, or with documents of several MB:
//  - what it keeps of a document is a bounded summary made when the
//    document arrives (values cut to VALUE_CHARS, the line to LINE_CHARS),
//    never the document; pages of changes are sized by what they weigh
//    (PAGE_BYTES), so a few huge documents are read a few at a time;
//  - at load the count and the newest HEAD changes are read without their
//    documents and the board is live; then the documents come in weighed
//    batches, at most LOAD_BYTES in all (the latest list and the per-minute
//    rate), and then the totals' view;
//  - a change counts by the report view's own map function (`rules`, whose
//    source page.ts puts in the script: ./view-rules.ts), so the page and
//    the view agree; the day is the UTC date, as the documents' dates are;
//  - the day's totals come from the report views (already reduced inside
//    CouchDB), read with `stale=update_after&update_seq=true`, so a page
//    load never waits for an index build; the changes after the index's
//    own update_seq are then applied, which makes the figures exact:
//    view(seq S) + every change after S. The view's answer is read in pages
//    into tables of at most TALLY_KEYS keys; while the index is far behind
//    (more than CATCH_UP_LIMIT documents) the page says so and asks again;
//  - each id counts once: the page remembers what each id it applied added
//    (a bounded number of them), so a change delivered again changes
//    nothing, a later revision replaces its earlier one's contribution and
//    a deletion takes it away. A revision or deletion of a document from
//    before the view's position, whose former content the page never saw,
//    asks the view again. So does any change the feed brings: on a CouchDB
//    cluster sequences are opaque (no telling whether a change delivered
//    again is already in the view's figures), so the view's fresh answer
//    makes them exact again, at most every REBASE_MS (longer after a slow
//    read of the view);
//  - one long poll per page (an account may hold only
//    ingress.feeds.max_open_per_user of them): the views' catch-up reads
//    are plain pages. A 429 is retried after its Retry-After, with a delay
//    that only a successful poll resets;
//  - everything is bounded: 50 latest summaries, 30 minutes of rate,
//    TALLY_KEYS keys per table, the ids remembered; tables are sorted and
//    redrawn only when they changed.

export interface DashboardConfig {
  app: string;
  db: string;
  kind: 'fail2ban' | 'correlated' | 'plain';
}

/** The report views' map functions as the page runs them (./view-rules.ts): the keys each emits for a document. */
export interface DashboardRules {
  /** bans_by_day: [[year, month, day, machine, ip]] for a ban, [] otherwise. */
  ban: (doc: unknown) => unknown[][];
  /** by_ja4: [[ja4, year, month, day]] for a record with a fingerprint, [] otherwise. */
  ja4: (doc: unknown) => unknown[][];
}

export function dashboardClient(cfg: DashboardConfig, rules: DashboardRules): void {
  var CATCH_UP_LIMIT = 20000;
  var PAGE = 1000;
  var PAGE_BYTES = 4 * 1024 * 1024;
  var HEAD = 500;
  var LOAD_BYTES = 16 * 1024 * 1024;
  var LATEST = 50;
  var MINUTES = 30;
  var VALUE_CHARS = 200;
  var LINE_CHARS = 1024;
  var KEY_CHARS = 200;
  var TALLY_KEYS = 2000;
  var VIEW_PAGE = 5000;
  var VIEW_ROWS = 100000;
  var HEAD_IDS = 20000;
  var AGG_IDS = 10000;
  var REBASE_MS = 5000;
  var COUNT_SYNC_MS = 2000;
  var $ = function (id: string): HTMLElement {
    return document.getElementById(id)!;
  };
  type Doc = Record<string, unknown> & { _id: string; _rev?: string; _deleted?: boolean };
  type Change = { seq: unknown; id: string; deleted?: boolean; changes?: Array<{ rev: string }>; doc?: Doc | null };
  /** What the page keeps of one change: bounded whatever the document weighs. */
  type Entry = {
    id: string;
    rev: string;
    gen: number;
    seq: unknown;
    deleted: boolean;
    design: boolean;
    minute: number;
    kind: '' | 'c' | 'o';
    time: string;
    line: string;
    /** fail2ban: [day, machine, ip] of a ban; correlated: [ja4]; else null. */
    agg: string[] | null;
  };
  type Seen = { gen: number; rev: string; minute: number; kind: '' | 'c' | 'o'; deleted: boolean };
  type Item = { id: string; time: string; line: string; el: HTMLElement | null };
  /** Counts by key, at most `cap` keys: exact until full, then Space-Saving (a new key takes the smallest one's place and count). */
  type Tally = { cap: number; n: Record<string, number>; size: number; floor: number; version: number; top: Array<[string, number]>; topAt: number };
  type Base = { seq: unknown; day: string; bans: number; machines: Tally; ips: Tally; ja4: Tally; cut: boolean };

  // Counts keyed by logged values (machines, addresses, fingerprints): a
  // plain {} would read "constructor" or "toString" as Object's own, and
  // swallow "__proto__"; without a prototype every key is just a key.
  function counts(): Record<string, number> {
    return Object.create(null) as Record<string, number>;
  }
  function tally(cap: number): Tally {
    return { cap: cap, n: counts(), size: 0, floor: 0, version: 0, top: [], topAt: -1 };
  }

  var state = {
    user: null as string | null,
    docCount: 0,
    latest: [] as Item[],
    latestVersion: 0,
    perMinute: {} as Record<number, { docs: number; correlated: number; orphans: number }>,
    // What each recent id added to the minutes (newest last; at most HEAD_IDS).
    seen: new Map<string, Seen>(),
    // fail2ban: the day's (UTC) bans, per machine and per address.
    day: '',
    bans: 0,
    machines: tally(TALLY_KEYS),
    ips: tally(TALLY_KEYS),
    // correlated: fingerprints (all time).
    ja4: tally(TALLY_KEYS),
    // What each id applied since the view's position added to the totals.
    aggSeen: new Map<string, { gen: number; rev: string; key: string[] | null }>(),
    aggBase: null as unknown,
    aggReady: false,
    aggCut: false,
    headSince: null as unknown,
    // Minutes up to this one were only partly loaded (the newest 500 documents at load).
    partialUpTo: -1,
    // Of the newest changes at load, how many documents were left unread (past LOAD_BYTES).
    unread: 0,
    aggBehind: 0,
    aggMissing: false,
    generation: 0,
    connected: false,
    problem: '',
  };

  function pad(n: unknown): string {
    var s = String(n);
    return s.length < 2 ? '0' + s : s;
  }
  /** Today as the documents' dates say it: UTC, whatever the viewer's time zone. */
  function today(): string {
    return new Date().toISOString().slice(0, 10);
  }
  function seqNumber(seq: unknown): number {
    return parseInt(String(seq), 10) || 0;
  }
  function sleep(ms: number): Promise<void> {
    return new Promise(function (ok) {
      setTimeout(ok, ms);
    });
  }
  /** A delay spread by ±20%, so pages refused together do not come back together. */
  function jitter(ms: number): number {
    return Math.round(ms * (0.8 + Math.random() * 0.4));
  }
  function clip(s: string, n: number): string {
    return s.length > n ? s.slice(0, n) + '…' : s;
  }
  /** A logged value used as a table key: bounded, and the same text whether it came from a view row or a document. */
  function keyText(v: unknown): string {
    return clip(v === null || v === undefined ? '(none)' : String(v), KEY_CHARS);
  }

  class HttpError extends Error {
    constructor(
      public status: number,
      message: string,
      /** Seconds the server asked to wait (Retry-After), 0 if it did not. */
      public retryAfter: number,
    ) {
      super(message);
    }
  }
  function retryAfterOf(res: Response): number {
    var s = parseInt(res.headers.get('retry-after') || '', 10);
    return s > 0 ? Math.min(s, 3600) : 0;
  }
  /** A JSON GET (a POST of `post`, a read-only query); `bytes` is what the answer weighed (characters), which sizes the next page. */
  async function request(path: string, timeoutMs?: number, post?: unknown): Promise<{ body: any; bytes: number }> {
    var ctl = new AbortController();
    var timer = setTimeout(function () {
      ctl.abort();
    }, timeoutMs || 30000);
    var headers: Record<string, string> = { accept: 'application/json', 'x-requested-with': 'XMLHttpRequest' };
    if (post !== undefined) headers['content-type'] = 'application/json';
    try {
      var res = await fetch(path, {
        method: post === undefined ? 'GET' : 'POST',
        credentials: 'same-origin',
        headers: headers,
        body: post === undefined ? undefined : JSON.stringify(post),
        signal: ctl.signal,
      });
      var raw = await res.text();
      var body: any = null;
      try {
        body = JSON.parse(raw);
      } catch {
        body = null;
      }
      if (!res.ok) throw new HttpError(res.status, (body && (body.reason || body.error)) || 'HTTP ' + res.status, retryAfterOf(res));
      return { body: body, bytes: raw.length };
    } finally {
      clearTimeout(timer);
    }
  }
  async function get(path: string, timeoutMs?: number): Promise<any> {
    return (await request(path, timeoutMs)).body;
  }
  var dbPath = '/' + encodeURIComponent(cfg.db);

  // Pages are sized by what they weigh: after a page over PAGE_BYTES the
  // next asks for proportionally fewer documents (down to one); a full
  // light page lets the next grow towards PAGE_BYTES, at most fourfold (a
  // light page says little about the documents after it). A page the
  // server cannot answer at all (PouchDB Server fails with "Invalid string
  // length" past about 512 MB) is asked again at half the size.
  function nextLimit(limit: number, n: number, bytes: number): number {
    var fit = Math.floor((Math.max(n, 1) * PAGE_BYTES) / Math.max(bytes, 1));
    if (bytes > PAGE_BYTES) return Math.max(1, fit);
    return n >= limit ? Math.max(limit, Math.min(PAGE, limit * 4, fit)) : limit;
  }
  function tooBig(err: unknown, limit: number): boolean {
    return err instanceof HttpError && err.status >= 500 && limit > 1;
  }
  /** `longpollMs` 0: a plain read; else a long poll ended by the server after that long without a change. */
  function changesUrl(since: unknown, limit: number, longpollMs: number): string {
    return (
      dbPath +
      '/_changes?include_docs=true&limit=' +
      limit +
      '&since=' +
      encodeURIComponent(String(since)) +
      (longpollMs ? '&feed=longpoll&timeout=' + longpollMs : '')
    );
  }

  // ---- what the page keeps of a document ----------------------------------
  // Logged values as text: control characters and bidi overrides shown as
  // \u escapes (anyone can write a log value, and U+202E would show
  // "gnp.exe" as "exe.png"), as `couchlog report` does on a terminal.
  function shown(s: string): string {
    return s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, function (c) {
      return '\\u' + ('000' + c.charCodeAt(0).toString(16)).slice(-4);
    });
  }
  /** A value as JSON-like text of at most about n characters: never serializes more than that of a big value. */
  function brief(v: unknown, n: number): string {
    if (typeof v === 'string') return clip(v, n);
    if (v === null || typeof v !== 'object') return String(v);
    var isArray = Array.isArray(v);
    var out = isArray ? '[' : '{';
    var o = v as Record<string, unknown>;
    for (var k in o) {
      if (out.length >= n) break;
      var item = typeof o[k] === 'string' ? JSON.stringify(clip(o[k] as string, n)) : brief(o[k], n - out.length);
      out += (out.length > 1 ? ',' : '') + (isArray ? '' : JSON.stringify(clip(k, n)) + ':') + item;
    }
    return clip(out + (isArray ? ']' : '}'), n);
  }
  /** The summary line of the latest list: at most 8 fields, each value cut to VALUE_CHARS, the line to LINE_CHARS. */
  function lineOf(doc: Doc): string {
    var parts: string[] = [];
    var length = 0;
    for (var k in doc) {
      if (k === '_id' || k === '_rev' || k === 'received_at') continue;
      var part = clip(k, 64) + '=' + brief(doc[k], VALUE_CHARS);
      parts.push(part);
      length += part.length + 2;
      if (parts.length >= 8 || length >= LINE_CHARS) break;
    }
    return shown(clip(parts.join('  '), LINE_CHARS));
  }
  // When a document happened: when the ingress received it, else (a
  // correlated record: the correlator writes none) the request's own
  // timestamp, else when the record was decided. Only a document with none
  // of them is placed now.
  function timeFieldOf(doc: Doc): string {
    var names = ['received_at', 'timestamp', 'decided_at'];
    for (var i = 0; i < names.length; i++) {
      var v = doc[names[i]!];
      if (typeof v === 'string' && v.length <= 64 && !isNaN(Date.parse(v))) return v;
    }
    return '';
  }
  function minuteOf(time: string): number {
    return Math.floor((time ? Date.parse(time) : Date.now()) / 60000);
  }
  /** What the document adds to the totals, by the view's own rule. */
  function aggKeyOf(doc: Doc): string[] | null {
    if (cfg.kind === 'fail2ban') {
      var b = rules.ban(doc)[0];
      return b ? [b[0] + '-' + pad(b[1]) + '-' + pad(b[2]), keyText(b[3]), keyText(b[4])] : null;
    }
    if (cfg.kind === 'correlated') {
      var j = rules.ja4(doc)[0];
      return j ? [keyText(j[0])] : null;
    }
    return null;
  }
  /** The change as the page keeps it; the document itself is dropped after this. */
  function compact(ch: Change): Entry {
    var doc = ch.doc;
    var rev = (doc && typeof doc._rev === 'string' && doc._rev) || (ch.changes && ch.changes[0] && ch.changes[0].rev) || '';
    var e: Entry = {
      id: ch.id,
      rev: rev,
      gen: parseInt(rev, 10) || 0,
      seq: ch.seq,
      deleted: !!ch.deleted || !!(doc && doc._deleted),
      design: ch.id.indexOf('_design/') === 0,
      minute: 0,
      kind: '',
      time: '',
      line: '',
      agg: null,
    };
    if (e.deleted || e.design || !doc) return e;
    var t = timeFieldOf(doc);
    e.minute = minuteOf(t);
    e.kind = doc.correlated === true ? 'c' : doc.correlated === false ? 'o' : '';
    e.time = t.replace('T', ' ').slice(0, 19);
    e.line = lineOf(doc);
    e.agg = aggKeyOf(doc);
    return e;
  }

  // ---- tables of counts -----------------------------------------------------
  function evictSmallest(t: Tally): number {
    var smallest = '';
    var min = Infinity;
    for (var k in t.n)
      if (t.n[k]! < min) {
        min = t.n[k]!;
        smallest = k;
      }
    delete t.n[smallest];
    t.size--;
    return min;
  }
  function tallyAdd(t: Tally, key: string, delta: number): void {
    t.version++;
    var have = t.n[key];
    if (have !== undefined) {
      if (have + delta > 0) t.n[key] = have + delta;
      else {
        delete t.n[key];
        t.size--;
      }
      return;
    }
    if (delta <= 0) return;
    var start = 0;
    if (t.size >= t.cap) {
      start = evictSmallest(t);
      // Every count shown may be up to this much too high from now on.
      if (start > t.floor) t.floor = start;
    }
    t.n[key] = start + delta;
    t.size++;
  }
  /** The n largest, sorted again only when the table changed. */
  function tallyTop(t: Tally, n: number): Array<[string, number]> {
    if (t.topAt === t.version && t.top.length <= n) return t.top;
    var rows: Array<[string, number]> = [];
    for (var k in t.n) rows.push([k, t.n[k]!]);
    rows.sort(function (a, b) {
      return b[1] - a[1] || (a[0] < b[0] ? -1 : 1);
    });
    t.top = rows.slice(0, n);
    t.topAt = t.version;
    return t.top;
  }

  // ---- rendering --------------------------------------------------------
  function fmt(n: number): string {
    return n.toLocaleString('en-US');
  }
  function text(el: HTMLElement, s: string): void {
    if (el.textContent !== s) el.textContent = s;
  }
  function barRow(key: string, value: number, max: number): HTMLElement {
    var tr = document.createElement('tr');
    var k = document.createElement('td');
    k.className = 't';
    k.textContent = shown(key);
    var v = document.createElement('td');
    v.className = 'n';
    v.textContent = fmt(value);
    var b = document.createElement('td');
    b.className = 'bar';
    var span = document.createElement('span');
    span.style.width = (max > 0 ? Math.max(1, Math.round((value / max) * 100)) : 0) + '%';
    b.appendChild(span);
    tr.appendChild(k);
    tr.appendChild(v);
    tr.appendChild(b);
    return tr;
  }
  function renderBars(el: HTMLElement, rows: Array<[string, number]>, empty: string): void {
    var max = 0;
    for (var i = 0; i < rows.length; i++) if (rows[i]![1] > max) max = rows[i]![1];
    var frag = document.createDocumentFragment();
    for (var j = 0; j < rows.length; j++) frag.appendChild(barRow(rows[j]![0], rows[j]![1], max));
    if (rows.length === 0) {
      var none = document.createElement('tr');
      var td = document.createElement('td');
      td.colSpan = 3;
      td.className = 'none';
      td.textContent = empty;
      none.appendChild(td);
      frag.appendChild(none);
    }
    el.replaceChildren(frag);
  }
  // Which table state each element shows: a table is redrawn only when it changed.
  var drawn: Record<string, { t: Tally | null; v: number; cut: boolean }> = {};
  function renderTally(id: string, t: Tally, n: number, empty: string, noun: string): void {
    var d = drawn[id];
    if (d && d.t === t && d.v === t.version && d.cut === state.aggCut) return;
    drawn[id] = { t: t, v: t.version, cut: state.aggCut };
    renderBars($(id), tallyTop(t, n), empty);
    text(
      $(id + '-note'),
      t.floor > 0
        ? 'more than ' + fmt(t.cap) + ' ' + noun + ': approximate, a count may be up to ' + fmt(t.floor) + ' too high'
        : state.aggCut
          ? 'more than ' + fmt(VIEW_ROWS) + ' rows: only those were read'
          : '',
    );
  }
  function renderRate(now: number): void {
    var max = 1;
    for (var m = now - MINUTES + 1; m <= now; m++) if (state.perMinute[m] && state.perMinute[m]!.docs > max) max = state.perMinute[m]!.docs;
    var html: string[] = [];
    for (var i = now - MINUTES + 1; i <= now; i++) {
      var c = state.perMinute[i] || { docs: 0, correlated: 0, orphans: 0 };
      var h = Math.round((c.docs / max) * 100);
      var label =
        new Date(i * 60000).toTimeString().slice(0, 5) +
        ': ' +
        c.docs +
        (i <= state.partialUpTo ? '+' : '') +
        ' documents' +
        (cfg.kind === 'correlated' ? ', ' + c.correlated + ' correlated, ' + c.orphans + ' orphans' : '');
      html.push('<div class="col" title="' + label + '"><span style="height:' + h + '%"></span></div>');
    }
    $('rate').innerHTML = html.join('');
    var cur = state.perMinute[now] || { docs: 0, correlated: 0, orphans: 0 };
    var prev = state.perMinute[now - 1] || { docs: 0, correlated: 0, orphans: 0 };
    // A minute only partly loaded says so: "501+".
    text($('this-minute'), fmt(cur.docs) + (now <= state.partialUpTo ? '+' : ''));
    text($('last-minute'), fmt(prev.docs) + (now - 1 <= state.partialUpTo ? '+' : ''));
  }
  function renderCorrelated(now: number): void {
    var corr = 0;
    var orph = 0;
    for (var j = now - MINUTES + 1; j <= now; j++) {
      var cc = state.perMinute[j];
      if (cc) {
        corr += cc.correlated;
        orph += cc.orphans;
      }
    }
    text($('correlated'), fmt(corr));
    text($('orphans'), fmt(orph));
    text($('orphan-share'), corr + orph > 0 ? Math.round((orph / (corr + orph)) * 100) + '%' : '–');
    renderTally('ja4', state.ja4, 10, 'no fingerprints yet', 'fingerprints');
  }
  function renderBans(): void {
    text($('day'), state.day ? state.day + ' (UTC)' : '');
    text($('bans-today'), fmt(state.bans));
    renderTally('machines', state.machines, 20, 'no bans today', 'machines');
    renderTally('attackers', state.ips, 10, 'no bans today', 'addresses');
  }
  var latestDrawn = -1;
  function itemEl(item: Item): HTMLElement {
    if (item.el) return item.el;
    var li = document.createElement('li');
    var time = document.createElement('time');
    time.textContent = item.time;
    var body = document.createElement('code');
    body.textContent = item.line;
    li.appendChild(time);
    li.appendChild(body);
    li.dataset.id = item.id;
    return (item.el = li);
  }
  /** The list's elements are made once per document and only moved after. */
  function renderLatest(): void {
    if (latestDrawn === state.latestVersion) return;
    latestDrawn = state.latestVersion;
    var list = $('latest');
    if (state.latest.length === 0 && !state.unread) list.innerHTML = '<li class="none">no documents yet</li>';
    else list.replaceChildren(...state.latest.map(itemEl));
    if (state.unread > 0 && state.latest.length < LATEST) {
      var more = document.createElement('li');
      more.className = 'none';
      more.textContent = fmt(state.unread) + ' older documents not read: the page reads at most ' + LOAD_BYTES / 1048576 + ' MB of documents when it opens';
      list.appendChild(more);
    }
  }
  function renderStatus(): void {
    var status = $('status');
    status.className = state.connected ? 'live' : 'down';
    text(status, state.connected ? 'live' : state.problem);
    text(
      $('index-note'),
      state.aggMissing
        ? 'the report views are missing or out of date: an admin runs couchlog setup'
        : state.aggBehind > CATCH_UP_LIMIT
          ? 'report index building: ' + fmt(state.aggBehind) + ' documents behind; the totals fill in as it catches up'
          : state.aggBehind < 0
            ? 'report totals loading…'
            : '',
    );
  }
  var dirty = false;
  function render(): void {
    dirty = false;
    var now = Math.floor(Date.now() / 60000);
    text($('doc-count'), fmt(state.docCount));
    renderRate(now);
    if (cfg.kind === 'correlated') renderCorrelated(now);
    if (cfg.kind === 'fail2ban') renderBans();
    renderLatest();
    renderStatus();
  }
  function changed(): void {
    if (!dirty) {
      dirty = true;
      requestAnimationFrame(render);
    }
  }

  // ---- what one change adds: each id once --------------------------------
  function countMinute(s: Seen, sign: number): void {
    if (s.deleted) return;
    var c = state.perMinute[s.minute] || (state.perMinute[s.minute] = { docs: 0, correlated: 0, orphans: 0 });
    c.docs += sign;
    if (s.kind === 'c') c.correlated += sign;
    else if (s.kind === 'o') c.orphans += sign;
  }
  function countDocument(prev: Seen | undefined, e: Entry): void {
    if (e.deleted) {
      if (!prev || !prev.deleted) state.docCount--;
    } else if (prev ? prev.deleted : e.gen === 1) state.docCount++;
  }
  function applyLatest(e: Entry): void {
    for (var i = 0; i < state.latest.length; i++)
      if (state.latest[i]!.id === e.id) {
        state.latest.splice(i, 1);
        break;
      }
    if (!e.deleted) state.latest.unshift({ id: e.id, time: e.time, line: e.line, el: null });
    if (state.latest.length > LATEST) state.latest.length = LATEST;
    state.latestVersion++;
  }
  /**
   * The minutes, the count and the list. A revision already applied (a
   * change delivered again, or read both at load and live) or older than
   * the one applied changes nothing; a newer one replaces its contribution.
   */
  function applyHead(e: Entry, live: boolean): void {
    if (e.design) return;
    var prev = state.seen.get(e.id);
    if (prev && (e.gen < prev.gen || e.rev === prev.rev)) return;
    if (prev) countMinute(prev, -1);
    var now: Seen = { gen: e.gen, rev: e.rev, minute: e.deleted ? Math.floor(Date.now() / 60000) : e.minute, kind: e.kind, deleted: e.deleted };
    countMinute(now, 1);
    state.seen.delete(e.id);
    state.seen.set(e.id, now);
    if (state.seen.size > HEAD_IDS) state.seen.delete(state.seen.keys().next().value as string);
    if (!live) return;
    countDocument(prev, e);
    applyLatest(e);
  }
  function contribution(e: Entry): string[] | null {
    if (e.deleted || !e.agg) return null;
    if (cfg.kind === 'fail2ban') return e.agg[0] === state.day ? [e.agg[1]!, e.agg[2]!] : null;
    return e.agg;
  }
  function addContribution(key: string[] | null, sign: number): void {
    if (!key) return;
    if (cfg.kind === 'fail2ban') {
      state.bans += sign;
      tallyAdd(state.machines, key[0]!, sign);
      tallyAdd(state.ips, key[1]!, sign);
    } else tallyAdd(state.ja4, key[0]!, sign);
  }
  /** Already in the view's figures (a change up to its update_seq, delivered again). */
  function inBase(seq: unknown): boolean {
    var s = seqNumber(seq);
    var b = seqNumber(state.aggBase);
    return s > 0 && b > 0 && s <= b;
  }
  /** The totals: view(seq S) + each change after S, each id once. */
  function applyAgg(e: Entry): void {
    if (!state.aggReady || e.design || inBase(e.seq)) return;
    var prev = state.aggSeen.get(e.id);
    if (prev && (e.gen < prev.gen || e.rev === prev.rev)) return;
    // A later revision, or a deletion, of a document the view counted: what
    // it counted is not known here, the view is asked again.
    if (!prev && (e.deleted || e.gen > 1)) return requestRebase();
    var key = contribution(e);
    if (prev) addContribution(prev.key, -1);
    addContribution(key, 1);
    state.aggSeen.set(e.id, { gen: e.gen, rev: e.rev, key: key });
    if (state.aggSeen.size > AGG_IDS) requestRebase();
  }
  function pruneMinutes(): void {
    var oldest = Math.floor(Date.now() / 60000) - MINUTES;
    for (var k in state.perMinute) if (Number(k) < oldest) delete state.perMinute[k];
  }

  // ---- the document count, made exact again now and then ------------------
  async function countDocs(): Promise<{ count: number; seq: unknown }> {
    var info = await get(dbPath);
    // doc_count includes the design documents: they are not logs.
    var ddocs = await get(dbPath + '/_all_docs?startkey=%22_design%2F%22&endkey=%22_design0%22');
    return { count: info.doc_count - ((ddocs && ddocs.rows) || []).length, seq: info.update_seq };
  }
  var countTimer: ReturnType<typeof setTimeout> | null = null;
  // Counting changes goes wrong when one is delivered again or deletes a
  // document the page never saw: the server's count replaces it, taken
  // when the feed stands exactly at the count's position.
  function scheduleCountSync(): void {
    if (countTimer === null) countTimer = setTimeout(syncCount, COUNT_SYNC_MS);
  }
  async function syncCount(): Promise<void> {
    var gen = state.generation;
    try {
      var c = await countDocs();
      if (gen === state.generation && seqNumber(c.seq) === seqNumber(state.headSince)) {
        state.docCount = c.count;
        changed();
      }
    } catch {
      // The feed reports failures; the next batch asks again.
    } finally {
      countTimer = null;
    }
  }

  // ---- loading -----------------------------------------------------------
  /** The documents of these changes as entries, and what the answer weighed; the documents are dropped once summarized. */
  async function loadBatch(batch: Change[]): Promise<{ entries: Entry[]; bytes: number }> {
    var keys = batch.map(function (c) {
      return c.id;
    });
    // POST: a long key list does not fit in a URL.
    var r = await request(dbPath + '/_all_docs?include_docs=true', 60000, { keys: keys });
    var rows: Array<{ id?: string; value?: { rev: string; deleted?: boolean }; doc?: Doc | null }> = r.body.rows || [];
    var entries: Entry[] = [];
    for (var j = 0; j < rows.length; j++) {
      var row = rows[j]!;
      if (!row.id || !row.value) continue;
      entries.push(compact({ id: row.id, seq: batch[j]!.seq, deleted: !!row.value.deleted, changes: [{ rev: row.value.rev }], doc: row.doc }));
    }
    return { entries: entries, bytes: r.bytes };
  }
  /** A document read at load: after anything the feed brought (which is newer), at the end of the list. */
  function addLoaded(e: Entry): void {
    var prev = state.seen.get(e.id);
    if (e.design || (prev && e.gen <= prev.gen)) return;
    applyHead(e, false);
    if (e.deleted || state.latest.length >= LATEST) return;
    state.latest.push({ id: e.id, time: e.time, line: e.line, el: null });
    state.latestVersion++;
  }
  /**
   * The latest list and the minutes, from the documents of the newest
   * changes: newest first, in weighed batches, at most LOAD_BYTES in all
   * (documents of several MB each would otherwise cost every reader that
   * much at each page load). The board is live meanwhile.
   */
  async function fillHead(gen: number, changes: Change[], full: boolean): Promise<void> {
    // Small at first: the first answer tells what the documents weigh.
    var limit = 2;
    var read = 0;
    var oldest = Infinity;
    var backoff = 500;
    var i = 0;
    // Until the documents are read, every minute may hold more than is shown.
    if (full) state.partialUpTo = Math.floor(Date.now() / 60000);
    $('latest').setAttribute('aria-busy', 'true');
    while (i < changes.length && read < LOAD_BYTES && gen === state.generation) {
      var batch = changes.slice(i, i + limit);
      try {
        var got = await loadBatch(batch);
      } catch (err) {
        if (gen !== state.generation || (err instanceof HttpError && (err.status === 401 || err.status === 403))) return; // the feed says so
        if (tooBig(err, limit)) limit = Math.max(1, limit >> 1);
        else {
          await sleep(jitter(Math.max(backoff, err instanceof HttpError ? err.retryAfter * 1000 : 0)));
          backoff = Math.min(backoff * 2, 5000);
        }
        continue;
      }
      if (gen !== state.generation) return;
      for (var j = 0; j < got.entries.length; j++) {
        addLoaded(got.entries[j]!);
        if (!got.entries[j]!.deleted && got.entries[j]!.minute < oldest) oldest = got.entries[j]!.minute;
      }
      read += got.bytes;
      i += batch.length;
      limit = Math.min(100, nextLimit(limit, batch.length, got.bytes));
      changed();
    }
    if (gen !== state.generation) return;
    // Minutes up to the oldest document read may hold more than was read.
    if (full || i < changes.length) state.partialUpTo = oldest === Infinity ? Math.floor(Date.now() / 60000) : oldest;
    state.unread = changes.length - i;
    state.latestVersion++;
    $('latest').removeAttribute('aria-busy');
    changed();
  }
  /** The count and the ids of the newest changes (without their documents, which may weigh MB each): the board can go live. */
  async function loadHead(gen: number): Promise<{ changes: Change[]; full: boolean } | null> {
    var c = await countDocs();
    var recent = await get(dbPath + '/_changes?descending=true&limit=' + HEAD);
    if (gen !== state.generation) return null;
    state.docCount = c.count;
    state.perMinute = {};
    state.seen = new Map();
    state.latest = [];
    state.latestVersion++;
    state.partialUpTo = -1;
    state.unread = 0;
    state.headSince = c.seq;
    var changes: Change[] = (recent.results || []).filter(function (ch: Change) {
      return !ch.deleted && ch.id.indexOf('_design/') !== 0;
    });
    return { changes: changes, full: (recent.results || []).length >= HEAD };
  }
  async function viewRows(
    view: string,
    params: Record<string, unknown>,
    stale: string,
  ): Promise<{ rows: Array<{ key: any; value: number }>; update_seq: unknown }> {
    var q: string[] = ['update_seq=true'];
    if (stale) q.push('stale=' + stale);
    for (var k in params)
      q.push(
        k + '=' + encodeURIComponent(typeof params[k] === 'string' && k !== 'startkey' && k !== 'endkey' ? (params[k] as string) : JSON.stringify(params[k])),
      );
    return get(dbPath + '/_design/report/_view/' + view + '?' + q.join('&'), 60000);
  }
  /**
   * A grouped view read in pages of VIEW_PAGE rows, all at one index state
   * (the first page's; the others with stale=ok), at most VIEW_ROWS rows:
   * `cut` says more were left. `fresh` waits for the index to take in every
   * change so far; otherwise the index is read as it stands.
   */
  async function viewPages(
    view: string,
    params: Record<string, unknown>,
    fresh: boolean,
    fold: (row: { key: any; value: number }) => void,
  ): Promise<{ seq: unknown; cut: boolean }> {
    var seq: unknown = null;
    var read = 0;
    for (;;) {
      var p: Record<string, unknown> = {};
      for (var k in params) p[k] = params[k];
      p.limit = VIEW_PAGE + 1;
      var res = await viewRows(view, p, read === 0 ? (fresh ? '' : 'update_after') : 'ok');
      if (read === 0) seq = res.update_seq;
      else if (seqNumber(res.update_seq) !== seqNumber(seq)) throw new HttpError(503, 'the report index moved while it was read', 1);
      var rows = res.rows || [];
      for (var i = 0; i < rows.length && i < VIEW_PAGE; i++) fold(rows[i]!);
      read += Math.min(rows.length, VIEW_PAGE);
      if (rows.length <= VIEW_PAGE) return { seq: seq, cut: false };
      params = Object.assign({}, params, { startkey: rows[VIEW_PAGE]!.key });
      if (read >= VIEW_ROWS || JSON.stringify(params.startkey).length > 2000) return { seq: seq, cut: true };
    }
  }
  /** The day's (or all time's) totals from the views: what the page counts changes onto. */
  async function loadBase(fresh: boolean): Promise<Base> {
    var b: Base = { seq: null, day: today(), bans: 0, machines: tally(TALLY_KEYS), ips: tally(TALLY_KEYS), ja4: tally(TALLY_KEYS), cut: false };
    var r;
    if (cfg.kind === 'fail2ban') {
      var ymd = b.day.split('-').map(Number);
      var range = { group_level: '5', startkey: ymd, endkey: ymd.concat([{}] as never[]) };
      r = await viewPages('bans_by_day', range, fresh, function (row) {
        b.bans += row.value;
        tallyAdd(b.machines, keyText(row.key[3]), row.value);
        tallyAdd(b.ips, keyText(row.key[4]), row.value);
      });
      if (r.cut) {
        var total = await viewRows('bans_by_day', { group_level: '3', startkey: ymd, endkey: ymd.concat([{}] as never[]) }, 'ok');
        b.bans = total.rows.length ? total.rows[0]!.value : b.bans;
      }
    } else {
      r = await viewPages('by_ja4', { group_level: '1' }, fresh, function (row) {
        tallyAdd(b.ja4, keyText(row.key[0]), row.value);
      });
    }
    b.seq = r.seq;
    b.cut = r.cut;
    return b;
  }

  // ---- the totals' base: loaded at start, loaded again when needed ---------
  // `interval`: at least REBASE_MS between reads of the view, and ten times what the last read took (at most a minute).
  var agg = { gen: 0, timer: null as ReturnType<typeof setTimeout> | null, running: false, again: false, last: 0, interval: REBASE_MS };
  function resetAgg(): void {
    agg.gen++;
    if (agg.timer !== null) clearTimeout(agg.timer);
    agg.timer = null;
    agg.running = false;
    state.aggReady = false;
    state.aggMissing = false;
    state.aggBehind = cfg.kind === 'plain' ? 0 : -1;
  }
  /** Reads the view again (at most every agg.interval): the figures are then view(S') + the changes after S'. */
  function requestRebase(): void {
    if (agg.running) {
      agg.again = true;
      return;
    }
    if (agg.timer !== null) return;
    var gen = state.generation;
    agg.timer = setTimeout(
      function () {
        agg.timer = null;
        if (gen === state.generation) void rebase(gen, false);
      },
      Math.max(0, agg.last + agg.interval - Date.now()),
    );
  }
  /** A base near enough to the feed to catch up from, or null (page restarted, views missing). */
  async function settledBase(gen: number, my: number, fresh: boolean): Promise<Base | null> {
    for (var backoff = 1000; ; backoff = Math.min(backoff * 2, 30000)) {
      try {
        var base = await loadBase(fresh);
        if (gen !== state.generation || my !== agg.gen) return null;
        var behind = seqNumber(state.headSince) - seqNumber(base.seq);
        if (base.seq === null || base.seq === undefined || behind <= CATCH_UP_LIMIT) {
          if (base.seq === null || base.seq === undefined) base.seq = state.headSince;
          state.aggBehind = 0;
          return base;
        }
        // The index is far behind (a bulk load): wait for it rather than read all those changes here.
        state.aggBehind = behind;
        changed();
        fresh = false;
        await sleep(5000);
      } catch (err) {
        if (gen !== state.generation || my !== agg.gen) return null;
        if (err instanceof HttpError && err.status === 404) {
          // A design document from before the view existed: only setup can fix it.
          state.aggMissing = true;
          state.aggBehind = 0;
          changed();
          return null;
        }
        if (err instanceof HttpError && (err.status === 401 || err.status === 403)) return null; // the feed says so
        fresh = false;
        await sleep(jitter(Math.max(backoff, err instanceof HttpError ? err.retryAfter * 1000 : 0)));
      }
    }
  }
  function install(b: Base): void {
    state.day = b.day;
    state.bans = b.bans;
    state.machines = b.machines;
    state.ips = b.ips;
    state.ja4 = b.ja4;
    state.aggCut = b.cut;
    state.aggSeen = new Map();
    state.aggBase = b.seq;
    state.aggReady = true;
  }
  /** The changes after the base, read as plain pages (never a second long poll), onto the totals only. */
  /** One page of changes read and applied by `apply`; the answer (documents of MB maybe) is not kept past it. */
  async function readPage(url: string, timeoutMs: number, apply: (results: Change[]) => void): Promise<{ n: number; bytes: number; last: unknown }> {
    var r = await request(url, timeoutMs);
    var results: Change[] = r.body.results || [];
    apply(results);
    return { n: results.length, bytes: r.bytes, last: r.body.last_seq };
  }
  function applyAggBatch(results: Change[]): void {
    for (var i = 0; i < results.length; i++) applyAgg(compact(results[i]!));
  }
  async function catchUp(gen: number, my: number, since: unknown): Promise<void> {
    var limit = 100;
    var backoff = 500;
    while (gen === state.generation && my === agg.gen) {
      try {
        var page = await readPage(changesUrl(since, limit, 0), 60000, function (results) {
          if (gen === state.generation && my === agg.gen) applyAggBatch(results);
        });
        if (gen !== state.generation || my !== agg.gen) return;
        since = page.last;
        changed();
        if (page.n < limit) return;
        limit = nextLimit(limit, page.n, page.bytes);
        backoff = 500;
      } catch (err) {
        if (gen !== state.generation || my !== agg.gen) return;
        if (err instanceof HttpError && (err.status === 401 || err.status === 403)) return;
        if (tooBig(err, limit)) {
          limit = Math.max(1, limit >> 1);
          continue;
        }
        await sleep(jitter(Math.max(backoff, err instanceof HttpError ? err.retryAfter * 1000 : 0)));
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }
  async function rebase(gen: number, first: boolean): Promise<void> {
    if (cfg.kind === 'plain') return;
    var my = ++agg.gen;
    agg.running = true;
    agg.again = false;
    agg.last = Date.now();
    var base: Base | null = null;
    try {
      base = await settledBase(gen, my, !first);
    } finally {
      if (my === agg.gen) agg.running = false;
    }
    agg.interval = Math.min(60000, Math.max(REBASE_MS, 10 * (Date.now() - agg.last)));
    if (!base || gen !== state.generation || my !== agg.gen) return;
    install(base);
    changed();
    if (agg.again) requestRebase();
    await catchUp(gen, my, base.seq);
  }

  // ---- the live feed: one long poll per page -------------------------------
  /** 401 and 403 end the board: back to the login form, saying why. */
  function denied(err: unknown, loginMessage: string): boolean {
    if (!(err instanceof HttpError)) return false;
    if (err.status === 401) showLogin(loginMessage);
    else if (err.status === 403) showLogin('The account ' + (state.user || '') + ' cannot read logs (it has no reader role): log in with a reader account.');
    return err.status === 401 || err.status === 403;
  }
  function refusedMessage(err: HttpError, waitMs: number): string {
    var when = 'retrying in ' + Math.round(waitMs / 1000) + ' s';
    return /feeds/i.test(err.message)
      ? 'too many open dashboards for this account: ' + when + ' (each person should have a reader account of their own)'
      : 'the server is busy: ' + when;
  }
  function applyBatch(results: Change[]): void {
    var logs = 0;
    for (var i = 0; i < results.length; i++) {
      var e = compact(results[i]!);
      applyHead(e, true);
      applyAgg(e);
      if (!e.design) logs++;
    }
    if (results.length) scheduleCountSync();
    // Counted at once, made exact by the view soon after (see the top of this file).
    if (logs && state.aggReady) requestRebase();
  }
  async function follow(gen: number): Promise<void> {
    var limit = 100;
    var backoff = 500;
    // 429s in a row: only a poll the server took starts the count again.
    var refusals = 0;
    // After a failure the first request is a plain one: it tells at once
    // whether the server is back (a longpoll would wait for a change). After
    // a refusal it is a long poll of a few seconds: a plain read is never
    // refused, and would say nothing about getting a feed back.
    var recovering = false;
    while (gen === state.generation) {
      try {
        var url = changesUrl(state.headSince, limit, recovering ? 0 : refusals > 0 ? 2000 : 25000);
        var page = await readPage(url, recovering ? 60000 : 30000, function (results) {
          if (gen === state.generation) applyBatch(results);
        });
        if (gen !== state.generation) return;
        state.headSince = page.last;
        limit = nextLimit(limit, page.n, page.bytes);
        if (cfg.kind === 'fail2ban' && state.aggReady && state.day !== today()) requestRebase(); // a new day (UTC)
        recovering = false;
        refusals = 0;
        backoff = 500;
        state.connected = true;
        changed();
      } catch (err) {
        if (gen !== state.generation) return;
        if (denied(err, 'Your session ended: log in again.')) return;
        if ((err as Error).name === 'AbortError' && state.connected) continue; // the longpoll's time limit
        if (tooBig(err, limit)) {
          limit = Math.max(1, limit >> 1);
          continue;
        }
        var wait;
        if (err instanceof HttpError && err.status === 429) {
          // Refused (too many feeds for the account, or too many requests): the server is up, ask again as it says.
          wait = jitter(Math.max(err.retryAfter * 1000, Math.min(30000, 1000 * Math.pow(1.5, refusals++))));
          state.problem = refusedMessage(err, wait);
        } else {
          recovering = true;
          wait = backoff;
          backoff = Math.min(backoff * 2, 5000);
          state.problem = 'reconnecting… (' + ((err as Error).message || String(err)) + ')';
        }
        state.connected = false;
        changed();
        await sleep(wait);
      }
    }
  }

  async function start(): Promise<void> {
    var gen = ++state.generation;
    resetAgg();
    for (var backoff = 500; gen === state.generation; backoff = Math.min(backoff * 2, 5000)) {
      try {
        var head = await loadHead(gen);
        if (!head || gen !== state.generation) return;
        state.connected = true;
        changed();
        void follow(gen);
        // The totals after the newest documents: the view's answer may set
        // the server indexing (PouchDB Server does it in its one thread),
        // which would hold the list back for seconds.
        void fillHead(gen, head.changes, head.full).then(function () {
          if (gen === state.generation) void rebase(gen, true);
        });
        return;
      } catch (err) {
        if (gen !== state.generation) return;
        if (denied(err, 'Log in to see ' + cfg.db + '.')) return;
        state.connected = false;
        state.problem = 'reconnecting… (' + ((err as Error).message || String(err)) + ')';
        changed();
        await sleep(jitter(Math.max(backoff, err instanceof HttpError ? err.retryAfter * 1000 : 0)));
      }
    }
  }

  // ---- session -----------------------------------------------------------
  function showLogin(message: string): void {
    state.generation++;
    resetAgg();
    state.user = null;
    $('login-message').textContent = message;
    $('login').hidden = false;
    $('board').hidden = true;
    ($('name') as HTMLInputElement).focus();
  }
  function showBoard(user: string): void {
    state.user = user;
    $('login').hidden = true;
    $('board').hidden = false;
    text($('user'), user);
    void start();
  }
  $('login-form').addEventListener('submit', function (e) {
    e.preventDefault();
    var name = ($('name') as HTMLInputElement).value;
    var password = ($('password') as HTMLInputElement).value;
    fetch('/_session', {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/json', accept: 'application/json', 'x-requested-with': 'XMLHttpRequest' },
      body: JSON.stringify({ name: name, password: password }),
    })
      .then(function (res) {
        ($('password') as HTMLInputElement).value = '';
        if (!res.ok) throw new Error(res.status === 401 ? 'Name or password is incorrect.' : 'Login failed (HTTP ' + res.status + ').');
        showBoard(name);
      })
      .catch(function (err: Error) {
        $('login-message').textContent = err.message;
      });
  });
  $('logout').addEventListener('click', function () {
    fetch('/_session', { method: 'DELETE', credentials: 'same-origin', headers: { 'x-requested-with': 'XMLHttpRequest' } }).finally(function () {
      showLogin('Logged out.');
    });
  });
  // The minute bars move on even without traffic, and a new day (UTC) brings its totals.
  setInterval(function () {
    pruneMinutes();
    if (cfg.kind === 'fail2ban' && state.aggReady && state.day !== today()) requestRebase();
    changed();
  }, 10000);
  (async function init() {
    for (var backoff = 500; ; backoff = Math.min(backoff * 2, 5000)) {
      try {
        var s = await get('/_session');
        if (s && s.userCtx && s.userCtx.name) showBoard(s.userCtx.name);
        else showLogin('Log in to see ' + cfg.db + '.');
        return;
      } catch (err) {
        // CouchDB 3 with require_valid_user answers an anonymous /_session with 401.
        if (err instanceof HttpError && err.status === 401) return showLogin('Log in to see ' + cfg.db + '.');
        $('login-message').textContent = 'The server does not answer; retrying… (' + (err as Error).message + ')';
        $('login').hidden = false;
        await sleep(backoff);
      }
    }
  })();
}
