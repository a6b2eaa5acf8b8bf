// Splunk HTTP Event Collector answers: `{"text","code"}` with the HTTP
// status Splunk gives, so HEC clients' retry logic works unchanged (they
// retry 503/code 9, give up on 400/401/403).
import { CouchlogError } from '../../lib/errors.js';

/** HEC status codes couchlog answers, with Splunk's HTTP status and text. */
export const HEC = {
  SUCCESS: [0, 200, 'Success'],
  TOKEN_REQUIRED: [2, 401, 'Token is required'],
  INVALID_AUTHORIZATION: [3, 401, 'Invalid authorization'],
  INVALID_TOKEN: [4, 403, 'Invalid token'],
  NO_DATA: [5, 400, 'No data'],
  INVALID_DATA_FORMAT: [6, 400, 'Invalid data format'],
  INCORRECT_INDEX: [7, 400, 'Incorrect index'],
  /** Splunk answers 413 to a body over max_content_length; clients split the batch. */
  TOO_LARGE: [6, 413, 'Request entity too large'],
  INTERNAL_ERROR: [8, 500, 'Internal server error'],
  SERVER_BUSY: [9, 503, 'Server is busy'],
  /**
   * A request that stalled (ingress.body_timeout_ms). Splunk has no code for
   * it; 9 is the one HEC clients retry, and the data was never refused.
   */
  REQUEST_TIMEOUT: [9, 408, 'Request timeout'],
  CHANNEL_MISSING: [10, 400, 'Data channel is missing'],
  INVALID_CHANNEL: [11, 400, 'Invalid data channel'],
  EVENT_REQUIRED: [12, 400, 'Event field is required'],
  EVENT_BLANK: [13, 400, 'Event field cannot be blank'],
  ACK_DISABLED: [14, 400, 'ACK is disabled'],
  INDEXED_FIELDS: [15, 400, 'Error in handling indexed fields'],
  QUERY_TOKEN_DISABLED: [16, 400, 'Query string authorization is not enabled'],
  HEALTHY: [17, 200, 'HEC is healthy'],
} as const satisfies Record<string, readonly [number, number, string]>;

export type HecStatus = keyof typeof HEC;

export interface HecBody {
  text: string;
  code: number;
  'invalid-event-number'?: number;
  ackId?: number;
}

/** An HEC error: its body is HEC's, its `code` (for logs/metrics) is `HEC_<n>`. */
export class HecError extends CouchlogError {
  readonly hecCode: number;
  constructor(
    status: HecStatus,
    readonly eventNumber?: number,
    headers: Record<string, string> = {},
    /** couchlog's detail, logged (never sent: clients match Splunk's texts). */
    readonly detail?: string,
  ) {
    const [code, http, text] = HEC[status];
    super(
      {
        code: `HEC_${code}`,
        status: http,
        error: http >= 500 ? 'service_unavailable' : http === 401 ? 'unauthorized' : http === 403 ? 'forbidden' : 'bad_request',
      },
      text,
      { headers },
    );
    this.hecCode = code;
  }

  hecBody(): HecBody {
    const body: HecBody = { text: this.message, code: this.hecCode };
    if (this.eventNumber !== undefined) body['invalid-event-number'] = this.eventNumber;
    return body;
  }
}

/** Any error of an HEC route as HEC would answer it. */
export function toHecError(err: unknown, retryAfterS: number): HecError {
  if (err instanceof HecError) return err;
  if (err instanceof CouchlogError) {
    if (err.statusCode === 503 || err.statusCode === 429) {
      return new HecError('SERVER_BUSY', undefined, { 'Retry-After': err.headers['Retry-After'] ?? String(retryAfterS) }, err.message);
    }
    if (err.statusCode === 413) return new HecError('TOO_LARGE', undefined, {}, err.message);
    if (err.statusCode === 404) return new HecError('INCORRECT_INDEX', undefined, {}, err.message);
    if (err.statusCode >= 400 && err.statusCode < 500) return new HecError('INVALID_DATA_FORMAT', undefined, {}, err.message);
  }
  const e = err as { code?: string; statusCode?: number; message?: string };
  if (e && e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new HecError('TOO_LARGE', undefined, {}, 'body too large');
  if (e && typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new HecError('INVALID_DATA_FORMAT', undefined, {}, e.message);
  }
  return new HecError('INTERNAL_ERROR', undefined, {}, e?.message);
}
