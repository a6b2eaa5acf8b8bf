// Source-IP exclusion by address or CIDR, IPv4 and IPv6 (ipaddr.js), and
// the canonical form of addresses used in correlation keys (conn-key.ts).
import ipaddr from 'ipaddr.js';
import { connKeyOf } from './conn-key.js';

/** Canonical text of an address: IPv4-mapped IPv6 becomes IPv4, IPv6 is RFC 5952 compressed, lower case (see conn-key.ts). */
export function canonicalIp(text: string): string | null {
  const k = connKeyOf({ src_ip: text, src_port: 1, timestamp: 1 });
  return typeof k === 'string' ? null : k[0];
}

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** An address or CIDR as [network, prefix bits]; IPv4-mapped IPv6 ranges become IPv4 ranges. */
function parseRange(entry: string): Range {
  try {
    const [addr, bits] = entry.includes('/') ? ipaddr.parseCIDR(entry) : [ipaddr.parse(entry), -1];
    const full = addr.kind() === 'ipv4' ? 32 : 128;
    const prefix = bits < 0 ? full : bits;
    if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
      return [(addr as ipaddr.IPv6).toIPv4Address(), Math.max(0, prefix - 96)];
    }
    return [addr, prefix];
  } catch {
    throw new Error(`not an IP address or CIDR: "${entry}"`);
  }
}

export class IpFilter {
  private readonly ranges: Range[];

  /** Throws on an entry that is neither an address nor a CIDR, naming it. */
  constructor(entries: readonly string[]) {
    this.ranges = entries.map(parseRange);
  }

  get empty(): boolean {
    return this.ranges.length === 0;
  }

  /** `ip` must be canonical (canonicalIp). */
  matches(ip: string): boolean {
    if (this.ranges.length === 0) return false;
    const addr = ipaddr.parse(ip);
    for (const [range, bits] of this.ranges) {
      if (range.kind() === addr.kind() && addr.match(range as never, bits)) return true;
    }
    return false;
  }
}
