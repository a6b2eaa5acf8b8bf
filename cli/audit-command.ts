// `couchlog audit`: checks every log database (or the ones named) for
// stored documents that were changed, deleted or given a second revision
// branch, and log_correlated under audit protection for records without
// the correlator's valid signature (lib/audit/). Exit codes: 0 intact,
// 3 findings, 2 bad usage or config, 1 could not check.
import { Command } from 'commander';
import { dbName, loadConfig, SIGNING_KEY_NAME, type Config } from '../lib/config/load.js';
import { adminClient } from '../lib/couch/admin-client.js';
import { auditDatabase, FINDING_KINDS, totalFindings, type DbAudit } from './audit-db.js';
import { UsageError } from '../lib/errors.js';
import { EXIT_CODES } from './run-cli.js';

interface AuditCliOptions {
  app?: string[];
  json?: boolean;
  list: string;
}

/** The log databases to audit: the ones named, else every log_* database on the server. */
async function databases(config: Config, apps: string[] | undefined): Promise<string[]> {
  if (apps && apps.length > 0) return apps.map(dbName);
  const all = await adminClient(config).must<string[]>('listing databases', 'GET', '/_all_dbs');
  return all.filter((db) => db.startsWith('log_'));
}

export async function runAudit(config: Config, apps: string[] | undefined, maxListed: number): Promise<DbAudit[]> {
  const admin = adminClient(config);
  const out = config.correlator.outputs.couchdb;
  const signed = dbName(out.app);
  const audits: DbAudit[] = [];
  for (const db of await databases(config, apps)) {
    let signingKey: string | null = null;
    if (db === signed && out.protection === 'audit') {
      if (out.signing_key === null)
        throw new UsageError(`${db} is under audit protection but there is no signing key: set ${SIGNING_KEY_NAME} (environment or secrets.env)`);
      signingKey = out.signing_key;
    }
    // Under validate protection the correlator's corrections are revisions above 1 and deletions, by design.
    audits.push(await auditDatabase(admin, db, { signingKey, corrections: db === signed && signingKey === null, maxListed }));
  }
  return audits;
}

export function formatAudit(audits: readonly DbAudit[]): string {
  const lines: string[] = [];
  for (const a of audits) {
    const bad = FINDING_KINDS.filter((k) => a.counts[k] > 0);
    const what = a.rules === 'signed' ? 'signed records' : a.rules === 'corrections' ? "the correlator's records: only branches are findings" : 'append-only';
    lines.push(`${a.db} (${what}): ${a.checked} documents, ${bad.length === 0 ? 'intact' : bad.map((k) => `${a.counts[k]} ${k}`).join(', ')}`);
    for (const f of a.findings) lines.push(`  ${f.kind.padEnd(13)} ${f.id}  ${f.revs.join(' ')}`);
  }
  const total = totalFindings(audits);
  lines.push(total === 0 ? `audit: ${audits.length} database(s) intact` : `audit: ${total} finding(s)`);
  return `${lines.join('\n')}\n`;
}

export function auditCommand(name: string, configFile: () => string | undefined): Command {
  return new Command(name)
    .description('check that no stored log document was changed, deleted or branched, and that correlated records carry valid signatures (exit 3 on findings)')
    .option('--app <app...>', 'only these apps (default: every log_* database)')
    .option('--list <n>', 'findings listed per database (all are counted)', '100')
    .option('--json', 'print the result as JSON')
    .action(async (o: AuditCliOptions) => {
      if (!/^\d+$/.test(o.list)) throw new UsageError('--list must be a non-negative integer');
      const { config } = loadConfig({ file: configFile() });
      const audits = await runAudit(config, o.app, Number(o.list));
      process.stdout.write(o.json ? `${JSON.stringify(audits)}\n` : formatAudit(audits));
      if (totalFindings(audits) > 0) process.exitCode = EXIT_CODES.auditFindings;
    });
}
