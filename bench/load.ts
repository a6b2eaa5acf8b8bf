// A small closed-loop load generator: `concurrency` workers send requests
// back to back until `total` have been sent, recording each latency.
import { Pool } from 'undici';

export interface LoadResult {
  requests: number;
  docs: number;
  seconds: number;
  docsPerSecond: number;
  p50ms: number;
  p99ms: number;
  errors: number;
}

export interface LoadSpec {
  url: string;
  path: string;
  headers: Record<string, string>;
  /** Body of request number i. */
  body: (i: number) => string | Buffer;
  docsPerRequest: number;
  total: number;
  concurrency: number;
  /** Status codes that count as success. */
  ok: number[];
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const pool = new Pool(spec.url, { connections: spec.concurrency, pipelining: 1 });
  const latencies: number[] = [];
  let next = 0;
  let errors = 0;
  const started = process.hrtime.bigint();
  const worker = async () => {
    while (next < spec.total) {
      const i = next++;
      const t0 = process.hrtime.bigint();
      const res = await pool.request({ method: 'POST', path: spec.path, headers: spec.headers, body: spec.body(i) });
      await res.body.dump();
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (!spec.ok.includes(res.statusCode)) errors++;
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, worker));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await pool.close();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0;
  const docs = spec.total * spec.docsPerRequest;
  return { requests: spec.total, docs, seconds, docsPerSecond: docs / seconds, p50ms: pct(50), p99ms: pct(99), errors };
}

/** Two runs of one side as one: totals, and the mean of their percentiles. */
export function combine(x: LoadResult, y: LoadResult): LoadResult {
  const docs = x.docs + y.docs;
  const seconds = x.seconds + y.seconds;
  return {
    requests: x.requests + y.requests,
    docs,
    seconds,
    docsPerSecond: docs / seconds,
    p50ms: (x.p50ms + y.p50ms) / 2,
    p99ms: (x.p99ms + y.p99ms) / 2,
    errors: x.errors + y.errors,
  };
}
