// URLs of servers couchlog talks to (CouchDB, ClickHouse, HEC targets):
// http or https, and never with credentials in them. A URL is printed in
// banners, setup notes and error messages; a password inside it would be
// printed with it. Credentials have keys and environment variables of
// their own, which the error names.
import { z } from 'zod';

export function httpUrlWithoutCredentials(credentialsFrom: string): (value: string, ctx: z.RefinementCtx) => void {
  return (value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      // The value itself is not repeated: it may hold a secret.
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'not a URL' });
      return;
    }
    if (!/^https?:$/.test(url.protocol)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be an http:// or https:// URL' });
    if (url.username || url.password) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must not contain credentials: use ${credentialsFrom}` });
  };
}
