// Indexer acknowledgment, honestly: couchlog answers an event request only
// after CouchDB stored every document of it, so an ackId is handed out for
// documents already stored and `/services/collector/ack` answers true for
// it (once: like Splunk, an ack reported true is forgotten). Memory is
// bounded: at most `maxChannels` channels (the least recently used is
// forgotten) and `maxPending` unqueried acks per channel (the oldest is
// forgotten). A forgotten ack answers false, so the client sends the events
// again: a duplicate, never a loss.

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
  private readonly channels = new Map<string, Channel>();

  constructor(private readonly opts: AckOptions) {}

  private channel(token: string, channel: string, create: boolean): Channel | undefined {
    const key = `${token}\n${channel.toLowerCase()}`;
    const found = this.channels.get(key);
    if (found) {
      // Most recently used last: Map keeps insertion order.
      this.channels.delete(key);
      this.channels.set(key, found);
      return found;
    }
    if (!create) return undefined;
    const ch: Channel = { next: 0, pending: new Set() };
    this.channels.set(key, ch);
    while (this.channels.size > this.opts.maxChannels) this.channels.delete(this.channels.keys().next().value!);
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
    return this.channels.size;
  }
}
