// The correlator's splunk_hec output: correlated records (and orphans) go
// to a HEC endpoint — here couchlog's own, into log_siem — with the sender
// of `couchlog forward`; the same records land in log_correlated.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startCorrelator, type RunningCorrelator } from '../../correlator/service.js';
import { createLogger } from '../../lib/logger.js';
import { hecEnvelopeOf } from '../../correlator/sinks/hec/hec-sink.js';
import { startStack, http, JSON_TYPE, type Stack, storedStatus } from '../helpers/stack.js';

const TOKEN = 'correlator-hec-token-0123456789';

let stack: Stack;
let correlator: RunningCorrelator;
before(async () => {
  stack = await startStack({
    yaml: {
      apps: { http: {}, network: {}, siem: { tokens: [{ name: 'siem', secret: TOKEN, ack: true }] } },
      correlator: {
        reorder_slack_ms: 100,
        orphan_policy: { apache_emit_delay_ms: 200, network_emit: true },
        time_window: { value: 2, unit: 's' },
        inputs: { poll_interval_ms: 50 },
        outputs: { clickhouse: { enabled: false }, couchdb: { flush_interval_ms: 50 } },
        checkpoint_interval_ms: 100,
        metrics: { enabled: false },
      },
    },
  });
  stack.config.correlator.outputs.splunk_hec = {
    ...stack.config.correlator.outputs.splunk_hec,
    enabled: true,
    url: stack.url,
    token: TOKEN,
    flush_interval_ms: 50,
    retry_initial_ms: 50,
  };
  correlator = await startCorrelator(stack.config, createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'), { clickhouse: false });
});
after(async () => {
  await correlator?.stop();
  await stack?.stop();
});

async function docs(db: string): Promise<any[]> {
  const res = await http(`${stack.couchUrl}/${db}/_all_docs?include_docs=true`, { headers: { authorization: stack.auth.admin } });
  return (res.json.rows as any[]).filter((r) => !r.id.startsWith('_design/')).map((r) => r.doc);
}

describe('correlator output splunk_hec', () => {
  test('records reach the HEC endpoint with their id, revision and event time', async () => {
    const t0 = Date.now();
    const post = async (app: string, body: unknown[]) => {
      const res = await http(`${stack.url}/log_${app}/_bulk_docs`, { method: 'POST', headers: JSON_TYPE, body: JSON.stringify({ docs: body }) });
      assert.equal(storedStatus(res.status), 201, res.text);
    };
    await post('network', [{ src_ip: '203.0.113.7', src_port: 51000, dst_port: 443, ja4: 't13d1516h2_8daaf6152771_b0da82dd1658', timestamp: t0 }]);
    await post('http', [{ src_ip: '203.0.113.7', src_port: 51000, method: 'GET', host: 'example.com', path: '/', timestamp: t0 + 50 }]);
    // Later events move the watermark on so the pair is decided.
    await post('http', [{ src_ip: '203.0.113.8', src_port: 1, method: 'GET', host: 'example.com', path: '/later', timestamp: t0 + 5000 }]);
    await post('network', [{ src_ip: '203.0.113.8', src_port: 2, ja4: 'x', timestamp: t0 + 5000 }]);
    let siem: any[] = [];
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((ok) => setTimeout(ok, 100))) {
      siem = await docs('log_siem');
      if (siem.some((d) => d.correlated === true)) break;
    }
    const hit = siem.find((d) => d.correlated === true);
    assert.ok(hit, `a correlated record in log_siem (${siem.length} events)`);
    assert.equal(hit.src_ip, '203.0.113.7');
    assert.equal(hit.ja4, 't13d1516h2_8daaf6152771_b0da82dd1658');
    assert.equal(hit.source, 'couchlog:correlated');
    assert.equal(hit.sourcetype, 'couchlog:correlated');
    assert.equal(typeof hit.id, 'string');
    assert.equal(Date.parse(hit.time), Date.parse(hit.timestamp), "HEC time is the record's event time");
    // The sinks deliver independently: the CouchDB one may be a flush behind the HEC one.
    // Read until that decision shows: the provisional record before it, or a copy behind, would not hold it yet.
    let stored: any;
    const decided = (d: any) => d?.correlated === true && d.revision >= hit.revision;
    for (const deadline = Date.now() + 60_000; !decided(stored) && Date.now() < deadline; await new Promise((ok) => setTimeout(ok, 100))) {
      stored = (await docs('log_correlated')).find((d) => d._id === hit.id);
    }
    assert.ok(stored, 'the same record is in log_correlated under the same id');
    // The same decision; on a CouchDB 3 cluster the A may first be written as a provisional orphan
    // (shards interleaved), so CouchDB's revision can be ahead of the first correlated event.
    assert.equal(stored.correlated, true);
    assert.equal(stored.ja4, hit.ja4);
    assert.ok(stored.revision >= hit.revision, `revision ${stored.revision} in CouchDB, ${hit.revision} sent`);
  });

  test('envelopes: deletions say so', () => {
    const env = hecEnvelopeOf(
      { id: 'r1', record: { timestamp: '2024-07-17T03:33:43.512Z', host: 'h', revision: 2 }, version: 3, deleted: true },
      { index: 'sec', source: 's', sourcetype: 'st' },
    );
    assert.deepEqual(env, {
      time: 1721187223.512,
      host: 'h',
      source: 's',
      sourcetype: 'st',
      index: 'sec',
      event: { timestamp: '2024-07-17T03:33:43.512Z', host: 'h', revision: 2, id: 'r1', deleted: true },
    });
  });
});
