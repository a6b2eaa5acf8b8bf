#!/usr/bin/env node
// npm run bench:ship [-- --mb N --runs N --lines N --batch-size N --concurrency N --couchdb-url URL --json]
// With --couchdb-url, the admin comes from COUCHDB_USER / COUCHDB_PASSWORD (never from the command line).
import { Command } from 'commander';
import { benchShip, formatShipBench } from '../bench/ship-bench.js';
import { couchChoice, intAtLeast, usageError, usageErrorsExit2 } from '../bench/bench-stack.js';
import { freePort } from '../bench/free-port.js';
import { toolCouchAdminEnv } from '../lib/config/tool-env.js';

const opts = usageErrorsExit2(new Command('bench-ship'))
  .description('(a) jsonformat vs awk on a generated fail2ban log; (b) couchlog-ship through the ingress vs a direct _bulk_docs load of the same documents')
  .option('--mb <n>', 'size of the generated fail2ban log for jsonformat vs awk', intAtLeast(1), 100)
  .option('--runs <n>', 'runs of each tool (the best counts)', intAtLeast(1), 3)
  .option('--lines <n>', 'fail2ban lines shipped (and loaded directly), per run', intAtLeast(1), 100_000)
  .option('--batch-size <n>', 'documents per request, both sides', intAtLeast(1), 1000)
  .option('--concurrency <n>', 'requests in flight, both sides', intAtLeast(1), 4)
  .option(
    '--couchdb-url <url>',
    'an external CouchDB for (b) (e.g. Apache CouchDB 3); admin from COUCHDB_USER / COUCHDB_PASSWORD. Default: the embedded server',
  )
  .option('--json', 'print the figures as JSON too')
  .parse()
  .opts<{ mb: number; runs: number; lines: number; batchSize: number; concurrency: number; couchdbUrl?: string; json?: boolean }>();

const couch = couchChoice(opts.couchdbUrl, toolCouchAdminEnv());
if (typeof couch === 'string') usageError('bench-ship', couch);

const report = await benchShip(
  {
    jsonformatMB: opts.mb,
    runs: opts.runs,
    shipLines: opts.lines,
    batchSize: opts.batchSize,
    concurrency: opts.concurrency,
    couchPort: await freePort(),
    ingressPort: await freePort(),
    couch,
  },
  (line) => process.stderr.write(`${line}\n`),
);
process.stdout.write(`${formatShipBench(report)}\n`);
if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
