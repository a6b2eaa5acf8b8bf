// Indexer acknowledgment, honestly: couchlog answers an event request only
// after CouchDB stored every document of it, so an ackId is handed out for
// documents already stored and `/services/collector/ack` answers true for
// it (once: like Splunk, an ack reported true is forgotten). Memory is
// bounded: at most `maxChannels` channels per token (the least recently
// used of that token's is forgotten) and `maxPending` unqueried acks per
// channel (the oldest is forgotten). A forgotten ack answers false, so the
// client sends the events again: a duplicate, never a loss. Per token, so
// that one token's clients opening channel after channel cannot make
// another token's acks forgotten (found by a black-box test: 10,001 new
// channels of one token turned another's pending ack to false, and its
// client stored the events twice).

export interface AckOptions {
  maxChannels: number;
  maxPending: number;
}

interface Channel {
  next: number;
  pending: Set<number>;
}

/** Splunk's channels are GUIDs. */
export const CHANNEL_PATTERN = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export class AckRegistry {
  /** Per token, its channels; each map least recently used first (a Map keeps insertion order). */
  private readonly tokens = new Map<string, Map<string, Channel>>();

  constructor(private readonly opts: AckOptions) {}

  private channel(token: string, channel: string, create: boolean): Channel | undefined {
    const key = channel.toLowerCase();
    let channels = this.tokens.get(token);
    const found = channels?.get(key);
    if (found) {
      channels!.delete(key);
      channels!.set(key, found);
      return found;
    }
    if (!create) return undefined;
    if (!channels) this.tokens.set(token, (channels = new Map()));
    const ch: Channel = { next: 0, pending: new Set() };
    channels.set(key, ch);
    while (channels.size > this.opts.maxChannels) channels.delete(channels.keys().next().value!);
    return ch;
  }

  /** A new ackId for a request whose documents are all stored. */
  issue(token: string, channel: string): number {
    const ch = this.channel(token, channel, true)!;
    const id = ch.next++;
    ch.pending.add(id);
    while (ch.pending.size > this.opts.maxPending) ch.pending.delete(ch.pending.values().next().value!);
    return id;
  }

  /** `{id: true}` for each ackId issued on this channel and not yet reported. */
  query(token: string, channel: string, ids: number[]): Record<string, boolean> {
    const ch = this.channel(token, channel, false);
    const out: Record<string, boolean> = {};
    for (const id of ids) {
      const ok = ch !== undefined && ch.pending.delete(id);
      out[String(id)] = ok;
    }
    return out;
  }

  get channelCount(): number {
    let n = 0;
    for (const channels of this.tokens.values()) n += channels.size;
    return n;
  }
}
