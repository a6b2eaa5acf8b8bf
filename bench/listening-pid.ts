// The process listening on a loopback TCP port, from /proc (Linux): lets a
// benchmark against an external CouchDB on this machine report that
// server's CPU as it does for the embedded one. null when not found, not
// Linux, or not allowed to look (another user's process).
import { readdirSync } from 'node:fs';
import { socketInodes } from '../embedded/port-holder.js';
import { listenersOn } from '../lib/listening-sockets.js';

export function listeningPid(url: string): number | null {
  let port: number;
  try {
    const u = new URL(url);
    port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  } catch {
    return null;
  }
  const inodes = new Set((listenersOn(port) ?? []).map((l) => l.inode));
  if (inodes.size === 0) return null;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return null;
  }
  for (const pid of pids) {
    for (const inode of socketInodes(Number(pid))) if (inodes.has(inode)) return Number(pid);
  }
  return null;
}
