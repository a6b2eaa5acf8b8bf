// A CouchDB stand-in that answers _changes from a list of `total` changes
// (seq 1..total, each with its document) and fails any page larger than
// it can build, as PouchDB Server does with documents of several MB each
// (500 "Invalid string length"). For the readers that must then ask for
// smaller pages: the correlator's feeds and couchlog forward.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface BigDocChanges {
  url: string;
  /** The limit of every _changes request, in order. */
  limits: number[];
  /** Largest page it can build (Infinity: any). */
  maxPage: number;
  close(): Promise<void>;
}

export async function startBigDocChanges(total: number, maxPage: number): Promise<BigDocChanges> {
  const limits: number[] = [];
  const server: Server = createServer((req, res) => {
    const q = new URL(req.url!, 'http://x').searchParams;
    const limit = Number(q.get('limit'));
    const since = Number(q.get('since'));
    limits.push(limit);
    res.setHeader('content-type', 'application/json');
    if (limit > state.maxPage) {
      res.statusCode = 500;
      return res.end('{"error":"RangeError","reason":"Invalid string length"}');
    }
    const results = [];
    for (let s = since + 1; s <= Math.min(total, since + limit); s++) results.push({ seq: s, id: `d${s}`, changes: [], doc: { _id: `d${s}`, n: s } });
    res.end(JSON.stringify({ results, last_seq: since + results.length, pending: total - since - results.length }));
  });
  const state: BigDocChanges = {
    url: '',
    limits,
    maxPage,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}
