// Address lists in the config (correlator.exclude_source_ips,
// ingress.trust_proxy) are checked when the file is loaded, so `couchlog
// setup` and `couchlog up` refuse a broken entry with its path instead of
// a part failing later when it starts.
import ipaddr from 'ipaddr.js';
import { z } from 'zod';

/** True for an IPv4 or IPv6 address, or a CIDR of either (prefix within the address's bits). */
export function isIpOrCidr(value: string): boolean {
  try {
    if (value.includes('/')) ipaddr.parseCIDR(value);
    else ipaddr.parse(value);
    return true;
  } catch {
    return false;
  }
}

/** proxy-addr's names for address sets, which trust_proxy also takes. */
const PROXY_SETS = new Set(['loopback', 'linklocal', 'uniquelocal']);

export const ipOrCidr = z.string().refine(isIpOrCidr, (v) => ({ message: `not an IP address or CIDR: "${v}"` }));

export const proxyAddress = z.string().refine(
  (v) => PROXY_SETS.has(v) || isIpOrCidr(v),
  (v) => ({ message: `not an IP address, CIDR or one of ${[...PROXY_SETS].join(', ')}: "${v}"` }),
);
