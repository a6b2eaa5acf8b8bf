// Sends batches of HEC envelopes to a Splunk HTTP Event Collector (or
// anything that speaks HEC, couchlog's own ingress included) and resolves
// only when the target has taken them: a 200/code 0 answer and, when the
// target has indexer acknowledgment on (its answer carries an ackId), the
// ack reported true on our channel. What failed says whether a retry can
// help (RetryableSendError: 5xx, 429, code 9, timeouts, network) or not
// (RefusedError: the data). What must stay true: only an answer that is
// about the data (400 with a data code, 413) throws events away; anything
// an operator has to fix (the token, the URL, a proxy in the way: 3xx, 404,
// 405, 407, a 200 that is not HEC's answer) keeps them and is retried,
// loudly (`operatorMustFix`), since dead-lettering a whole stream and moving
// the checkpoint on would lose it.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { Agent, request, type Dispatcher } from 'undici';
import { retryAfterMs } from '../retry.js';
import { readAtMost } from '../read-at-most.js';
import { OperationError } from '../errors.js';

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
  /**
   * Events name their own index (the forwarder's index_field): HEC's code 7
   * (incorrect index) is then about an event. Otherwise every event has the
   * configured index, and code 7 is the setup's (a missing index, or one the
   * token may not write): kept and retried for the operator, not dead-lettered.
   */
  indexPerEvent?: boolean;
}

export class RetryableSendError extends Error {
  override readonly name = 'RetryableSendError';
  constructor(
    message: string,
    readonly retryAfterMs: number | null = null,
    /** The target's setup or ours (token, URL, a proxy), not its load: retrying alone will not fix it. */
    readonly operatorMustFix = false,
  ) {
    super(message);
  }
}

/** HEC's codes for events it refuses as such (400): no event, invalid format, invalid data, index, query string. */
const DATA_CODES = new Set([5, 6, 7, 12, 13, 15]);

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

/** HEC answers are a few dozen bytes; anything much longer is not one (and is not read into memory). */
const MAX_ANSWER_BYTES = 64 * 1024;

export class HecSender {
  readonly channel = randomUUID();
  private readonly stopping = new AbortController();
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
      connect: { ca: o.caFile ? readCaFile(o.caFile) : undefined, rejectUnauthorized: o.verifyTls, timeout: Math.min(o.timeoutMs, 10_000) },
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
    let text: string | null;
    // One deadline for the whole exchange: a target that trickles its answer a byte at a time
    // (bodyTimeout is per chunk) must not hold a page, or a shutdown, for ever. Not
    // AbortSignal.any([stopping, timeout]): on Node 20 each call leaves an entry in the
    // long-lived `stopping` signal for good (nodejs/node#55351), one per request and ack poll.
    const deadline = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      deadline.abort();
    }, this.o.timeoutMs);
    const onStop = () => deadline.abort();
    this.stopping.signal.addEventListener('abort', onStop, { once: true });
    if (this.stopping.signal.aborted) deadline.abort();
    try {
      res = await request(url, { method: 'POST', headers, body: payload, dispatcher: this.agent, signal: deadline.signal });
      text = await readAtMost(res.body, MAX_ANSWER_BYTES);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const why = this.stopping.signal.aborted ? 'stopping' : timedOut ? `no whole answer within ${this.o.timeoutMs} ms` : (e.code ?? e.message);
      throw new RetryableSendError(`${url.host} unreachable: ${why}`);
    } finally {
      clearTimeout(timer);
      this.stopping.signal.removeEventListener('abort', onStop);
    }
    let answer: HecAnswer | null = null;
    try {
      answer = text === null ? null : (JSON.parse(text) as HecAnswer);
    } catch {
      answer = null;
    }
    return { status: res.statusCode, headers: res.headers, answer };
  }

  /** Ends every request in flight and any later one at once (shutdown: what was not confirmed is sent again after the restart). */
  abort(): void {
    this.stopping.abort();
  }

  /** Sends envelopes (JSON texts); resolves once the target has them (acked when it acks). */
  async send(envelopes: string[]): Promise<void> {
    this.stats.requests++;
    const { status, headers, answer } = await this.post(this.eventUrl, envelopes.join('\n'), this.o.gzip);
    const code = typeof answer?.code === 'number' ? answer.code : null;
    const what = `${status} ${answer?.text ?? ''}${code !== null ? ` (code ${code})` : ''}`.trim();
    if (status === 200 && code === 0) {
      if (this.o.ack === 'auto' && typeof answer?.ackId === 'number') await this.waitAck(answer.ackId);
      return;
    }
    if (status === 200) throw new RetryableSendError(`${this.eventUrl.host} answered 200 without HEC's {"code":0}: is the URL a HEC endpoint?`, null, true);
    if (status >= 500 || status === 429 || code === 9 || status === 408)
      throw new RetryableSendError(`HEC answered ${what}`, retryAfterMs(headers['retry-after']));
    if (status === 400 && code === 7 && this.o.indexPerEvent !== true)
      throw new RetryableSendError(`HEC refused the configured index (missing, or not allowed for the token): ${what}`, null, true);
    if (status === 413 || (status === 400 && code !== null && DATA_CODES.has(code))) {
      const n = answer?.['invalid-event-number'];
      throw new RefusedError(`HEC refused the data: ${what}`, status, code, typeof n === 'number' ? n : null);
    }
    // The token, the channel, the URL or a proxy in the way: the operator's
    // to fix, not the data's. Keep the events and retry, loudly.
    const why =
      status === 401 || status === 403 || code !== null ? 'HEC refused the token or channel' : `${this.eventUrl.host} did not answer as HEC (check the URL)`;
    throw new RetryableSendError(`${why}: ${what}`, null, true);
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
    this.abort();
    await this.agent.close();
  }
}

/** The CA file's certificates; one that cannot be read is the operator's to fix, said in one line. */
function readCaFile(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new OperationError(`cannot read the CA file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
