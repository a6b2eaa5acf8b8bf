#!/usr/bin/env node
// npm run bench:protection [-- --couchdb-url URL --requests N --bulk-size N --json]
// With --couchdb-url, the admin comes from COUCHDB_USER / COUCHDB_PASSWORD (never from the command line).
import { Command } from 'commander';
import { benchProtection, formatReport } from '../bench/protection-bench.js';
import { couchChoice, intAtLeast, usageError, usageErrorsExit2 } from '../bench/bench-stack.js';
import { freePort } from '../bench/free-port.js';
import { toolCouchAdminEnv } from '../lib/config/tool-env.js';

const opts = usageErrorsExit2(new Command('bench-protection'))
  .description(
    'append-only protection options against the same CouchDB: _bulk_docs into a bare database, with the JavaScript validate_doc_update, with an Erlang one',
  )
  .option('--couchdb-url <url>', 'an external CouchDB (e.g. Apache CouchDB 3); admin from COUCHDB_USER / COUCHDB_PASSWORD. Default: the embedded server')
  .option('--requests <n>', '_bulk_docs per run', intAtLeast(1), 20)
  .option('--bulk-size <n>', 'documents per _bulk_docs', intAtLeast(1), 1000)
  .option('--json', 'print the figures as JSON too')
  .parse()
  .opts<{ couchdbUrl?: string; requests: number; bulkSize: number; json?: boolean }>();

const couch = couchChoice(opts.couchdbUrl, toolCouchAdminEnv());
if (typeof couch === 'string') usageError('bench-protection', couch);
const report = await benchProtection({ couch, couchPort: await freePort(), requests: opts.requests, bulkSize: opts.bulkSize }, (line) =>
  process.stderr.write(`${line}\n`),
);
process.stdout.write(`${formatReport(report)}\n`);
if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
