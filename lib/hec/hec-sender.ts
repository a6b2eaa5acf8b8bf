// Sends batches of HEC envelopes to a Splunk HTTP Event Collector (or
// anything that speaks HEC, couchlog's own ingress included) and resolves
// only when the target has taken them: a 200/code 0 answer and, when the
// target has indexer acknowledgment on (its answer carries an ackId), the
// ack reported true on our channel. What failed says whether a retry can
// help (RetryableSendError: 5xx, 429, code 9, timeouts, network, token
// problems an operator must fix) or not (RefusedError: the data).
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { Agent, request, type Dispatcher } from 'undici';
import { retryAfterMs } from '../retry.js';

export interface HecSenderOptions {
  /** Base URL (https://splunk:8088) or the full event URL (…/services/collector/event). */
  url: string;
  token: string;
  gzip: boolean;
  /** PEM file of the CA that signed the target's certificate. */
  caFile?: string | undefined;
  /** false: accept any certificate (tests, private networks; says so loudly in the docs). */
  verifyTls: boolean;
  timeoutMs: number;
  /** 'auto': wait for acks when the target hands out ackIds; 'off': never. */
  ack: 'auto' | 'off';
  ackTimeoutMs: number;
  ackPollMs: number;
}

export class RetryableSendError extends Error {
  override readonly name = 'RetryableSendError';
  constructor(
    message: string,
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
  }
}

export class RefusedError extends Error {
  override readonly name = 'RefusedError';
  constructor(
    message: string,
    readonly status: number,
    readonly hecCode: number | null,
    readonly eventNumber: number | null,
  ) {
    super(message);
  }
}

interface HecAnswer {
  text?: string;
  code?: number;
  ackId?: number;
  'invalid-event-number'?: number;
  acks?: Record<string, boolean>;
}

export class HecSender {
  readonly channel = randomUUID();
  private readonly agent: Agent;
  private readonly eventUrl: URL;
  private readonly ackUrl: URL;
  /** How many acks the target confirmed, and requests sent. */
  readonly stats = { requests: 0, acked: 0 };

  constructor(private readonly o: HecSenderOptions) {
    const base = new URL(o.url);
    const path = base.pathname.replace(/\/+$/, '');
    this.eventUrl = new URL(/\/services\/collector(\/event(\/1\.0)?)?$/.test(path) ? base.href : `${base.origin}${path}/services/collector/event`);
    this.ackUrl = new URL(`${this.eventUrl.origin}${this.eventUrl.pathname.replace(/\/services\/collector.*$/, '')}/services/collector/ack`);
    this.agent = new Agent({
      connect: { ca: o.caFile ? readFileSync(o.caFile) : undefined, rejectUnauthorized: o.verifyTls, timeout: Math.min(o.timeoutMs, 10_000) },
      headersTimeout: o.timeoutMs,
      bodyTimeout: o.timeoutMs,
      keepAliveTimeout: 30_000,
    });
  }

  private async post(
    url: URL,
    body: string,
    gzip: boolean,
  ): Promise<{ status: number; headers: Dispatcher.ResponseData['headers']; answer: HecAnswer | null }> {
    const headers: Record<string, string> = {
      authorization: `Splunk ${this.o.token}`,
      'content-type': 'application/json',
      'x-splunk-request-channel': this.channel,
    };
    let payload: string | Buffer = body;
    if (gzip) {
      payload = gzipSync(body);
      headers['content-encoding'] = 'gzip';
    }
    let res: Dispatcher.ResponseData;
    let text: string;
    try {
      res = await request(url, { method: 'POST', headers, body: payload, dispatcher: this.agent });
      text = await res.body.text();
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new RetryableSendError(`${url.host} unreachable: ${e.code ?? e.message}`);
    }
    let answer: HecAnswer | null = null;
    try {
      answer = JSON.parse(text) as HecAnswer;
    } catch {
      answer = null;
    }
    return { status: res.statusCode, headers: res.headers, answer };
  }

  /** Sends envelopes (JSON texts); resolves once the target has them (acked when it acks). */
  async send(envelopes: string[]): Promise<void> {
    this.stats.requests++;
    const { status, headers, answer } = await this.post(this.eventUrl, envelopes.join('\n'), this.o.gzip);
    const code = typeof answer?.code === 'number' ? answer.code : null;
    const what = `${status} ${answer?.text ?? ''}${code !== null ? ` (code ${code})` : ''}`.trim();
    if (status === 200 && (code === 0 || code === null)) {
      if (this.o.ack === 'auto' && typeof answer?.ackId === 'number') await this.waitAck(answer.ackId);
      return;
    }
    if (status >= 500 || status === 429 || code === 9 || status === 408)
      throw new RetryableSendError(`HEC answered ${what}`, retryAfterMs(headers['retry-after']));
    // Token problems are the operator's to fix, not the data's: keep the
    // events and retry (loudly), never dead-letter everything.
    if (status === 401 || status === 403 || code === 1 || code === 2 || code === 3 || code === 4 || code === 10 || code === 11) {
      throw new RetryableSendError(`HEC refused the token or channel: ${what}`);
    }
    const n = answer?.['invalid-event-number'];
    throw new RefusedError(`HEC refused the data: ${what}`, status, code, typeof n === 'number' ? n : null);
  }

  private async waitAck(ackId: number): Promise<void> {
    const deadline = Date.now() + this.o.ackTimeoutMs;
    for (;;) {
      const { status, answer } = await this.post(this.ackUrl, JSON.stringify({ acks: [ackId] }), false);
      if (status === 200 && answer?.acks?.[String(ackId)] === true) {
        this.stats.acked++;
        return;
      }
      if (answer?.code === 14) return; // ACK is disabled after all: the 200 was the answer.
      if (Date.now() > deadline) throw new RetryableSendError(`ack ${ackId} not confirmed within ${this.o.ackTimeoutMs} ms: sending again`);
      await new Promise((ok) => setTimeout(ok, this.o.ackPollMs));
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
