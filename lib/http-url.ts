// The one way a host and port become an http:// URL: an IPv6 address goes
// in brackets (http://[::1]:8080), and a wildcard listen address (0.0.0.0,
// ::), where a server listens but no client can connect, becomes the
// loopback address when the URL is for a client on this machine.

/** True for the addresses that mean "every interface" when listening. */
export function isWildcardHost(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

export interface HttpUrlOptions {
  /** The URL is for a client here: a wildcard host becomes 127.0.0.1. */
  reachable?: boolean;
}

export function httpUrl(host: string, port: number, options: HttpUrlOptions = {}): string {
  const h = options.reachable && isWildcardHost(host) ? '127.0.0.1' : host.replace(/^\[(.*)\]$/, '$1');
  return `http://${h.includes(':') ? `[${h}]` : h}:${port}`;
}

// scheme://userinfo@ : the userinfo ends at the last "@" before the host (a "@" in a password is that
// password's), and cannot hold "/", "?", "#" or white space, which end the authority (or the URL).
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#]*@/gi;
// A URL someone typed with a password holding "/", "?" or "#" unencoded is no valid URL, but
// its message still quotes it: "user:" then anything up to a "@", unless what follows the
// colon is a port (digits, then the end of the authority). White space may be in it too (a
// password typed with a space): the line's next "@" ends it; more text hidden is harmless.
const BROKEN_URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#:@]*:(?!\d*(?:[/?#\s]|$))[^\r\n@]*@/gi;

/** `text` with the credentials of every URL in it replaced by [redacted]: for messages that may quote a URL someone gave. */
export function redactUrlCredentials(text: string): string {
  return text.replace(URL_CREDENTIALS, '$1[redacted]@').replace(BROKEN_URL_CREDENTIALS, '$1[redacted]@');
}
