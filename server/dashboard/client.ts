// The live dashboard's browser code. It is serialized with toString() into
// the page (server/dashboard/page.ts), so it must not use anything from
// outside this function: no imports, no module-level names. Everything it
// reads goes through the ingress with the reader's own session cookie, to
// the same CouchDB routes Fauxton uses (/_session, /<db>, /<db>/_changes,
// /<db>/_design/report/_view/...), so the ingress's checks apply as to any
// other reader request.
//
// How it stays cheap with 100,000 documents in the database:
//  - the latest documents and the per-minute rate come from the newest
//    changes only (`_changes?descending=true&limit=...`), then live;
//  - the day's totals come from the report views (already reduced inside
//    CouchDB), read with `stale=update_after&update_seq=true`, so a page
//    load never waits for an index build; the changes after the index's
//    own update_seq are then added one by one, which makes the figures
//    exact: view(seq S) + every change after S. While the index is far
//    behind (more than CATCH_UP_LIMIT documents) the page says so and asks
//    the view again every few seconds instead of reading all those changes;
//  - the live feed is `feed=longpoll&timeout=25000` with a client-side
//    time limit as well (a proxy on the way may hold the answer); any failure
//    (server restarted, ingress restarted, network) is retried with a
//    growing delay up to 5 s, and the page shows "reconnecting".
//  - every structure is bounded: 50 latest documents, 30 minutes of rate,
//    the day's addresses and fingerprints as counts.

export interface DashboardConfig {
  app: string;
  db: string;
  kind: 'fail2ban' | 'correlated' | 'plain';
}

export function dashboardClient(cfg: DashboardConfig): void {
  var CATCH_UP_LIMIT = 20000;
  var PAGE = 1000;
  var LATEST = 50;
  var MINUTES = 30;
  var $ = function (id: string): HTMLElement {
    return document.getElementById(id)!;
  };
  type Doc = Record<string, unknown> & { _id: string };
  type Change = { seq: unknown; id: string; deleted?: boolean; doc?: Doc };
  // Counts keyed by logged values (machines, addresses, fingerprints): a
  // plain {} would read "constructor" or "toString" as Object's own, and
  // swallow "__proto__"; without a prototype every key is just a key.
  function counts(): Record<string, number> {
    return Object.create(null) as Record<string, number>;
  }

  var state = {
    user: null as string | null,
    docCount: 0,
    latest: [] as Doc[],
    perMinute: {} as Record<number, { docs: number; correlated: number; orphans: number }>,
    // fail2ban: the day's bans per machine and per address.
    day: '',
    machines: counts(),
    ips: counts(),
    // correlated: fingerprints (all time).
    ja4: counts(),
    headSince: null as unknown,
    // Ids of the newest changes read at load (at most 500).
    loadedIds: Object.create(null) as Record<string, true>,
    // Minutes up to this one were only partly loaded (the newest 500 documents at load).
    partialUpTo: -1,
    aggSince: null as unknown,
    aggBehind: 0,
    aggMissing: false,
    generation: 0,
    connected: false,
    lastError: '',
  };

  function today(): string {
    var d = new Date();
    var p = function (n: number) {
      return n < 10 ? '0' + n : String(n);
    };
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate());
  }
  function seqNumber(seq: unknown): number {
    return parseInt(String(seq), 10) || 0;
  }
  function minuteOf(doc: Doc): number {
    var t = typeof doc.received_at === 'string' ? Date.parse(doc.received_at) : NaN;
    if (isNaN(t)) t = Date.now();
    return Math.floor(t / 60000);
  }
  function sleep(ms: number): Promise<void> {
    return new Promise(function (ok) {
      setTimeout(ok, ms);
    });
  }

  class HttpError extends Error {
    constructor(
      public status: number,
      message: string,
    ) {
      super(message);
    }
  }
  // Documents per _changes page. A page the server cannot answer (documents
  // of several MB each: PouchDB Server fails with "Invalid string length")
  // is asked again at half the size, down to one document, and the size
  // grows back after pages read; a fixed size left the page broken for good.
  var pageLimit = PAGE;
  var readAtLimit = 0;
  function pageFailed(err: unknown): boolean {
    if (!(err instanceof HttpError) || err.status < 500 || pageLimit === 1) return false;
    pageLimit = Math.max(1, Math.floor(pageLimit / 2));
    readAtLimit = 0;
    return true;
  }
  function pageRead(): void {
    if (pageLimit === PAGE || ++readAtLimit < 8) return;
    readAtLimit = 0;
    pageLimit = Math.min(PAGE, pageLimit * 2);
  }

  async function get(path: string, timeoutMs?: number): Promise<any> {
    var ctl = new AbortController();
    var timer = setTimeout(function () {
      ctl.abort();
    }, timeoutMs || 30000);
    try {
      var res = await fetch(path, {
        credentials: 'same-origin',
        headers: { accept: 'application/json', 'x-requested-with': 'XMLHttpRequest' },
        signal: ctl.signal,
      });
      var body = await res.json().catch(function () {
        return null;
      });
      if (!res.ok) throw new HttpError(res.status, (body && (body.reason || body.error)) || 'HTTP ' + res.status);
      return body;
    } finally {
      clearTimeout(timer);
    }
  }
  var dbPath = '/' + encodeURIComponent(cfg.db);

  // ---- rendering ------------------------------------------------------
  function fmt(n: number): string {
    return n.toLocaleString('en-US');
  }
  // Logged values as text: control characters and bidi overrides shown as
  // \u escapes (anyone can write a log value, and U+202E would show
  // "gnp.exe" as "exe.png"), as `couchlog report` does on a terminal.
  function shown(s: string): string {
    return s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, function (c) {
      return '\\u' + ('000' + c.charCodeAt(0).toString(16)).slice(-4);
    });
  }
  function text(el: HTMLElement, s: string): void {
    if (el.textContent !== s) el.textContent = s;
  }
  function renderBars(el: HTMLElement, rows: Array<[string, number]>, empty: string): void {
    var max = 0;
    for (var i = 0; i < rows.length; i++) if (rows[i]![1] > max) max = rows[i]![1];
    var frag = document.createDocumentFragment();
    for (var j = 0; j < rows.length; j++) {
      var tr = document.createElement('tr');
      var k = document.createElement('td');
      k.className = 't';
      k.textContent = shown(rows[j]![0]);
      var v = document.createElement('td');
      v.className = 'n';
      v.textContent = fmt(rows[j]![1]);
      var b = document.createElement('td');
      b.className = 'bar';
      var span = document.createElement('span');
      span.style.width = (max > 0 ? Math.max(1, Math.round((rows[j]![1] / max) * 100)) : 0) + '%';
      b.appendChild(span);
      tr.appendChild(k);
      tr.appendChild(v);
      tr.appendChild(b);
      frag.appendChild(tr);
    }
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
  function top(counts: Record<string, number>, n: number): Array<[string, number]> {
    var rows: Array<[string, number]> = [];
    for (var k in counts) if (Object.prototype.hasOwnProperty.call(counts, k)) rows.push([k, counts[k]!]);
    rows.sort(function (a, b) {
      return b[1] - a[1] || (a[0] < b[0] ? -1 : 1);
    });
    return rows.slice(0, n);
  }
  function summary(doc: Doc): string {
    var parts: string[] = [];
    for (var k in doc) {
      if (k === '_id' || k === '_rev' || k === 'received_at') continue;
      var v = doc[k];
      parts.push(k + '=' + (typeof v === 'string' ? v : JSON.stringify(v)));
      if (parts.length >= 8) break;
    }
    return parts.join('  ');
  }
  var dirty = false;
  function render(): void {
    dirty = false;
    text($('doc-count'), fmt(state.docCount));
    var now = Math.floor(Date.now() / 60000);
    var bars = $('rate');
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
    bars.innerHTML = html.join('');
    var cur = state.perMinute[now] || { docs: 0, correlated: 0, orphans: 0 };
    var prev = state.perMinute[now - 1] || { docs: 0, correlated: 0, orphans: 0 };
    // A minute only partly loaded says so: "501+".
    text($('this-minute'), fmt(cur.docs) + (now <= state.partialUpTo ? '+' : ''));
    text($('last-minute'), fmt(prev.docs) + (now - 1 <= state.partialUpTo ? '+' : ''));
    if (cfg.kind === 'correlated') {
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
      renderBars($('ja4'), top(state.ja4, 10), 'no fingerprints yet');
    }
    if (cfg.kind === 'fail2ban') {
      text($('day'), state.day);
      var total = 0;
      for (var k in state.machines) total += state.machines[k]!;
      text($('bans-today'), fmt(total));
      renderBars($('machines'), top(state.machines, 20), 'no bans today');
      renderBars($('attackers'), top(state.ips, 10), 'no bans today');
    }
    var list = $('latest');
    var frag = document.createDocumentFragment();
    for (var d = 0; d < state.latest.length; d++) {
      var doc = state.latest[d]!;
      var li = document.createElement('li');
      var time = document.createElement('time');
      time.textContent = typeof doc.received_at === 'string' ? doc.received_at.replace('T', ' ').slice(0, 19) : '';
      var body = document.createElement('code');
      body.textContent = shown(summary(doc));
      li.appendChild(time);
      li.appendChild(body);
      li.dataset.id = doc._id;
      frag.appendChild(li);
    }
    list.replaceChildren(frag);
    if (state.latest.length === 0) list.innerHTML = '<li class="none">no documents yet</li>';
    var status = $('status');
    status.className = state.connected ? 'live' : 'down';
    text(status, state.connected ? 'live' : 'reconnecting… ' + state.lastError);
    var idx = $('index-note');
    text(
      idx,
      state.aggMissing
        ? 'the report views are missing or out of date: an admin runs couchlog setup'
        : state.aggBehind > CATCH_UP_LIMIT
          ? 'report index building: ' + fmt(state.aggBehind) + ' documents behind; the totals fill in as it catches up'
          : state.aggBehind < 0
            ? 'report totals loading…'
            : '',
    );
  }
  function changed(): void {
    if (!dirty) {
      dirty = true;
      requestAnimationFrame(render);
    }
  }

  // ---- what one document adds ------------------------------------------
  function addHead(doc: Doc, live: boolean): void {
    if (live) state.docCount++;
    // Written between the count and the newest-changes read at load: already
    // in the minutes and the list, though not in the count.
    if (live && state.loadedIds[doc._id]) return;
    var m = minuteOf(doc);
    var c = state.perMinute[m] || (state.perMinute[m] = { docs: 0, correlated: 0, orphans: 0 });
    c.docs++;
    if (doc.correlated === true) c.correlated++;
    else if (doc.correlated === false) c.orphans++;
    if (live) {
      state.latest.unshift(doc);
      if (state.latest.length > LATEST) state.latest.length = LATEST;
    }
  }
  function addAggregate(doc: Doc): void {
    if (cfg.kind === 'fail2ban') {
      if (doc.date !== state.day || typeof doc.ip !== 'string' || doc.ip === '') return;
      var machine = typeof doc.machine === 'string' ? doc.machine : '(none)';
      state.machines[machine] = (state.machines[machine] || 0) + 1;
      state.ips[doc.ip] = (state.ips[doc.ip] || 0) + 1;
    } else if (cfg.kind === 'correlated') {
      if (typeof doc.ja4 !== 'string') return;
      state.ja4[doc.ja4] = (state.ja4[doc.ja4] || 0) + 1;
    }
  }
  function pruneMinutes(): void {
    var oldest = Math.floor(Date.now() / 60000) - MINUTES;
    for (var k in state.perMinute) if (Number(k) < oldest) delete state.perMinute[k];
  }

  // ---- loading -----------------------------------------------------------
  async function loadHead(gen: number): Promise<void> {
    var info = await get(dbPath);
    // doc_count includes the design documents: they are not logs.
    var ddocs = await get(dbPath + '/_all_docs?startkey=%22_design%2F%22&endkey=%22_design0%22');
    var recent;
    for (;;) {
      try {
        recent = await get(dbPath + '/_changes?descending=true&include_docs=true&limit=' + Math.min(500, pageLimit));
        break;
      } catch (err) {
        if (!pageFailed(err)) throw err;
      }
    }
    if (gen !== state.generation) return;
    state.docCount = info.doc_count - ((ddocs && ddocs.rows) || []).length;
    state.perMinute = {};
    state.latest = [];
    state.loadedIds = Object.create(null) as Record<string, true>;
    var results: Change[] = recent.results || [];
    state.partialUpTo = -1;
    if (results.length >= 500) {
      var oldest = results[results.length - 1]!.doc;
      state.partialUpTo = oldest ? minuteOf(oldest) : Math.floor(Date.now() / 60000);
    }
    for (var i = 0; i < results.length; i++) {
      var ch = results[i]!;
      if (!ch.doc || ch.deleted || ch.id.indexOf('_design/') === 0) continue;
      state.loadedIds[ch.id] = true;
      addHead(ch.doc, false);
      if (state.latest.length < LATEST) state.latest.push(ch.doc);
    }
    state.headSince = info.update_seq;
  }
  async function viewRows(view: string, params: Record<string, unknown>): Promise<{ rows: Array<{ key: any; value: number }>; update_seq: unknown }> {
    var q: string[] = ['stale=update_after', 'update_seq=true'];
    for (var k in params)
      q.push(
        k + '=' + encodeURIComponent(typeof params[k] === 'string' && k !== 'startkey' && k !== 'endkey' ? (params[k] as string) : JSON.stringify(params[k])),
      );
    return get(dbPath + '/_design/report/_view/' + view + '?' + q.join('&'), 60000);
  }
  /**
   * The day's totals from the views; returns the index's update_seq (null:
   * nothing to total). One query per total, so each answer is one index
   * state: the changes after its update_seq then make the figures exact.
   */
  async function loadAggregates(gen: number): Promise<unknown> {
    if (cfg.kind === 'plain') return null;
    var machines = counts();
    var ips = counts();
    var ja4 = counts();
    var seq: unknown;
    var day = today();
    if (cfg.kind === 'fail2ban') {
      var ymd = day.split('-').map(Number);
      var bans = await viewRows('bans_by_day', { group_level: '5', startkey: ymd, endkey: ymd.concat([{}] as never[]) });
      seq = bans.update_seq;
      for (var i = 0; i < bans.rows.length; i++) {
        var r = bans.rows[i]!;
        var machine = typeof r.key[3] === 'string' ? r.key[3] : '(none)';
        machines[machine] = (machines[machine] || 0) + r.value;
        ips[r.key[4]] = (ips[r.key[4]] || 0) + r.value;
      }
    } else {
      var fp = await viewRows('by_ja4', { group_level: '1' });
      seq = fp.update_seq;
      for (var f = 0; f < fp.rows.length; f++) ja4[fp.rows[f]!.key[0]] = fp.rows[f]!.value;
    }
    if (gen !== state.generation) return null;
    state.day = day;
    state.machines = machines;
    state.ips = ips;
    state.ja4 = ja4;
    return seq;
  }

  async function follow(gen: number, which: 'head' | 'agg'): Promise<void> {
    var backoff = 500;
    // After a failure the first request is a plain one: it tells at once
    // whether the server is back (a longpoll would wait for a change).
    var recovering = false;
    while (gen === state.generation) {
      var since = which === 'head' ? state.headSince : state.aggSince;
      try {
        // Behind: read pages at once. Caught up: wait for the next change.
        var behind = recovering || (which === 'agg' && state.aggBehind > 0);
        var limit = pageLimit;
        var url =
          dbPath +
          '/_changes?include_docs=true&limit=' +
          limit +
          '&since=' +
          encodeURIComponent(String(since)) +
          (behind ? '' : '&feed=longpoll&timeout=25000');
        var res = await get(url, behind ? 60000 : 30000);
        if (gen !== state.generation) return;
        pageRead();
        var results: Change[] = res.results || [];
        for (var i = 0; i < results.length; i++) {
          var ch = results[i]!;
          if (!ch.doc || ch.deleted || ch.id.indexOf('_design/') === 0) continue;
          if (which === 'head') addHead(ch.doc, true);
          else addAggregate(ch.doc);
        }
        if (which === 'head') state.headSince = res.last_seq;
        else {
          state.aggSince = res.last_seq;
          state.aggBehind = results.length >= limit ? Math.max(1, typeof res.pending === 'number' ? res.pending : 1) : 0;
          if (cfg.kind === 'fail2ban' && state.day !== today()) {
            // A new day: start again, with the new day's totals.
            void start();
            return;
          }
        }
        pruneMinutes();
        recovering = false;
        if (!state.connected) {
          state.connected = true;
          state.lastError = '';
        }
        backoff = 500;
        changed();
      } catch (err) {
        if (gen !== state.generation) return;
        if (err instanceof HttpError && err.status === 401) {
          showLogin('Your session ended: log in again.');
          return;
        }
        if ((err as Error).name === 'AbortError' && state.connected) continue; // the longpoll's time limit
        if (pageFailed(err)) continue;
        state.connected = false;
        recovering = true;
        state.lastError = '(' + ((err as Error).message || String(err)) + ')';
        changed();
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  async function start(): Promise<void> {
    var gen = ++state.generation;
    state.aggMissing = false;
    for (var backoff = 500; gen === state.generation; backoff = Math.min(backoff * 2, 5000)) {
      try {
        await loadHead(gen);
        if (gen !== state.generation) return;
        state.connected = true;
        changed();
        void follow(gen, 'head');
        if (cfg.kind === 'plain') return;
        // The day's totals: the views at their index position, then every
        // change after it. While the index is far behind, wait for it.
        state.aggBehind = -1;
        changed();
        for (;;) {
          var seq;
          try {
            seq = await loadAggregates(gen);
          } catch (err) {
            // A design document from before the view existed: only setup can fix it.
            if (!(err instanceof HttpError) || err.status !== 404) throw err;
            state.aggBehind = 0;
            state.aggMissing = true;
            changed();
            return;
          }
          if (gen !== state.generation) return;
          var known = seq !== null && seq !== undefined;
          var behind = known ? seqNumber(state.headSince) - seqNumber(seq) : 0;
          if (behind <= CATCH_UP_LIMIT) {
            state.aggSince = known ? seq : state.headSince;
            state.aggBehind = Math.max(0, behind);
            break;
          }
          state.aggBehind = behind;
          changed();
          await sleep(5000);
          if (gen !== state.generation) return;
        }
        changed();
        void follow(gen, 'agg');
        return;
      } catch (err) {
        if (gen !== state.generation) return;
        if (err instanceof HttpError && err.status === 401) return showLogin('Log in to see ' + cfg.db + '.');
        state.connected = false;
        state.lastError = '(' + ((err as Error).message || String(err)) + ')';
        changed();
        await sleep(backoff);
      }
    }
  }

  // ---- session -----------------------------------------------------------
  function showLogin(message: string): void {
    state.generation++;
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
  setInterval(changed, 10000); // the minute bars move on even without traffic
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
