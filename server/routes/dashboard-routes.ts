// GET /_couchlog/dashboard/<app>: the live dashboard of an app (see
// server/dashboard/). The page carries no data, like Fauxton's static
// files: every figure on it is read by the page itself, with the reader's
// session, through the ingress's verified proxy. GET /_couchlog/dashboard
// lists the apps.
import type { FastifyInstance } from 'fastify';
import { notFound } from '../../lib/errors.js';
import type { DashboardConfig } from '../dashboard/client.js';
import { dashboardPage, type DashboardPage } from '../dashboard/page.js';

export interface DashboardRoutesOptions {
  /** app -> what its documents are. */
  apps: Record<string, DashboardConfig['kind']>;
}

export default async function dashboardRoutes(app: FastifyInstance, opts: DashboardRoutesOptions): Promise<void> {
  const pages = new Map<string, DashboardPage>();
  for (const [name, kind] of Object.entries(opts.apps)) pages.set(name, dashboardPage({ app: name, db: `log_${name}`, kind }));

  app.get('/_couchlog/dashboard', { config: { metricsRoute: 'dashboard' } }, async (_request, reply) => {
    const links = [...pages.keys()].map((name) => `<li><a href="/_couchlog/dashboard/${encodeURIComponent(name)}">log_${name}</a></li>`).join('');
    return reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
      .send(
        `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>couchlog dashboards</title><style>body{font:15px system-ui,sans-serif;margin:2em}</style></head><body><h1>couchlog: live dashboards</h1><ul>${links}</ul></body></html>`,
      );
  });

  app.get<{ Params: { app: string } }>('/_couchlog/dashboard/:app', { config: { metricsRoute: 'dashboard' } }, async (request, reply) => {
    const page = pages.get(request.params.app);
    if (!page) throw notFound('DASHBOARD_UNKNOWN_APP', `no app "${request.params.app}" (apps: ${[...pages.keys()].join(', ')})`);
    return reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', page.csp)
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .send(page.html);
  });
}
