// Which process listens on a loopback port, read from /proc (Linux). The
// supervisor must only ever take its own child for the server: any local
// user can bind a port the child has left (it died, it closed its socket),
// and whatever answers there is sent the ingress's and the correlator's
// credentials. An HTTP answer cannot tell who gave it; the socket's inode
// can: /proc/net/tcp{,6} names the inode of every listening socket, and
// /proc/<pid>/fd links `socket:[<inode>]` for the sockets a process holds.
import { readdirSync, readlinkSync } from 'node:fs';
import { servingListener, type PortHolder } from '../lib/listening-sockets.js';

/**
 * Who would take a connection to `host:port` (`host` an IP address): the
 * listener bound to that very address, else a wildcard one (Linux prefers
 * the more specific). `ours`: the inodes of the sockets that are ours (the
 * child's, the supervisor's own), asked only when something listens.
 */
export function portHolder(host: string, port: number, ours: () => ReadonlySet<number>): PortHolder {
  const serving = servingListener(host, port);
  if (serving === undefined) return 'unknown';
  if (serving === null) return 'none';
  return ours().has(serving.inode) ? 'ours' : 'other';
}

/** Inodes of the sockets process `pid` holds open (empty when it is gone or not ours to read). */
export function socketInodes(pid: number): Set<number> {
  const inodes = new Set<number>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(Number(m[1]));
    } catch {
      // closed meanwhile
    }
  }
  return inodes;
}
