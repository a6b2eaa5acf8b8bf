// The process listening on a loopback TCP port, from /proc (Linux): lets a
// benchmark against an external CouchDB on this machine report that
// server's CPU as it does for the embedded one. null when not found, not
// Linux, or not allowed to look (another user's process).
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

const LISTEN = '0A';

function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== LISTEN) continue;
      const local = f[1]!;
      if (parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) inodes.add(f[9]!);
    }
  }
  return inodes;
}

export function listeningPid(url: string): number | null {
  let port: number;
  try {
    const u = new URL(url);
    port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  } catch {
    return null;
  }
  const inodes = listeningInodes(port);
  if (inodes.size === 0) return null;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return null;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.has(m[1]!)) return Number(pid);
      } catch {
        // gone meanwhile
      }
    }
  }
  return null;
}
