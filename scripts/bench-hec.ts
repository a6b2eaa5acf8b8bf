#!/usr/bin/env node
// npm run bench:hec [-- --requests N --batch N --concurrency C --forward-docs N --couchdb-url URL --json]
// With --couchdb-url, the admin comes from COUCHDB_USER / COUCHDB_PASSWORD (never from the command line).
import { Command } from 'commander';
import { benchHec, formatHecReport } from '../bench/hec-bench.js';
import { couchChoice, intAtLeast, usageError, usageErrorsExit2 } from '../bench/bench-stack.js';
import { freePort } from '../bench/free-port.js';
import { toolCouchAdminEnv } from '../lib/config/tool-env.js';

const opts = usageErrorsExit2(new Command('bench-hec'))
  .description(
    "(a) HEC event batches through the ingress vs _bulk_docs of the same documents; (b) couchlog forward into another couchlog's HEC endpoint vs a plain _changes read",
  )
  .option('--requests <n>', 'requests per phase', intAtLeast(1), 300)
  .option('--batch <n>', 'envelopes (documents) per request', intAtLeast(1), 100)
  .option('--concurrency <n>', 'concurrent clients', intAtLeast(1), 8)
  .option('--forward-docs <n>', 'documents in the forwarding phase (0: skip it)', intAtLeast(0), 30000)
  .option('--couchdb-url <url>', 'an external CouchDB (e.g. Apache CouchDB 3); admin from COUCHDB_USER / COUCHDB_PASSWORD. Default: the embedded server')
  .option('--json', 'print the figures as JSON too')
  .parse()
  .opts<{ requests: number; batch: number; concurrency: number; forwardDocs: number; couchdbUrl?: string; json?: boolean }>();

const couch = couchChoice(opts.couchdbUrl, toolCouchAdminEnv());
if (typeof couch === 'string') usageError('bench-hec', couch);

const report = await benchHec(
  {
    forwardDocs: opts.forwardDocs,
    requests: opts.requests,
    batch: opts.batch,
    concurrency: opts.concurrency,
    couchPort: await freePort(),
    ingressPort: await freePort(),
    couch,
  },
  (line) => process.stderr.write(`${line}\n`),
);
process.stdout.write(`${formatHecReport(report)}\n`);
if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
