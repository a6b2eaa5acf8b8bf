// URLs of servers couchlog talks to (CouchDB, ClickHouse, HEC targets):
// http or https, and never with credentials in them. A URL is printed in
// banners, setup notes and error messages; a password inside it would be
// printed with it. Credentials have keys and environment variables of
// their own, which the error names.
import { z } from 'zod';

/** What is wrong with `value` as such a URL (empty: nothing). The value itself is never repeated: it may hold a secret. */
export function httpUrlProblems(value: string, credentialsFrom: string, o: { rootOnly?: boolean } = {}): string[] {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return ['not a URL'];
  }
  const problems: string[] = [];
  if (!/^https?:$/.test(url.protocol)) problems.push('must be an http:// or https:// URL');
  if (url.username || url.password) problems.push(`must not contain credentials: use ${credentialsFrom}`);
  // CouchDB's API lives at the root of its server: couchlog builds every path from there, so a
  // prefix (a CouchDB behind a reverse proxy under /couchdb/) is refused here, not met later as
  // an internal error. Serve it from its own host name or port instead.
  if (o.rootOnly && (url.pathname !== '/' || url.search || url.hash))
    problems.push('must be the server root, without a path, query or fragment (a CouchDB behind a path prefix is not supported)');
  return problems;
}

export function httpUrlWithoutCredentials(credentialsFrom: string, o: { rootOnly?: boolean } = {}): (value: string, ctx: z.RefinementCtx) => void {
  return (value, ctx) => {
    for (const message of httpUrlProblems(value, credentialsFrom, o)) ctx.addIssue({ code: z.ZodIssueCode.custom, message });
  };
}
