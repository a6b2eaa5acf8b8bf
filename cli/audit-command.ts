// `couchlog audit`: checks every log database (or the ones named) for
// stored documents that were changed, deleted or given a second revision
// branch, for the validation design document the configured protection
// wants, and log_correlated, whenever the signing key is there (whatever
// the protection now), for records without the correlator's valid
// signature (lib/audit/). Exit codes: 0 intact, 3 findings, 2 bad usage or
// config, 1 could not check. `--resign`: the one-off upgrade of unbound
// signatures (audit-resign.ts).
import { Command } from 'commander';
import { dbName, loadConfig, SIGNING_KEY_NAME, type Config } from '../lib/config/load.js';
import { adminClient } from '../lib/couch/admin-client.js';
import { auditDatabase, FINDING_KINDS, totalFindings, type DbAudit } from './audit-db.js';
import { resignDatabase, type ResignResult } from './audit-resign.js';
import { correlatedValidateDoc, designDocsForApp, VALIDATE_DDOC_ID, type DesignDoc } from '../design-docs/index.js';
import { UsageError } from '../lib/errors.js';
import { EXIT_CODES } from './run-cli.js';

interface AuditCliOptions {
  app?: string[];
  json?: boolean;
  list: string;
  resign?: boolean;
}

/**
 * The validation design document a database must hold by the config: the
 * correlator's output by its protection, an app by its own, any other
 * log_* database (auto-created) validate's, as the ingress creates them.
 */
export function expectedValidation(config: Config, db: string): DesignDoc | null {
  const out = config.correlator.outputs.couchdb;
  if (db === dbName(out.app)) return out.protection === 'validate' ? correlatedValidateDoc() : null;
  const app = config.apps[db.slice(dbName('').length)];
  if ((app?.protection ?? 'validate') === 'audit') return null;
  return designDocsForApp(app?.reports ?? [], 'validate').find((d) => d._id === VALIDATE_DDOC_ID)!;
}

/** The key log_correlated's signatures are checked with: whenever there is one; required under audit. */
function signingKeyFor(config: Config, db: string): string | null {
  const out = config.correlator.outputs.couchdb;
  if (db !== dbName(out.app)) return null;
  if (out.protection === 'audit' && out.signing_key === null)
    throw new UsageError(`${db} is under audit protection but there is no signing key: set ${SIGNING_KEY_NAME} (environment or secrets.env)`);
  return out.signing_key;
}

/**
 * The log databases to audit: the ones named, else the ones couchlog setup
 * creates (every configured app's and the correlator's output) and every
 * other log_* database on the server. The configured ones are listed even
 * when the server lacks them, so that a missing one fails the audit (exit 1)
 * instead of passing unseen: a COUCHDB_URL naming another server would
 * otherwise audit nothing and say intact.
 */
export async function databases(config: Config, apps: string[] | undefined): Promise<string[]> {
  if (apps && apps.length > 0) return apps.map(dbName);
  const all = await adminClient(config).must<string[]>('listing databases', 'GET', '/_all_dbs');
  const configured = [...Object.keys(config.apps), config.correlator.outputs.couchdb.app].map(dbName);
  return [...new Set([...configured, ...all.filter((db) => db.startsWith('log_'))])].sort();
}

export async function runAudit(config: Config, apps: string[] | undefined, maxListed: number): Promise<DbAudit[]> {
  const admin = adminClient(config);
  const signed = dbName(config.correlator.outputs.couchdb.app);
  const audits: DbAudit[] = [];
  for (const db of await databases(config, apps)) {
    const signingKey = signingKeyFor(config, db);
    // Without a key (validate, never under audit) the correlator's corrections are revisions above 1 and deletions, by design.
    const corrections = db === signed && signingKey === null;
    audits.push(await auditDatabase(admin, db, { signingKey, corrections, maxListed, validation: expectedValidation(config, db) }));
  }
  return audits;
}

/** `--resign`: log_correlated's unbound signatures, once (audit-resign.ts). */
export async function runResign(config: Config): Promise<ResignResult> {
  const out = config.correlator.outputs.couchdb;
  if (out.signing_key === null)
    throw new UsageError(`there is no signing key to re-sign ${dbName(out.app)} with: set ${SIGNING_KEY_NAME} (environment or secrets.env)`);
  return resignDatabase(adminClient(config), dbName(out.app), out.signing_key);
}

export function formatResign(r: ResignResult): string {
  const failed = r.failed === 0 ? '' : `; ${r.failed} not re-signed (moved meanwhile, run couchlog audit), e.g. ${r.failedIds.slice(0, 5).join(' ')}`;
  return `${r.db}: ${r.checked} documents, ${r.resigned} unbound signature(s) re-signed for their revision generation${failed}\n`;
}

export function formatAudit(audits: readonly DbAudit[]): string {
  const lines: string[] = [];
  for (const a of audits) {
    const bad = FINDING_KINDS.filter((k) => a.counts[k] > 0);
    const what = a.rules === 'signed' ? 'signed records' : a.rules === 'corrections' ? "the correlator's records: only branches are findings" : 'append-only';
    lines.push(`${a.db} (${what}): ${a.checked} documents, ${bad.length === 0 ? 'intact' : bad.map((k) => `${a.counts[k]} ${k}`).join(', ')}`);
    for (const f of a.findings) lines.push(`  ${f.kind.padEnd(13)} ${f.id}  ${f.revs.join(' ')}${f.detail ? `  (${f.detail})` : ''}`);
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
    .option('--resign', "once, after upgrading: re-sign log_correlated's unbound (old-format) signatures for their revision generation")
    .action(async (o: AuditCliOptions) => {
      if (!/^\d+$/.test(o.list)) throw new UsageError('--list must be a non-negative integer');
      const { config } = loadConfig({ file: configFile() });
      if (o.resign) {
        const r = await runResign(config);
        process.stdout.write(o.json ? `${JSON.stringify(r)}\n` : formatResign(r));
        if (r.failed > 0) process.exitCode = EXIT_CODES.auditFindings;
        return;
      }
      const audits = await runAudit(config, o.app, Number(o.list));
      process.stdout.write(o.json ? `${JSON.stringify(audits)}\n` : formatAudit(audits));
      if (totalFindings(audits) > 0) process.exitCode = EXIT_CODES.auditFindings;
    });
}
