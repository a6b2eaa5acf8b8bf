// Source-IP exclusion by address or CIDR, IPv4 and IPv6 (ipaddr.js), and
// the canonical form of addresses used in correlation keys.
import ipaddr from 'ipaddr.js';

/** A dotted quad already in canonical form (no leading zeros, each part <= 255): the common case, answered without parsing. */
const CANONICAL_V4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Canonical text of an address: IPv4-mapped IPv6 becomes IPv4, IPv6 is RFC 5952 compressed, lower case. */
export function canonicalIp(text: string): string | null {
  if (CANONICAL_V4.test(text)) return text;
  // IPv4-mapped IPv6 in its usual spelling (::ffff:1.2.3.4): the IPv4 address.
  if (text.length > 7 && text.charCodeAt(0) === 58 /* : */ && /^::ffff:/i.test(text) && CANONICAL_V4.test(text.slice(7))) return text.slice(7);
  const trimmed = text.trim().replace(/^\[(.*)\]$/, '$1');
  if (!ipaddr.isValid(trimmed)) return null;
  // ipaddr.process turns ::ffff:1.2.3.4 into 1.2.3.4; zone ids are not addresses.
  if (trimmed.includes('%')) return null;
  const addr = ipaddr.process(trimmed);
  if (addr.kind() === 'ipv4') {
    // isValid accepts legacy forms like "1" or "0x7f.1"; a log's address must be dotted quad.
    if (!ipaddr.IPv4.isValidFourPartDecimal(trimmed) && !trimmed.includes(':')) return null;
    return addr.toString();
  }
  return addr.toString();
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
