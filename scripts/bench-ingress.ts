#!/usr/bin/env node
// npm run bench:ingress [-- --singles N --concurrency C --bulk-requests N --bulk-size N --bulk-concurrency C --couchdb-url URL --protection validate|audit --json]
// With --couchdb-url, the admin comes from COUCHDB_USER / COUCHDB_PASSWORD (never from the command line).
import { Command } from 'commander';
import { benchIngress, formatReport, PROTECTION_CHOICES, type ProtectionChoice } from '../bench/ingress-bench.js';
import { couchChoice, intAtLeast, usageError, usageErrorsExit2 } from '../bench/bench-stack.js';
import { freePort } from '../bench/free-port.js';
import { toolCouchAdminEnv } from '../lib/config/tool-env.js';

const opts = usageErrorsExit2(new Command('bench-ingress'))
  .description(
    'the ingress against the same CouchDB: single POSTs and _bulk_docs, straight into a log database, into a bare one (no design document) and through the ingress',
  )
  .option('--singles <n>', 'single-document POSTs per side', intAtLeast(1), 5000)
  .option('--concurrency <n>', 'concurrent clients for single POSTs', intAtLeast(1), 64)
  .option('--bulk-requests <n>', '_bulk_docs requests per side', intAtLeast(1), 40)
  .option('--bulk-size <n>', 'documents per _bulk_docs', intAtLeast(1), 1000)
  .option('--bulk-concurrency <n>', 'concurrent clients for _bulk_docs', intAtLeast(1), 4)
  .option('--couchdb-url <url>', 'an external CouchDB (e.g. Apache CouchDB 3); admin from COUCHDB_USER / COUCHDB_PASSWORD. Default: the embedded server')
  .option('--protection <mode>', `apps.<app>.protection of the benchmark's apps: ${PROTECTION_CHOICES.join(' or ')} (default: the config's default)`)
  .option('--json', 'print the figures as JSON too')
  .parse()
  .opts<{
    singles: number;
    concurrency: number;
    bulkRequests: number;
    bulkSize: number;
    bulkConcurrency: number;
    couchdbUrl?: string;
    protection?: string;
    json?: boolean;
  }>();

const couch = couchChoice(opts.couchdbUrl, toolCouchAdminEnv());
if (typeof couch === 'string') usageError('bench-ingress', couch);
if (opts.protection !== undefined && !(PROTECTION_CHOICES as readonly string[]).includes(opts.protection)) {
  usageError('bench-ingress', `--protection ${opts.protection}: ${PROTECTION_CHOICES.join(' or ')}`);
}

const report = await benchIngress(
  {
    singles: opts.singles,
    singleConcurrency: opts.concurrency,
    bulkRequests: opts.bulkRequests,
    bulkSize: opts.bulkSize,
    bulkConcurrency: opts.bulkConcurrency,
    couchPort: await freePort(),
    ingressPort: await freePort(),
    couch,
    ...(opts.protection !== undefined && { protection: opts.protection as ProtectionChoice }),
  },
  (line) => process.stderr.write(`${line}\n`),
);
process.stdout.write(`${formatReport(report)}\n`);
if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
