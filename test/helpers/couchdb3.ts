// The second server flavour of the integration tests: Apache CouchDB 3
// instead of the embedded PouchDB Server. Chosen by environment, one flavour
// per run (see README, "Tests against Apache CouchDB 3"):
//
//   COUCHLOG_TEST_COUCHDB_START=/path/to/couchdb3/start   every stack starts
//       its own node (or cluster, COUCHLOG_TEST_COUCHDB_NODES=3) in its temp
//       folder on free ports, and kills it at the end: test files stay
//       isolated and can run concurrently. COUCHLOG_TEST_COUCHDB_INI=FILE
//       adds settings to every node (start --ini), e.g. "[cluster]\nq = 1".
//   COUCHLOG_TEST_COUCHDB_URL=http://127.0.0.1:5984 (+ COUCHLOG_TEST_COUCHDB_USER,
//       default admin, and COUCHLOG_TEST_COUCHDB_PASSWORD)   any running
//       CouchDB 3, e.g. the official Docker image. Stacks take turns (a lock
//       file) and each deletes every log_* and couchlog_state_* database first: use a throwaway
//       server.
//
// Neither set: the embedded flavour, as always. The variables are the tests'
// own, never COUCHDB_URL: a COUCHDB_URL left in a shell must not point the
// suite (which deletes databases) at a real server.
import { execFile, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { basicAuth } from '../../lib/couch/basic-auth.js';
import { freePort, portFree } from '../../bench/free-port.js';

const run = promisify(execFile);

export type TestServer =
  { kind: 'embedded' } | { kind: 'couchdb3-start'; script: string; nodes: number } | { kind: 'couchdb3-url'; url: string; user: string; password: string };

let chosen: TestServer | undefined;

/** The server flavour this run's stacks use, from the environment. */
export function testServer(env: NodeJS.ProcessEnv = process.env): TestServer {
  if (chosen && env === process.env) return chosen;
  const start = env.COUCHLOG_TEST_COUCHDB_START || '';
  const url = env.COUCHLOG_TEST_COUCHDB_URL || '';
  let server: TestServer;
  if (start && url) {
    throw new Error('set COUCHLOG_TEST_COUCHDB_START or COUCHLOG_TEST_COUCHDB_URL, not both');
  } else if (start) {
    const script = existsSync(start) && statSync(start).isDirectory() ? join(start, 'start') : start;
    if (!existsSync(script)) throw new Error(`COUCHLOG_TEST_COUCHDB_START: ${script} does not exist`);
    const nodes = Number(env.COUCHLOG_TEST_COUCHDB_NODES || '1');
    if (!Number.isInteger(nodes) || nodes < 1 || nodes > 9)
      throw new Error(`COUCHLOG_TEST_COUCHDB_NODES: expected 1..9, got "${env.COUCHLOG_TEST_COUCHDB_NODES}"`);
    server = { kind: 'couchdb3-start', script, nodes };
  } else if (url) {
    const password = env.COUCHLOG_TEST_COUCHDB_PASSWORD || '';
    if (!password) throw new Error('COUCHLOG_TEST_COUCHDB_URL needs the admin password in COUCHLOG_TEST_COUCHDB_PASSWORD');
    server = { kind: 'couchdb3-url', url: url.replace(/\/+$/, ''), user: env.COUCHLOG_TEST_COUCHDB_USER || 'admin', password };
  } else {
    server = { kind: 'embedded' };
  }
  if (env === process.env) chosen = server;
  return server;
}

/** One line for logs and skip messages: which server the stacks run on. */
export function describeTestServer(server: TestServer = testServer()): string {
  switch (server.kind) {
    case 'embedded':
      return 'embedded PouchDB Server';
    case 'couchdb3-start':
      return `Apache CouchDB 3 from ${server.script}, ${server.nodes === 1 ? 'one node' : `a ${server.nodes}-node cluster`} per stack`;
    case 'couchdb3-url':
      return `Apache CouchDB 3 at ${server.url} (shared, stacks in turn)`;
  }
}

/** A CouchDB 3 under a stack, in place of the embedded server. */
export interface TestCouchdb3 {
  readonly url: string;
  readonly admin: { user: string; password: string };
  /** The (first) node's process while it runs; undefined for a server the tests did not start. */
  readonly pid: number | undefined;
  /** Always 0: nothing restarts a CouchDB 3 behind the tests' back. */
  readonly restarts: number;
  /** Whether stop()/start() can make an outage (only for nodes the tests started). */
  readonly canStop: boolean;
  /** Stops the node(s) as an outage would; start() brings them back with their data. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** A cluster the tests started: kills every node but the first with SIGKILL, as crashes would (stop() and start() bring them back). */
  killOtherNodes?(): Promise<void>;
  /** End of the stack: stops the node(s) for good, or hands a shared server to the next stack. */
  dispose(): Promise<void>;
  /** Resolves once CouchDB's user cache follows _users (see waitForAuthCache). */
  settled(): Promise<void>;
}

/**
 * A fresh CouchDB 3 node's user cache starts following _users' changes
 * only when it finds _users, retrying every 5 s after boot: until then a
 * changed password may not take effect, and _users gets its _design/_auth
 * (the cache creates it) seconds after setup, which would read as a change
 * to a test comparing snapshots. Wait for that design document.
 */
async function waitForAuthCache(url: string, admin: { user: string; password: string }): Promise<void> {
  const authorization = basicAuth(admin.user, admin.password);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const res = await fetch(`${url}/_users/_design/_auth`, { headers: { authorization } });
    await res.arrayBuffer();
    if (res.status === 200) return;
    if (Date.now() > deadline) throw new Error(`${url}/_users/_design/_auth did not appear within 60 s (${res.status})`);
    await sleep(200);
  }
}

/** Starts (or takes its turn on) the CouchDB 3 for one stack; null for the embedded flavour. */
export async function startTestCouchdb3(dataDir: string): Promise<TestCouchdb3 | null> {
  const server = testServer();
  if (server.kind === 'embedded') return null;
  if (server.kind === 'couchdb3-url') return SharedCouchdb3.take(server);
  const pool = process.env.COUCHLOG_TEST_COUCHDB_POOL;
  // A pool drained already (a test process left behind by its runner) gets none: its stack's node is its own.
  if (pool && existsSync(pool)) return OwnCouchdb3.fromPool(server.script, server.nodes, pool);
  return OwnCouchdb3.launch(server.script, server.nodes, join(dataDir, 'couchdb3'));
}

/**
 * Ends every node a run's pool holds (scripts/test-couchdb3.ts, once its
 * test processes are gone) and removes the pool.
 */
export async function drainCouchdb3Pool(pool: string, script: string, nodes: number): Promise<PoolUses> {
  const uses: PoolUses = { started: 0, reused: 0, unusable: 0, left: 0 };
  if (!existsSync(pool)) return uses;
  if (existsSync(join(pool, USES_FILE)))
    for (const line of readFileSync(join(pool, USES_FILE), 'utf8').split('\n')) if (line in uses) uses[line as keyof PoolUses] += 1;
  for (const name of readdirSync(pool)) {
    if (!name.startsWith('slot-')) continue;
    try {
      await OwnCouchdb3.leftIn(script, nodes, join(pool, name)).discard();
    } catch (err) {
      uses.left += 1;
      process.stderr.write(`couchdb3 pool: ${(err as Error).message}\n`);
    }
  }
  rmSync(pool, { recursive: true, force: true });
  return uses;
}

/**
 * Erlang's schedulers spin for a while before they sleep, which is CPU the
 * other stacks of a test run need (the suite keeps two cores busy): with
 * spinning off, the same bulk writes and feed reads took 25 % less of the
 * node's CPU in the same time (1,362–1,486 against 1,878–1,886 ticks).
 * ERL_FLAGS set by the caller wins.
 */
const NO_BUSY_WAIT = '+sbwt none +sbwtdcpu none +sbwtdio none';

/**
 * What a pooled node is brought back to before each stack takes it: its
 * state right after `start` (the config of every node, the system
 * databases' `_security`).
 */
interface Baseline {
  config: Record<string, Record<string, Record<string, string>>>;
  security: Record<string, unknown>;
}

/** A pool slot's description of its running node (SLOT_FILE). */
interface SlotFile {
  port: number;
  admin: { user: string; password: string };
  baseline: Baseline;
}

const SLOT_FILE = 'node.json';
/** Present while a slot's node waits for the next stack (see fromPool). */
const IDLE_FILE = 'idle';
/** How a run's pool served its stacks (see USES_FILE). */
export interface PoolUses {
  started: number;
  reused: number;
  unusable: number;
  /** Slots whose nodes the drain could not end. */
  left: number;
}
/** One line per stack served by a pool: `started` (a new node), `reused`, `unusable` (a reset failed). */
const USES_FILE = 'uses';
const SYSTEM_DBS = ['_users', '_replicator'];

/**
 * Node(s) of the prebuilt release started with its `start` script, for one stack.
 *
 * In a pool (COUCHLOG_TEST_COUCHDB_POOL, which npm run test:couchdb3 sets),
 * a stack that ends with its node(s) as it found them hands them to the
 * next stack instead of killing them: booting a node took about 4.5 CPU-s
 * and a 3-node cluster about 12, paid by every test file of a CouchDB 3
 * run on two cores. The next stack first brings the node back to how
 * `start` left it: every database but the system ones deleted, the
 * documents of `_users` and `_replicator` deleted, each node's config and
 * the system databases' `_security` reset to what they were right after
 * the start. A stack that stopped, started or killed a node leaves it out
 * of the pool (killed), as does a reset that fails. What a reset does not
 * undo: CouchDB 3.4+ counts an account's failed logins in memory and locks
 * it after 5 in 5 minutes, so failed logins as the pooled admin add up
 * across stacks. The tests make 4 (auth-rate-limit 3, setup 1); a new
 * password per stack would end that, but one set through _config was
 * refused for a moment after the PUT.
 */
class OwnCouchdb3 implements TestCouchdb3 {
  readonly restarts = 0;
  readonly canStop = true;
  readonly url: string;
  private running = false;
  private firstPid: number | undefined;
  /** The pool slot this node lives in, if pooled. */
  private slot: string | undefined;
  /** Set once a test stopped, started or killed a node: not handed on, whatever its state now. */
  private tainted = false;

  private constructor(
    private readonly script: string,
    private readonly nodes: number,
    private readonly dir: string,
    private readonly port: number,
    readonly admin: { user: string; password: string },
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  static async launch(script: string, nodes: number, dir: string): Promise<OwnCouchdb3> {
    await seedRelease(script, dir);
    const admin = { user: 'admin', password: randomBytes(16).toString('hex') };
    let port = await freePortRange(nodes);
    for (let attempt = 1; ; attempt++) {
      const node = new OwnCouchdb3(script, nodes, dir, port, admin);
      try {
        await node.start();
        return node;
      } catch (err) {
        if (attempt >= 3) {
          rmSync(dir, { recursive: true, force: true });
          throw err;
        }
        // Another process may have taken a port between the check and the
        // start: new ports, and a fresh DIR (data is tied to the ports).
        // Anything else once more as it is: a fresh node now and then
        // answers `start`'s PUT /_users with 500 "conflict" while it creates
        // the system databases itself.
        if (/already in use/.test((err as Error).message)) {
          port = await freePortRange(nodes);
          for (const f of readdirSync(dir)) if (f !== 'release') rmSync(join(dir, f), { recursive: true, force: true });
        }
      }
    }
  }

  /**
   * A stack's node(s) from the pool: an idle one, reset; else a new one in
   * a new slot. A slot is idle while its IDLE_FILE exists, and the one
   * process whose rename of that file succeeds takes it: a slot whose stack
   * did not end cleanly (a failure, a crash) has none and is never handed
   * on; the drain ends its node.
   */
  static async fromPool(script: string, nodes: number, pool: string): Promise<OwnCouchdb3> {
    for (const name of readdirSync(pool)) {
      const slot = join(pool, name);
      if (!name.startsWith('slot-') || !claim(slot)) continue;
      let node: OwnCouchdb3 | undefined;
      try {
        const saved = JSON.parse(readFileSync(join(slot, SLOT_FILE), 'utf8')) as SlotFile;
        node = new OwnCouchdb3(script, nodes, join(slot, 'node'), saved.port, saved.admin);
        node.slot = slot;
        node.running = true;
        node.readPid();
        await node.reset(saved.baseline);
        appendFileSync(join(pool, USES_FILE), 'reused\n');
        return node;
      } catch (err) {
        process.stderr.write(`couchdb3 pool: ${slot} could not be reset, so it is discarded: ${(err as Error).message}\n`);
        appendFileSync(join(pool, USES_FILE), 'unusable\n');
        await (node ?? OwnCouchdb3.leftIn(script, nodes, slot)).discard();
      }
    }
    // A new slot: no IDLE_FILE yet, so no other process takes it.
    const slot = mkdtempSync(join(pool, 'slot-'));
    const node = await OwnCouchdb3.launch(script, nodes, join(slot, 'node')).catch((err: unknown) => {
      rmSync(slot, { recursive: true, force: true });
      throw err;
    });
    node.slot = slot;
    try {
      await node.settled();
      const saved: SlotFile = { port: node.port, admin: node.admin, baseline: await node.baseline() };
      writeFileSync(join(slot, SLOT_FILE), JSON.stringify(saved), { mode: 0o600 });
      appendFileSync(join(pool, USES_FILE), 'started\n');
    } catch (err) {
      await node.discard();
      throw err;
    }
    return node;
  }

  get pid(): number | undefined {
    if (!this.running || this.firstPid === undefined) return undefined;
    try {
      process.kill(this.firstPid, 0);
      return this.firstPid;
    } catch {
      return undefined;
    }
  }

  async start(): Promise<void> {
    const args = ['--dir', this.dir, '--port', String(this.port), '--admin', `${this.admin.user}:${this.admin.password}`];
    if (this.nodes > 1) args.push('--cluster', String(this.nodes));
    if (process.env.COUCHLOG_TEST_COUCHDB_INI) args.push('--ini', process.env.COUCHLOG_TEST_COUCHDB_INI);
    try {
      await run(this.script, args, { encoding: 'utf8', timeout: 180_000, env: { ...process.env, ERL_FLAGS: process.env.ERL_FLAGS ?? NO_BUSY_WAIT } });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`${this.script} ${args.slice(0, 4).join(' ')} failed: ${e.stderr?.trim() || e.message}`);
    }
    this.running = true;
    this.readPid();
  }

  private readPid(): void {
    const pidFile = join(this.dir, this.nodes > 1 ? 'node1' : '', 'couchdb.pid');
    this.firstPid = Number(readFileSync(pidFile, 'utf8').trim()) || undefined;
  }

  /** An admin request to this node (cluster: node 1); the parsed body, or an error outside `ok`. */
  private async call(method: string, path: string, body?: unknown, ok: readonly number[] = [200, 201, 202]): Promise<any> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: { authorization: basicAuth(this.admin.user, this.admin.password), 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      // A node that hangs is discarded, not waited for (a reset takes well under a second).
      signal: AbortSignal.timeout(60_000),
    });
    const text = await res.text();
    if (!ok.includes(res.status)) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
    return text ? JSON.parse(text) : null;
  }

  private async nodeNames(): Promise<string[]> {
    return ((await this.call('GET', '/_membership')) as { all_nodes: string[] }).all_nodes;
  }

  /** How `start` left the node(s), to come back to before each later stack. */
  private async baseline(): Promise<Baseline> {
    const config: Baseline['config'] = {};
    for (const name of await this.nodeNames()) config[name] = await this.call('GET', `/_node/${encodeURIComponent(name)}/_config`);
    const security: Baseline['security'] = {};
    for (const db of SYSTEM_DBS) security[db] = await this.call('GET', `/${db}/_security`);
    return { config, security };
  }

  /** Back to the baseline: see the class comment. Throws when the node cannot be brought back. */
  private async reset(baseline: Baseline): Promise<void> {
    await this.call('GET', '/_up');
    for (const db of (await this.call('GET', '/_all_dbs')) as string[]) {
      if (!db.startsWith('_')) await this.call('DELETE', `/${encodeURIComponent(db)}`, undefined, [200, 202, 404]);
    }
    for (const db of SYSTEM_DBS) {
      const all = (await this.call('GET', `/${db}/_all_docs`)) as { rows: Array<{ id: string; value: { rev: string } }> };
      const docs = all.rows.filter((r) => !r.id.startsWith('_design/')).map((r) => ({ _id: r.id, _rev: r.value.rev, _deleted: true }));
      if (docs.length > 0) await this.call('POST', `/${db}/_bulk_docs`, { docs });
      if (JSON.stringify(await this.call('GET', `/${db}/_security`)) !== JSON.stringify(baseline.security[db]))
        await this.call('PUT', `/${db}/_security`, baseline.security[db]);
    }
    for (const [name, want] of Object.entries(baseline.config)) {
      const base = `/_node/${encodeURIComponent(name)}/_config`;
      const have = (await this.call('GET', base)) as Baseline['config'][string];
      const key = (section: string, k: string) => `${base}/${encodeURIComponent(section)}/${encodeURIComponent(k)}`;
      for (const [section, keys] of Object.entries(have))
        for (const [k, value] of Object.entries(keys)) {
          const before = want[section]?.[k];
          if (before === undefined) await this.call('DELETE', key(section, k), undefined, [200, 404]);
          else if (before !== value) await this.call('PUT', key(section, k), before);
        }
      for (const [section, keys] of Object.entries(want))
        for (const [k, value] of Object.entries(keys)) if (have[section]?.[k] === undefined) await this.call('PUT', key(section, k), value);
    }
  }

  async killOtherNodes(): Promise<void> {
    if (this.nodes < 2) throw new Error('a single node has no other nodes');
    this.tainted = true;
    for (let n = 2; n <= this.nodes; n++) {
      const pid = Number(readFileSync(join(this.dir, `node${n}`, 'couchdb.pid'), 'utf8').trim());
      process.kill(pid, 'SIGKILL');
      for (let alive = true; alive; await sleep(50)) {
        try {
          process.kill(pid, 0);
        } catch {
          alive = false;
        }
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    this.tainted = true;
    const stop = join(dirname(this.script), 'stop');
    try {
      await run(stop, ['--dir', this.dir], { encoding: 'utf8', timeout: 120_000 });
    } catch (err) {
      // Seen once in CI on a loaded 3-node run: the script was cut off after "stopping 3
      // node(s)". A test's cleanup is not what it tests: the nodes this stack started are
      // ended here instead, and only nodes that outlive that fail the test.
      const e = err as { stderr?: string; message: string; code?: unknown; signal?: unknown };
      const why = `${stop} --dir ${this.dir} failed (exit ${String(e.code)}, signal ${String(e.signal)}): ${e.stderr?.trim() || e.message}`;
      const left = await this.killNodes();
      if (left.length > 0) throw new Error(`${why}; still running after SIGKILL: pid ${left.join(' ')}`);
      process.stderr.write(`${why}; its nodes were ended with SIGKILL instead\n`);
    }
  }

  /**
   * Whether pid is a process running an executable of this DIR's release,
   * as `stop` checks: a pid file can outlive its node (killOtherNodes leaves
   * them), and its pid may have been given to another test's process since.
   */
  private ours(pid: number): boolean {
    try {
      return readlinkSync(`/proc/${pid}/exe`).startsWith(`${realpathSync(join(this.dir, 'release'))}/`);
    } catch {
      return false;
    }
  }

  /**
   * SIGKILL to every node of this DIR still running (its helpers, couchjs
   * and the like, end with it); answers the pids that are still there after 10 s.
   */
  private async killNodes(): Promise<number[]> {
    const pids: number[] = [];
    for (let n = 0; n <= this.nodes; n++) {
      const file = join(this.dir, n === 0 ? '' : `node${n}`, 'couchdb.pid');
      const pid = existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : NaN;
      if (Number.isInteger(pid) && pid > 1 && this.ours(pid)) pids.push(pid);
    }
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    const left = () => pids.filter((pid) => this.ours(pid));
    for (let waited = 0; waited < 10_000 && left().length > 0; waited += 100) await sleep(100);
    return left();
  }

  /**
   * The end of a stack: its data is thrown away, so the nodes are killed
   * rather than stopped. `stop` took 6.5 s per node on a quiet machine
   * (2.3 s of graceful shutdown, then scans of /proc for helpers, a fork
   * per process), paid by every test file of a CouchDB 3 run. Whatever of
   * this DIR runs is killed, even if the stack never saw its start end.
   */
  async dispose(): Promise<void> {
    if (this.slot && this.running && !this.tainted) {
      writeFileSync(join(this.slot, IDLE_FILE), ''); // the next stack resets it
      return;
    }
    await this.discard();
  }

  /** Kills the node(s) for good (and removes their pool slot, if any). */
  async discard(): Promise<void> {
    this.running = false;
    const left = await this.killNodes();
    if (left.length > 0) throw new Error(`CouchDB nodes in ${this.dir} still running after SIGKILL: pid ${left.join(' ')}`);
    this.endOwnEpmd();
    if (this.slot) rmSync(this.slot, { recursive: true, force: true });
  }

  /**
   * The node(s) of a pool slot in whatever state they are (one that never
   * finished starting has no SLOT_FILE), only to discard(): their pid files
   * name what to end.
   */
  static leftIn(script: string, nodes: number, slot: string): OwnCouchdb3 {
    const node = new OwnCouchdb3(script, nodes, join(slot, 'node'), 0, { user: '', password: '' });
    node.slot = slot;
    return node;
  }

  /**
   * What `stop` does for the Erlang port mapper: end it if this DIR's node
   * started it (DIR/epmd.pid names it, and it runs from this release) and
   * no node is registered with it now. One that still lists the node just
   * killed is left to the end of the run (scripts/test-couchdb3.ts).
   */
  private endOwnEpmd(): void {
    const file = join(this.dir, 'epmd.pid');
    if (!existsSync(file)) return;
    const [pid, port = '4369'] = readFileSync(file, 'utf8').trim().split(/\s+/);
    if (!pid || !this.ours(Number(pid))) return;
    const epmd = readlinkSync(`/proc/${pid}/exe`);
    const names = spawnSync(epmd, ['-port', port, '-names'], { encoding: 'utf8', timeout: 5000 });
    if (names.status === 0 && !/^name /m.test(names.stdout)) {
      spawnSync(epmd, ['-port', port, '-kill'], { stdio: 'ignore', timeout: 5000 });
      rmSync(file, { force: true });
    }
  }

  settled(): Promise<void> {
    return waitForAuthCache(this.url, this.admin);
  }
}

/**
 * N consecutive free ports on 127.0.0.1 (a cluster's nodes listen on
 * PORT..PORT+N-1), free a moment ago.
 */
async function freePortRange(n: number): Promise<number> {
  for (;;) {
    const first = await freePort();
    if (first + n - 1 > 65535) continue;
    let ok = true;
    for (let p = first + 1; p < first + n && ok; p++) ok = await portFree(p);
    if (ok) return first;
  }
}

/**
 * `start` unpacks its 21 MB tarball into every new DIR (about 1.5 s of a
 * core). With COUCHLOG_TEST_COUCHDB_RELEASE_CACHE (npm run test:couchdb3
 * sets it), the release is unpacked once into that folder and each stack's
 * DIR/release is a tree of hard links to it, which `start` recognises by
 * its .unpacked-from stamp. Anything unexpected: no seed, `start` unpacks.
 */
async function seedRelease(script: string, dir: string): Promise<void> {
  const cache = process.env.COUCHLOG_TEST_COUCHDB_RELEASE_CACHE;
  if (!cache) return;
  const here = dirname(script);
  const tarball =
    process.env.COUCHDB_TARBALL ||
    readdirSync(here)
      .filter((f) => /^couchdb-.*\.tar\.(xz|gz)$/.test(f))
      .map((f) => join(here, f))[0];
  if (!tarball || !existsSync(tarball)) return;
  const stamp = `${basename(tarball)} ${statSync(tarball).size}`;
  const release = join(cache, 'release');
  const stampFile = join(release, '.unpacked-from');
  try {
    if (!existsSync(stampFile) || readFileSync(stampFile, 'utf8').trim() !== stamp) {
      const tmp = join(cache, `release.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
      mkdirSync(tmp, { recursive: true });
      await run('tar', ['-xf', tarball, '-C', tmp, '--strip-components=1', '--no-same-owner']);
      writeFileSync(join(tmp, '.unpacked-from'), `${stamp}\n`);
      try {
        rmSync(release, { recursive: true, force: true });
        renameSync(tmp, release);
      } catch {
        rmSync(tmp, { recursive: true, force: true }); // another process got there first
      }
    }
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    await run('cp', ['-al', release, join(dir, 'release')]);
  } catch {
    rmSync(join(dir, 'release'), { recursive: true, force: true });
  }
}

/**
 * A CouchDB 3 the tests did not start (COUCHLOG_TEST_COUCHDB_URL): one stack
 * at a time across test processes (a lock directory naming its owner's pid,
 * taken over when that process is gone), and every log_* and couchlog_state_* database deleted
 * when a stack takes its turn, since test files reuse database names.
 */
class SharedCouchdb3 implements TestCouchdb3 {
  readonly pid = undefined;
  readonly restarts = 0;
  readonly canStop = false;

  private constructor(
    readonly url: string,
    readonly admin: { user: string; password: string },
    private readonly lock: string,
  ) {}

  static async take(server: { url: string; user: string; password: string }): Promise<SharedCouchdb3> {
    const key = Buffer.from(server.url).toString('base64url');
    const lock = join(tmpdir(), `couchlog-test-couchdb-${key}.lock`);
    await acquire(lock);
    const shared = new SharedCouchdb3(server.url, { user: server.user, password: server.password }, lock);
    try {
      await shared.wipe();
    } catch (err) {
      release(lock);
      throw err;
    }
    return shared;
  }

  private async wipe(): Promise<void> {
    const authorization = basicAuth(this.admin.user, this.admin.password);
    const res = await fetch(`${this.url}/_all_dbs`, { headers: { authorization } });
    if (res.status !== 200) throw new Error(`${this.url}/_all_dbs as ${this.admin.user}: ${res.status} ${await res.text()}`);
    for (const db of (await res.json()) as string[]) {
      if (!db.startsWith('log_') && !db.startsWith('couchlog_state_')) continue;
      const del = await fetch(`${this.url}/${encodeURIComponent(db)}`, { method: 'DELETE', headers: { authorization } });
      if (del.status >= 300 && del.status !== 404) throw new Error(`deleting ${db}: ${del.status} ${await del.text()}`);
    }
  }

  async stop(): Promise<void> {
    throw new Error(`cannot stop ${this.url}: the tests did not start it`);
  }

  async start(): Promise<void> {
    throw new Error(`cannot start ${this.url}: the tests did not start it`);
  }

  async dispose(): Promise<void> {
    release(this.lock);
  }

  settled(): Promise<void> {
    return waitForAuthCache(this.url, this.admin);
  }
}

const held = new Set<string>();
process.on('exit', () => {
  for (const lock of held) release(lock);
});

/** Takes an idle pool slot: true for the one process whose rename of its IDLE_FILE succeeds. */
function claim(slot: string): boolean {
  try {
    renameSync(join(slot, IDLE_FILE), join(slot, `taken-by-${process.pid}`));
    rmSync(join(slot, `taken-by-${process.pid}`), { force: true });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

async function acquire(lock: string): Promise<void> {
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      held.add(lock);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner = 0;
    try {
      owner = Number(readFileSync(join(lock, 'pid'), 'utf8'));
    } catch {
      // being written or removed: look again
    }
    if (owner > 0 && !alive(owner)) rmSync(lock, { recursive: true, force: true });
    await sleep(200);
  }
}

function release(lock: string): void {
  if (!held.delete(lock)) return;
  rmSync(lock, { recursive: true, force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The test files in the order a run should start them: the longest first
 * (measured on one node, 2026-12-06), the rest as given. The run keeps two
 * files going at once, so a long file started last ran alone at the end:
 * the cluster run spent its last 6 minutes on one file.
 */
const LONGEST = ['correlator-crash', 'forward', 'dashboard', 'correlator-shards', 'ship-state', 'ship-truncate', 'ship-outage', 'deploy-files', 'fuzz'];

export function longestFirst(files: readonly string[]): string[] {
  const rank = (f: string) => {
    const i = LONGEST.indexOf(basename(f).replace(/\.test\.js$/, ''));
    return i < 0 ? LONGEST.length : i;
  };
  return files
    .map((f, i) => ({ f, i }))
    .sort((x, y) => rank(x.f) - rank(y.f) || x.i - y.i)
    .map((x) => x.f);
}
