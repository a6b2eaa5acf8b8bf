// Indexer acknowledgment, honestly: couchlog answers an event request only
// after CouchDB stored every document of it, so an ackId is handed out for
// documents already stored and `/services/collector/ack` answers true for
// it (once: like Splunk, an ack reported true is forgotten).
//
// What must stay true:
// - An ackId is never handed out twice to a token's clients. Ids come from
//   one counter per token, not per channel: a channel forgotten (least
//   recently used, or idle) and used again goes on with fresh ids, so a
//   client still polling the ids it held gets false for them, never true
//   for another request's. (With a counter per channel, a channel made
//   again started at 0 and answered true for ids the client had been given
//   for requests of the forgotten one.)
// - Memory is bounded per token, and acks nobody asks for go away: at most
//   `maxChannels` channels (the least recently used is forgotten),
//   `maxPending` unqueried acks per channel and `maxPendingPerToken` over all
//   of its channels (the oldest is forgotten first), and a channel neither
//   sent on nor asked about for `idleMs` is forgotten with its acks, as
//   Splunk's idle cleanup does. Every ack forgotten unasked is counted
//   (`onForgotten`).
// - A forgotten ack answers false, so the client sends the events again: a
//   duplicate, never a loss.
// - Per token, so that one token's clients opening channel after channel
//   cannot make another token's acks forgotten (found by a black-box test:
//   10,001 new channels of one token turned another's pending ack to false,
//   and its client stored the events twice).
// - No timers here: time is the `now` passed in, so tests move it by hand;
//   the route plugin calls sweep() on an interval.

/** Why an ack was forgotten before its client asked for it. */
export type ForgottenReason = 'channel_limit' | 'token_limit' | 'channel_evicted' | 'channel_idle';

export interface AckOptions {
  /** Channels per token; the least recently used is forgotten beyond. */
  maxChannels: number;
  /** Unqueried acks per channel; its oldest is forgotten beyond. */
  maxPending: number;
  /** Unqueried acks per token over all its channels; the token's oldest is forgotten beyond. */
  maxPendingPerToken: number;
  /** A channel neither sent on nor asked about for this long is forgotten, acks and all. */
  idleMs: number;
  /** A monotonic clock in ms (performance.now in the server; tests pass their own). */
  now: () => number;
  /** Told of every ack forgotten before it was asked for (the server counts them in a metric). */
  onForgotten?: (reason: ForgottenReason, count: number) => void;
}

interface Channel {
  key: string;
  /** Its unqueried ackIds, oldest first (a Set keeps insertion order). */
  pending: Set<number>;
  lastUsed: number;
}

interface TokenAcks {
  /** The next ackId of any channel of this token: only ever increases. */
  next: number;
  /** Channels, least recently used first (a Map keeps insertion order). */
  channels: Map<string, Channel>;
  /** Every unqueried ackId of the token and its channel, oldest first (ids are issued increasing). */
  pending: Map<number, Channel>;
}

/** Splunk's channels are GUIDs. */
export const CHANNEL_PATTERN = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export class AckRegistry {
  /**
   * Per token. A token's entry is kept when its channels are gone: its
   * counter must not start again at 0 (tokens are few: the configured ones).
   */
  private readonly tokens = new Map<string, TokenAcks>();

  constructor(private readonly opts: AckOptions) {}

  private tokenAcks(token: string): TokenAcks {
    let t = this.tokens.get(token);
    if (!t) this.tokens.set(token, (t = { next: 0, channels: new Map(), pending: new Map() }));
    return t;
  }

  /** The channel, marked as just used; created when asked to (and its token's oldest channels forgotten beyond maxChannels). */
  private channel(t: TokenAcks, channel: string, create: boolean): Channel | undefined {
    const now = this.opts.now();
    this.sweepToken(t, now);
    const key = channel.toLowerCase();
    const found = t.channels.get(key);
    if (found) {
      t.channels.delete(key);
      found.lastUsed = now;
      t.channels.set(key, found);
      return found;
    }
    if (!create) return undefined;
    const ch: Channel = { key, pending: new Set(), lastUsed: now };
    t.channels.set(key, ch);
    while (t.channels.size > this.opts.maxChannels) this.forgetChannel(t, t.channels.values().next().value!, 'channel_evicted');
    return ch;
  }

  private forgetChannel(t: TokenAcks, ch: Channel, reason: ForgottenReason): void {
    t.channels.delete(ch.key);
    for (const id of ch.pending) t.pending.delete(id);
    this.forgotten(reason, ch.pending.size);
  }

  private forgetAck(t: TokenAcks, id: number, ch: Channel, reason: ForgottenReason): void {
    t.pending.delete(id);
    ch.pending.delete(id);
    this.forgotten(reason, 1);
  }

  private forgotten(reason: ForgottenReason, count: number): void {
    if (count > 0) this.opts.onForgotten?.(reason, count);
  }

  /** Forgets the token's channels idle for longer than idleMs (least recently used first, so it stops at the first one in use). */
  private sweepToken(t: TokenAcks, now: number): void {
    for (const ch of t.channels.values()) {
      if (now - ch.lastUsed <= this.opts.idleMs) break;
      this.forgetChannel(t, ch, 'channel_idle');
    }
  }

  /** Forgets every idle channel of every token (called on an interval, so a token nobody uses lets go of its acks too). */
  sweep(): void {
    const now = this.opts.now();
    for (const t of this.tokens.values()) this.sweepToken(t, now);
  }

  /** A new ackId for a request whose documents are all stored. */
  issue(token: string, channel: string): number {
    const t = this.tokenAcks(token);
    const ch = this.channel(t, channel, true)!;
    const id = t.next++;
    ch.pending.add(id);
    t.pending.set(id, ch);
    if (ch.pending.size > this.opts.maxPending) this.forgetAck(t, ch.pending.values().next().value!, ch, 'channel_limit');
    if (t.pending.size > this.opts.maxPendingPerToken) {
      const [oldest, owner] = t.pending.entries().next().value!;
      this.forgetAck(t, oldest, owner, 'token_limit');
    }
    return id;
  }

  /** `{id: true}` for each ackId issued on this channel and not yet reported. */
  query(token: string, channel: string, ids: number[]): Record<string, boolean> {
    const t = this.tokens.get(token);
    const ch = t === undefined ? undefined : this.channel(t, channel, false);
    const out: Record<string, boolean> = {};
    for (const id of ids) {
      const ok = ch !== undefined && ch.pending.delete(id);
      if (ok) t!.pending.delete(id);
      out[String(id)] = ok;
    }
    return out;
  }

  get channelCount(): number {
    let n = 0;
    for (const t of this.tokens.values()) n += t.channels.size;
    return n;
  }

  get pendingCount(): number {
    let n = 0;
    for (const t of this.tokens.values()) n += t.pending.size;
    return n;
  }
}
