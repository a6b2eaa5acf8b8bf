// The listening TCP sockets on this machine, from /proc (Linux): which one
// would take a connection to an address and port, and which user opened
// it. /proc/net/tcp{,6} lists every socket with its state, local address,
// user and inode. What the supervisor of the embedded servers
// (embedded/port-holder.ts) and the client of the embedded ClickHouse
// (own-user-agent.ts) ask before they trust whatever listens on a port.
import { endianness } from 'node:os';
import { readFileSync } from 'node:fs';
import ipaddr from 'ipaddr.js';

/**
 * - `none`: nothing listens there;
 * - `ours`: the socket that would take a connection is one of `ours`;
 * - `other`: another process's socket would take it;
 * - `unknown`: /proc cannot tell (not Linux).
 */
export type PortHolder = 'none' | 'ours' | 'other' | 'unknown';

export interface Listener {
  /** Canonical address (ipaddr.js normalized form; an IPv4-mapped IPv6 address as IPv4). */
  address: string;
  inode: number;
  /** The user that opened the socket. */
  uid: number;
}

const LISTEN = '0A';
const V4_ANY = canonical('0.0.0.0');
const V6_ANY = canonical('::');

/** The listening TCP sockets on `port` (every port when none is given); null when /proc/net cannot be read. */
export function listenersOn(port?: number): Listener[] | null {
  const found: Listener[] = [];
  let readable = false;
  for (const [file, v6] of [
    ['/proc/net/tcp', false],
    ['/proc/net/tcp6', true],
  ] as const) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue; // no IPv6, or no /proc
    }
    readable = true;
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== LISTEN) continue;
      const [addressHex, portHex] = f[1]!.split(':');
      if (portHex === undefined || (port !== undefined && parseInt(portHex, 16) !== port)) continue;
      found.push({ address: procAddress(addressHex!, v6), inode: Number(f[9]), uid: Number(f[7]) });
    }
  }
  return readable ? found : null;
}

/**
 * Whose socket would take a connection to `host:port` by user: `ours` when
 * it is this process's user's. For a client of a server couchlog runs as
 * its own user (the embedded ClickHouse), which cannot hand its socket on:
 * while it restarts, any local user may bind its port, and must not be
 * sent its password. Another user cannot open a socket as ours.
 */
export function portUser(host: string, port: number): PortHolder {
  const serving = servingListener(host, port);
  if (serving === undefined || process.getuid === undefined) return 'unknown';
  if (serving === null) return 'none';
  return serving.uid === process.getuid() ? 'ours' : 'other';
}

/** The listener that would take a connection to `host:port`: null when none, undefined when /proc cannot tell. */
export function servingListener(host: string, port: number): Listener | null | undefined {
  // A host name (localhost) may resolve to either family: /proc cannot say which socket takes it.
  if (!ipaddr.isValid(host.replace(/^\[(.*)\]$/, '$1'))) return undefined;
  const listeners = listenersOn(port);
  if (listeners === null) return undefined;
  const target = canonical(host);
  const v4 = ipaddr.parse(target).kind() === 'ipv4';
  const rank = (l: Listener): number => (l.address === target ? 0 : l.address === (v4 ? V4_ANY : V6_ANY) ? 1 : v4 && l.address === V6_ANY ? 2 : -1);
  return listeners.filter((l) => rank(l) >= 0).sort((a, b) => rank(a) - rank(b))[0] ?? null;
}

/** An address in the one form both sides of a comparison use. */
export function canonical(ip: string): string {
  return ipaddr.process(ip.replace(/^\[(.*)\]$/, '$1')).toNormalizedString();
}

/** /proc/net/tcp prints each 32-bit word of an address in host byte order. */
function procAddress(hex: string, v6: boolean): string {
  const bytes: number[] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = hex
      .slice(w, w + 8)
      .match(/../g)!
      .map((b) => parseInt(b, 16));
    bytes.push(...(endianness() === 'LE' ? word.reverse() : word));
  }
  if (!v6) return canonical(bytes.join('.'));
  const address = ipaddr.fromByteArray(bytes) as ipaddr.IPv6;
  return address.isIPv4MappedAddress() ? address.toIPv4Address().toNormalizedString() : address.toNormalizedString();
}
