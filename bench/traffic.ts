// The one A (HTTP request) / B (TLS/network) traffic generator: realistic,
// reproducible documents for the correlator's integration tests, the
// engine's unit tests, and both correlator benchmarks (bench:correlator posts
// the documents, bench:engine gives the engine the events normalize.ts makes
// of them: asChanges, asEvents). A seeded PRNG makes every run produce the
// same documents, so a failure can be replayed.
//
// Shape of the traffic (what the correlator must cope with):
//  - one B per TCP connection, then 0..n A's on it (Keep-Alive); a B with no
//    A is an orphan B; a share of A's come from connections with no B at all;
//  - the first A usually follows its B by a few ms, sometimes precedes it
//    (the HTTP log was written before the TLS one: matched while the A waits
//    its emit delay), sometimes comes seconds later;
//  - clients reuse their IP across many connections; some write IPv4 as
//    IPv4-mapped IPv6, some are IPv6; A timestamps are nanoseconds (as
//    mod_reqin_log writes them), B timestamps milliseconds;
//  - each feed is in time order up to a small local disorder (ingestion),
//    far below the correlator's reorder slack.
// The options reshape it for a caller (a small port pool so later
// connections reuse keys, a share of B's arriving after their first A
// stopped waiting, keep-alive gaps past the TTL, every time format);
// without them, a seed gives the same documents it always gave.
import { IpFilter } from '../correlator/engine/ip-filter.js';
import { eventTime, toEvent, type Change, type NormalizeRules } from '../correlator/engine/normalize.js';
import type { InputEvent, Side } from '../correlator/engine/types.js';
import { mulberry32 } from './prng.js';

export type TrafficDoc = Record<string, unknown> & { timestamp: number };

export interface TrafficOptions {
  seed: number;
  /** Exactly this many A and B documents. */
  aCount: number;
  bCount: number;
  /** Event time (epoch ms) of the first connection. */
  startMs: number;
  /** Connections start over this many ms of event time. */
  spanMs: number;
  /** Share of A's that come from a connection without any B. Default 0.05. */
  orphanAShare?: number;
  /** Largest local disorder within a feed, ms. Default 150. */
  disorderMs?: number;
  /** Distinct client addresses. Default max(50, bCount / 20). */
  clients?: number;
  /** Source ports to draw from (a small pool: later connections reuse keys). Default any of 1024..65535. */
  ports?: readonly number[];
  /** Where a connection's first A falls relative to its B. Default FIRST_A. */
  firstA?: readonly FirstA[];
  /** Gap between the requests of a Keep-Alive run: min + an exponential of this mean, capped at min + max. Default 20, 800, 4000. */
  keepAliveGapMs?: { min: number; mean: number; max: number };
  /** This many connections carry about `requests` requests each (a load balancer's upstream), the others fewer to keep aCount. Default none. */
  longConnections?: { count: number; requests: number };
}

/** A band of a connection's first-A offsets: for a draw below `until` (cumulative, the last band 1), the A comes fromMs..toMs after its B (negative: before it). */
export interface FirstA {
  until: number;
  fromMs: number;
  toMs: number;
}

export const FIRST_A: readonly FirstA[] = [
  { until: 0.1, fromMs: 0, toMs: -150 }, // HTTP log written before the TLS log
  { until: 0.95, fromMs: 2, toMs: 302 },
  { until: 1, fromMs: 300, toMs: 3000 }, // slow first request
];

/**
 * FIRST_A with a share of connections whose B comes 1..`spreadMs` ms after
 * the first A stopped waiting for it (`reachMs`: the shorter of the
 * correlator's window and emit delay): the engine's late-B path.
 */
export function firstAWithLateB(reachMs: number, share: number, spreadMs: number): FirstA[] {
  const keep = 1 - share;
  return [...FIRST_A.map((b) => ({ ...b, until: b.until * keep })), { until: 1, fromMs: -(reachMs + 1), toMs: -(reachMs + spreadMs) }];
}

export interface Traffic {
  /** In posting order (= feed order). */
  a: TrafficDoc[];
  b: TrafficDoc[];
  /** Event time of the last document of either side (epoch ms). */
  lastMs: number;
}

export { mulberry32 };

const PROFILES = [
  {
    ua: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
    ja4: 't13d1516h2_8daaf6152771_b0da82dd1658',
    ja3: 'cd08e31494f9531f560d64c695473da9',
    alpn: 'h2',
    tls: '1.3',
    ttl: 128,
    win: 64240,
  },
  {
    ua: 'Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
    ja4: 't13d1715h2_5b57614c22b0_3d5424432f57',
    ja3: '579ccef312d18482fc42e2b822ca2430',
    alpn: 'h2',
    tls: '1.3',
    ttl: 64,
    win: 65535,
  },
  { ua: 'curl/8.5.0', ja4: 't13d3112h1_e8f1e7e78f70_6bebaf5329ac', ja3: '456523fc94726331a4d5a2e1d40b2cd7', alpn: 'http/1.1', tls: '1.3', ttl: 64, win: 29200 },
  {
    ua: 'python-requests/2.31.0',
    ja4: 't13d1812h1_85036bcba153_375ca2c5e164',
    ja3: 'a0e9f5d64349fb13191bc781f81f42e1',
    alpn: 'http/1.1',
    tls: '1.2',
    ttl: 64,
    win: 29200,
  },
  {
    ua: 'Go-http-client/1.1',
    ja4: 't13d1311h1_c7886603b240_a8d8d3c4fc57',
    ja3: '473cd7cb9faa642487833865d516e578',
    alpn: 'http/1.1',
    tls: '1.3',
    ttl: 64,
    win: 65535,
  },
];
const PATHS = ['/', '/login', '/api/v1/items', '/api/v1/items/42', '/static/app.js', '/static/app.css', '/wp-login.php', '/.env', '/search', '/favicon.ico'];
const METHODS = ['GET', 'GET', 'GET', 'GET', 'POST', 'HEAD'];

interface Client {
  ip: string;
  /** How this client's B writes its address (IPv4-mapped for some). */
  bIp: string;
  profile: (typeof PROFILES)[number];
}

function makeClients(rnd: () => number, n: number): Client[] {
  const clients: Client[] = [];
  for (let i = 0; i < n; i++) {
    const profile = PROFILES[Math.floor(rnd() * PROFILES.length)]!;
    const r = rnd();
    if (r < 0.1) {
      const ip = `2001:db8:${(i >> 8).toString(16)}::${(i & 255).toString(16)}`;
      clients.push({ ip, bIp: ip, profile });
    } else {
      const ip = `${r < 0.55 ? '203.0.113' : r < 0.8 ? '198.51.100' : '192.0.2'}.${1 + (i % 254)}`;
      clients.push({ ip, bIp: rnd() < 0.3 ? `::ffff:${ip}` : ip, profile });
    }
  }
  return clients;
}

/** Number of A's on a connection: 0 (orphan B), mostly 1, sometimes a Keep-Alive run. */
function requestsPerConnection(rnd: () => number): number {
  const r = rnd();
  if (r < 0.35) return 0;
  if (r < 0.85) return 1;
  if (r < 0.97) return 2 + Math.floor(rnd() * 3);
  return 5 + Math.floor(rnd() * 4);
}

/** The documents of one connection side: A (15 fields, nanosecond timestamp) and B (16 fields, milliseconds). */
class DocMaker {
  /** Event time of the last document made (epoch ms). */
  lastMs: number;

  constructor(
    private readonly rnd: () => number,
    startMs: number,
  ) {
    this.lastMs = startMs;
  }

  int(lo: number, hi: number): number {
    return lo + Math.floor(this.rnd() * (hi - lo + 1));
  }

  a(c: Client, port: number, t: number, dstPort: number): TrafficDoc {
    const rnd = this.rnd;
    const path = PATHS[Math.floor(rnd() * PATHS.length)]!;
    const tMs = Math.round(t);
    this.lastMs = Math.max(this.lastMs, tMs);
    return {
      src_ip: c.ip,
      src_port: port,
      dst_ip: '192.168.1.10',
      dst_port: dstPort,
      method: METHODS[Math.floor(rnd() * METHODS.length)]!,
      scheme: 'https',
      host: rnd() < 0.9 ? 'www.example.com' : 'api.example.com',
      path,
      query: rnd() < 0.2 ? `q=${this.int(1, 999)}` : '',
      http_version: c.profile.alpn === 'h2' ? 'HTTP/2' : 'HTTP/1.1',
      status: rnd() < 0.9 ? 200 : rnd() < 0.5 ? 404 : 500,
      'header_User-Agent': c.profile.ua,
      header_Accept: '*/*',
      'header_X-Request-Id': `req-${this.int(1, 1e9)}`,
      // Nanoseconds since the epoch, as mod_reqin_log writes them.
      timestamp: tMs * 1e6 + this.int(0, 999) * 1000,
    };
  }

  b(c: Client, port: number, t: number, connId: string): TrafficDoc {
    this.lastMs = Math.max(this.lastMs, Math.round(t));
    return {
      src_ip: c.bIp,
      src_port: port,
      dst_ip: '192.168.1.10',
      dst_port: 443,
      conn_id: connId,
      ja3: c.profile.ja3,
      ja3_hash: c.profile.ja3,
      ja4: c.profile.ja4,
      tls_version: c.profile.tls,
      tls_sni: 'www.example.com',
      tls_alpn: c.profile.alpn,
      ip_meta_ttl: c.profile.ttl - this.int(0, 12),
      ip_meta_df: 1,
      tcp_meta_window_size: c.profile.win,
      syn_to_clienthello_ms: this.int(1, 80),
      timestamp: Math.round(t),
    };
  }
}

export function generateTraffic(o: TrafficOptions): Traffic {
  const rnd = mulberry32(o.seed);
  const make = new DocMaker(rnd, o.startMs);
  const int = (lo: number, hi: number) => make.int(lo, hi);
  const srcPort = () => (o.ports ? o.ports[Math.floor(rnd() * o.ports.length)]! : int(1024, 65535));
  const firstA = o.firstA ?? FIRST_A;
  const gap = o.keepAliveGapMs ?? { min: 20, mean: 800, max: 4000 };
  const clients = makeClients(rnd, o.clients ?? Math.max(50, Math.round(o.bCount / 20)));
  const orphanA = Math.round(o.aCount * (o.orphanAShare ?? 0.05));

  // Requests per connection, then nudged so the A's add up exactly.
  const perConn = Array.from({ length: o.bCount }, () => requestsPerConnection(rnd));
  for (let k = 0; k < (o.longConnections?.count ?? 0); k++) perConn[Math.floor(rnd() * o.bCount)] = o.longConnections!.requests;
  let sum = perConn.reduce((x, y) => x + y, 0);
  const target = o.aCount - orphanA;
  while (sum !== target && o.bCount > 0) {
    const i = Math.floor(rnd() * o.bCount);
    if (sum > target && perConn[i]! > 1) {
      perConn[i]! -= 1;
      sum -= 1;
    } else if (sum > target && perConn[i]! === 1 && rnd() < 0.2) {
      perConn[i] = 0;
      sum -= 1;
    } else if (sum < target && perConn[i]! > 0) {
      perConn[i]! += 1;
      sum += 1;
    } else if (sum < target && rnd() < 0.1) {
      perConn[i]! += 1;
      sum += 1;
    }
  }

  const starts = Array.from({ length: o.bCount }, () => o.startMs + rnd() * o.spanMs).sort((x, y) => x - y);
  const a: TrafficDoc[] = [];
  const b: TrafficDoc[] = [];
  for (let i = 0; i < o.bCount; i++) {
    const c = clients[Math.floor(rnd() * clients.length)]!;
    const port = srcPort();
    const t = starts[i]!;
    b.push(make.b(c, port, t, `conn-${o.seed}-${i}`));
    const first = rnd();
    const band = firstA.find((x) => first < x.until) ?? firstA[firstA.length - 1]!;
    let at = t + band.fromMs + rnd() * (band.toMs - band.fromMs);
    const end = o.startMs + o.spanMs;
    for (let k = 0; k < perConn[i]!; k++) {
      a.push(make.a(c, port, at, 8080));
      // Keep-Alive: the next request on the same connection, 20 ms .. ~4 s
      // later, but not past the end of the span (a dense feed to the end).
      at = Math.min(at + gap.min + Math.min(gap.max, -Math.log(1 - rnd()) * gap.mean), Math.max(at, end));
    }
  }
  for (let i = 0; i < orphanA; i++) {
    // A connection whose TLS log never came (or was filtered away upstream).
    const c = clients[Math.floor(rnd() * clients.length)]!;
    a.push(make.a(c, srcPort(), o.startMs + rnd() * o.spanMs, 8080));
  }

  const timeOf = (d: TrafficDoc) => (d.timestamp > 1e17 ? d.timestamp / 1e6 : d.timestamp);
  const order = (docs: TrafficDoc[]) => {
    docs.sort((x, y) => timeOf(x) - timeOf(y));
    // Ingestion disorder: neighbours a little apart swap places now and then.
    const disorder = o.disorderMs ?? 150;
    for (let i = 0; i + 1 < docs.length; i++) {
      if (rnd() < 0.05 && timeOf(docs[i + 1]!) - timeOf(docs[i]!) < disorder) [docs[i], docs[i + 1]] = [docs[i + 1]!, docs[i]!];
    }
  };
  order(a);
  order(b);
  return { a, b, lastMs: make.lastMs };
}

/**
 * Copies of the documents with every time format the correlator reads mixed
 * in, drawn from a PRNG of their own (`seed`): 15% an RFC 3339 `time`
 * instead of `timestamp`, 10% epoch seconds, 5% milliseconds on a whole
 * second (exact ties); the rest as generated (A nanoseconds, B milliseconds).
 */
export function mixTimeFormats(t: Traffic, seed: number): { a: Record<string, unknown>[]; b: Record<string, unknown>[] } {
  const rnd = mulberry32(seed);
  const vary = (d: TrafficDoc): Record<string, unknown> => {
    const doc: Record<string, unknown> = { ...d };
    const ms = eventTime(doc)!;
    const r = rnd();
    if (r < 0.15) {
      delete doc.timestamp;
      doc.time = new Date(ms).toISOString().replace('Z', '+00:00');
    } else if (r < 0.25) doc.timestamp = ms / 1000;
    else if (r < 0.3) doc.timestamp = Math.floor(ms / 1000) * 1000; // ties at whole seconds
    return doc;
  };
  return { a: t.a.map(vary), b: t.b.map(vary) };
}

/**
 * N A's and N B's on 2N distinct connections (nothing matches), within
 * `spanMs` of `startMs`: what fills the engine's buffers without deciding
 * anything.
 */
export function unmatchedTraffic(o: { seed: number; n: number; startMs: number; spanMs: number }): Traffic {
  const rnd = mulberry32(o.seed);
  const make = new DocMaker(rnd, o.startMs);
  const clients = makeClients(rnd, Math.min(o.n, 1000));
  const out: Traffic = { a: [], b: [], lastMs: o.startMs };
  for (let i = 0; i < o.n; i++) {
    const at = o.startMs + (i % o.spanMs);
    const client = clients[i % clients.length]!;
    const ip = (side: number) => `${side}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    out.a.push(make.a({ ...client, ip: ip(10), bIp: ip(10) }, make.int(1024, 65535), at, 8080));
    out.b.push(make.b({ ...client, ip: ip(11), bIp: ip(11) }, make.int(1024, 65535), at, `conn-${o.seed}-${i}`));
  }
  out.lastMs = make.lastMs;
  return out;
}

/** The documents as the changes a feed reads: ids from `id`, `_id` and `_rev` in the document as CouchDB gives it. */
export function asChanges(t: Traffic, id: (side: Side, index: number) => string): Record<Side, Change[]> {
  const changes = (side: Side, docs: TrafficDoc[]): Change[] =>
    docs.map((doc, i) => {
      const _id = id(side, i);
      return { id: _id, doc: { _id, _rev: '1-0', ...doc } };
    });
  return { A: changes('A', t.a), B: changes('B', t.b) };
}

/** No exclusions, no port filter, one correlator: every generated document becomes an event. */
export const NO_RULES: NormalizeRules = { exclude: new IpFilter([]), includePorts: new Set(), where: null };

/** The engine's events of the changes, through the feed's own normalisation (toEvent); the index is the position in its feed. */
export function asEvents(changes: Record<Side, Change[]>): Record<Side, InputEvent[]> {
  const events = (side: Side): InputEvent[] =>
    changes[side].map((ch, i) => {
      const ev = toEvent(ch, side, i, NO_RULES);
      if ('skip' in ev) throw new Error(`generated document ${ch.id} skipped: ${ev.skip}`);
      return ev;
    });
  return { A: events('A'), B: events('B') };
}
