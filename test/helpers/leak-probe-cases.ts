// The anonymous leak probe's cases, shared by the ingress's own probe
// (test/integration/leak-probe.test.ts) and the same probe sent through
// nginx (test/integration/nginx.test.ts): every method that matters, to
// every CouchDB route that reads or acts, with a body that would make each
// route act were it allowed to.
import type { Stack } from './stack.js';
import { http } from './stack.js';
import { adminClient } from '../../lib/couch/admin-client.js';

export const MARKER = 'leak-probe-marker-7f3a9c';
export const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'COPY'] as const;

/** Routes to probe; `__ID__` stands for a stored document's id. */
export function probePaths(): string[] {
  const db = '/log_appname';
  return [
    '/',
    '/_all_dbs',
    '/_active_tasks',
    '/_db_updates',
    '/_uuids',
    '/_config',
    '/_config/admins',
    '/_config/admins/intruder',
    '/_config/couch_httpd_auth/require_valid_user',
    '/_node/_local/_config',
    '/_node/nonode@nohost/_config/admins',
    '/_node/_local/_stats',
    '/_users',
    '/_users/_all_docs',
    '/_users/org.couchdb.user:reader',
    '/_users/org.couchdb.user:intruder',
    '/_replicator',
    '/_replicate',
    '/_restart',
    '/_utils/_all_dbs',
    '/_utils/..%2f_all_dbs',
    '/_utils/%2e%2e/log_appname/_all_docs',
    db,
    `${db}/_all_docs`,
    `${db}/_all_docs?include_docs=true`,
    `${db}/_find`,
    `${db}/_explain`,
    `${db}/_index`,
    `${db}/_bulk_get`,
    `${db}/_changes`,
    `${db}/_changes?include_docs=true&feed=normal`,
    `${db}/_revs_diff`,
    `${db}/_missing_revs`,
    `${db}/_purge`,
    `${db}/_compact`,
    `${db}/_view_cleanup`,
    `${db}/_security`,
    `${db}/_temp_view`,
    `${db}/_design/couchlog`,
    `${db}/_design/couchlog/_view/anything`,
    `${db}/_design/couchlog/_list/html/anything`,
    `${db}/_design/couchlog/_show/x`,
    `${db}/_design/evil`,
    `${db}/_local/checkpoint`,
    `${db}/__ID__`,
    `${db}/__ID__?revs_info=true`,
    '/log_fail2ban/_all_docs',
    '/log_newdb_probe',
    '/newdb_probe',
    '/LOG_APPNAME/_all_docs',
  ];
}

/** POST /log_<app> is the write route: it is meant to store documents. */
export function isWriteRoute(method: string, path: string): boolean {
  return method === 'POST' && /^\/log_(appname|fail2ban)$/.test(path);
}

export const PROBE_BODY = JSON.stringify({
  selector: {},
  keys: ['__ID__'],
  docs: [{ id: '__ID__' }],
  index: { fields: ['secret'] },
  source: 'log_appname',
  target: 'stolen_copy',
  create_target: true,
  map: 'function(doc){emit(doc._id, doc)}',
  views: { all: { map: 'function(doc){emit(doc._id, doc)}' } },
  members: { names: ['intruder'], roles: [] },
  admins: { names: ['intruder'], roles: [] },
  name: 'intruder',
  password: 'intruder-password',
  roles: ['_admin'],
  type: 'user',
});

/** The state a probe must not change: databases, their counts, sequences and security, admins, require_valid_user. */
export async function couchSnapshot(stack: Stack): Promise<string> {
  const admin = { authorization: stack.auth.admin };
  const dbs = (await http(`${stack.couchUrl}/_all_dbs`, { headers: admin })).json as string[];
  const state: Record<string, unknown> = { dbs };
  for (const db of dbs) {
    const info = (await http(`${stack.couchUrl}/${db}`, { headers: admin })).json;
    const security = (await http(`${stack.couchUrl}/${db}/_security`, { headers: admin })).json;
    // CouchDB 3's sequences are "N-opaque"; in a cluster the opaque part names whichever shard copies answered.
    const seq = typeof info.update_seq === 'string' ? parseInt(info.update_seq, 10) : info.update_seq;
    state[db] = { docs: info.doc_count, deleted: info.doc_del_count, seq, security };
  }
  // PouchDB Server keeps its configuration under /_config, CouchDB 3 under /_node/_local/_config.
  const client = adminClient(stack.config);
  const couchdb3 = (await client.serverInfo()).flavor === 'couchdb';
  state.admins = (await http(`${stack.couchUrl}${couchdb3 ? '/_node/_local/_config' : '/_config'}/admins`, { headers: admin })).json;
  const rvu = couchdb3
    ? [
        ['chttpd', 'require_valid_user'],
        ['chttpd_auth', 'require_valid_user'],
      ]
    : [['couch_httpd_auth', 'require_valid_user']];
  state.rvu = [];
  for (const [section, key] of rvu)
    (state.rvu as unknown[]).push((await http(`${stack.couchUrl}${await client.configPath(section!, key!)}`, { headers: admin })).json);
  return JSON.stringify(state);
}
