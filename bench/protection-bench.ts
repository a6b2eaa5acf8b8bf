// Benchmark of the ways a log database can be kept append-only (issue 13,
// docs/append-only.md), in one run against the same CouchDB: `_bulk_docs`
// of the same small log documents, as the writer, into
//  - a bare database (no design document): the physical anchor, and what
//    `protection: audit` costs (nothing at write time);
//  - the same with couchlog's JavaScript validate_doc_update
//    (`protection: validate`);
//  - the same with that validation written in Erlang, for CouchDB's native
//    query server, which an operator must enable
//    (`[native_query_servers] enable_erlang_query_server = true`); skipped,
//    and said so, where the server refuses it (and on the embedded server).
// Each variant runs twice, interleaved (bare, js, erlang, bare, js, erlang),
// in databases of their own, and its figure is the mean of both.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { basicAuth } from '../lib/couch/basic-auth.js';
import { CouchHttp } from '../lib/couch/http.js';
import { couchUrl } from '../lib/config/load.js';
import type { EmbeddedCouch } from '../embedded/pouchdb-server.js';
import { LOG_DB_SECURITY } from '../setup/ensure-app-db.js';
import { validateDesignDoc, VALIDATE_DDOC_ID } from '../design-docs/index.js';
import { benchConfig, describeCouch, startCouchStack, type CouchChoice } from './bench-stack.js';

export const VARIANTS = ['bare', 'javascript', 'erlang'] as const;
export type Variant = (typeof VARIANTS)[number];

/**
 * couchlog's append-only rule (design-docs/append-only.ts) for CouchDB's
 * native Erlang query server: the function gets the documents as EJSON and
 * answers 1, or throws {[{<<"forbidden">>, Reason}]} as a JavaScript one would.
 */
export const ERLANG_APPEND_ONLY = `fun({NewDoc}, OldDoc, {UserCtx}, _SecObj) ->
  Roles = proplists:get_value(<<"roles">>, UserCtx, []),
  Forbid = fun(Reason) -> throw({[{<<"forbidden">>, Reason}]}) end,
  case lists:member(<<"_admin">>, Roles) of
    true -> 1;
    false ->
      lists:member(<<"log_writer">>, Roles) orelse Forbid(<<"only users with the log_writer role may add log documents">>),
      case proplists:get_value(<<"_id">>, NewDoc) of
        <<"_design/", _/binary>> -> Forbid(<<"only admins may write design documents">>);
        _ -> ok
      end,
      proplists:get_value(<<"_deleted">>, NewDoc) =:= true andalso Forbid(<<"log databases are append-only: documents cannot be deleted">>),
      case OldDoc of
        null -> 1;
        _ -> Forbid(<<"conflict: document exists and log databases are append-only">>)
      end
  end
end.`;

export interface ProtectionBenchOptions {
  couch: CouchChoice;
  couchPort: number;
  requests: number;
  bulkSize: number;
}

export interface VariantResult {
  variant: Variant;
  /** docs/s of each run; empty when skipped. */
  runs: number[];
  docsPerSecond: number | null;
  ratioToBare: number | null;
  /** Why it was not measured, or what refusing an update answered. */
  note: string;
}

export interface ProtectionBenchReport {
  server: string;
  requests: number;
  bulkSize: number;
  variants: VariantResult[];
}

const doc = (i: number) => ({ date: '2017-06-14', hour: '17:16:12,329', process: 'sshd', machine: 'server', ip: `59.45.${(i >> 8) & 255}.${i & 255}`, seq: i });

export async function benchProtection(o: ProtectionBenchOptions, progress: (line: string) => void): Promise<ProtectionBenchReport> {
  const dataDir = mkdtempSync(join(tmpdir(), 'couchlog-bench-protection-'));
  const { config, prefix } = benchConfig({ dataDir, couch: o.couch, couchPort: o.couchPort });
  config.apps = {};
  config.clickhouse.enabled = false;
  const logger = pino({ level: 'silent' });
  const url = couchUrl(config);
  const http = new CouchHttp(url, { timeoutMs: 300_000, retryAfterS: 5 });
  const admin = { authorization: basicAuth(config.couchdb.admin.user, config.couchdb.admin.password!) };
  const writer = { authorization: basicAuth(config.users.writer.user, config.users.writer.password!) };
  const made: string[] = [];
  let embedded: EmbeddedCouch | null = null;
  try {
    embedded = (await startCouchStack(config, logger, { ingress: false })).embedded;
    const server = await describeCouch(url, embedded !== null, admin);
    progress(`measuring ${server}`);
    const ddocs: Record<Variant, Record<string, unknown> | null> = {
      bare: null,
      javascript: validateDesignDoc() as unknown as Record<string, unknown>,
      erlang: embedded ? null : { _id: VALIDATE_DDOC_ID, language: 'erlang', validate_doc_update: ERLANG_APPEND_ONLY },
    };
    const results = new Map<Variant, VariantResult>(VARIANTS.map((v) => [v, { variant: v, runs: [], docsPerSecond: null, ratioToBare: null, note: '' }]));
    if (embedded) results.get('erlang')!.note = 'skipped: the embedded server has no Erlang query server';
    const bodies = Array.from({ length: o.requests }, (_, r) =>
      JSON.stringify({ docs: Array.from({ length: o.bulkSize }, (_, j) => doc(r * o.bulkSize + j)) }),
    );
    for (const round of [1, 2]) {
      for (const variant of VARIANTS) {
        const result = results.get(variant)!;
        if (variant === 'erlang' && (embedded || (round === 2 && result.runs.length === 0))) continue;
        const db = `${prefix}prot_${variant}_${round}`;
        made.push(db);
        await must(http, 'PUT', `/${db}`, admin, undefined, [201, 202]);
        await must(http, 'PUT', `/${db}/_security`, admin, JSON.stringify(LOG_DB_SECURITY), [200]);
        const ddoc = ddocs[variant];
        if (ddoc) await must(http, 'PUT', `/${db}/${VALIDATE_DDOC_ID}`, admin, JSON.stringify({ ...ddoc, _id: undefined }), [201, 202]);
        // The rule must hold before its speed means anything: an update is refused.
        const first = await http.request<{ id: string; rev: string }>('POST', `/${db}`, { headers: writer, body: JSON.stringify({ probe: 1 }) });
        const update = await http.request<{ error?: string; reason?: string }>('PUT', `/${db}/${first.body.id}`, {
          headers: writer,
          body: JSON.stringify({ _rev: first.body.rev, probe: 2 }),
        });
        if (ddoc && update.status !== 403) {
          result.note =
            `skipped: the server does not run it (an update answered ${update.status} ${update.body.error ?? ''} ${update.body.reason ?? ''})`.trim();
          continue;
        }
        result.note = ddoc ? `an update answers 403 "${update.body.reason}"` : `an update answers ${update.status} (nothing refuses it: the audit finds it)`;
        progress(`  ${variant}, run ${round}: ${o.requests} _bulk_docs of ${o.bulkSize}...`);
        const t0 = process.hrtime.bigint();
        for (const body of bodies) await must(http, 'POST', `/${db}/_bulk_docs`, writer, body, [201]);
        result.runs.push((o.requests * o.bulkSize) / (Number(process.hrtime.bigint() - t0) / 1e9));
      }
    }
    const mean = (xs: number[]) => (xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length);
    const bare = mean(results.get('bare')!.runs)!;
    for (const r of results.values()) {
      r.docsPerSecond = mean(r.runs);
      r.ratioToBare = r.docsPerSecond === null ? null : r.docsPerSecond / bare;
    }
    return { server, requests: o.requests, bulkSize: o.bulkSize, variants: [...results.values()] };
  } finally {
    if (!embedded) for (const db of made) await http.request('DELETE', `/${db}`, { headers: admin });
    await http.close();
    await embedded?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function must(
  http: CouchHttp,
  method: 'PUT' | 'POST',
  path: string,
  headers: Record<string, string>,
  body: string | undefined,
  ok: number[],
): Promise<void> {
  const res = await http.request(method, path, { headers, body });
  if (!ok.includes(res.status)) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body).slice(0, 300)}`);
}

export function formatReport(r: ProtectionBenchReport): string {
  const lines = [
    `CouchDB: ${r.server}`,
    `${r.requests} _bulk_docs of ${r.bulkSize} small log documents per run, as the writer, one at a time; two runs each, interleaved`,
  ];
  for (const v of r.variants) {
    const figure =
      v.docsPerSecond === null
        ? '      -'
        : `${v.docsPerSecond.toFixed(0).padStart(7)} docs/s (${v.runs.map((x) => x.toFixed(0)).join(', ')})  ${v.ratioToBare!.toFixed(2)}x bare`;
    lines.push(`  ${v.variant.padEnd(11)} ${figure}`, `              ${v.note}`);
  }
  return lines.join('\n');
}
