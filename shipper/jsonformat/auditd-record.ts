// One Linux audit record, as auditd writes it to audit.log:
//
//   [node=host ]type=SYSCALL msg=audit(1721187223.512:3051): arch=c000003e syscall=59 ... comm="bash" exe=2F7573722F62696E2F62617368 key=(null)
//
// Values are quoted ("..."), hex-encoded when the kernel considered them
// untrusted (a space, a quote or a control character inside), or bare.
// User-space records carry a single-quoted msg='op=... res=success' whose
// inner pairs are parsed into an object. With log_format=ENRICHED, auditd
// appends interpreted fields (UID="root") after a \x1d separator.

export interface AuditRecord {
  node: string | null;
  type: string;
  /** Seconds since the epoch, as written ("1721187223.512"). */
  time: string;
  serial: number;
  fields: Record<string, unknown>;
}

const HEADER = /^(?:node=(\S+) )?type=(\S+) msg=audit\((\d+(?:\.\d+)?):(\d+)\):/;

/**
 * Fields the kernel and auditd hex-encode when their value is untrusted
 * (the list auparse interprets as "escaped").
 */
const HEX_FIELDS = new Set([
  'acct',
  'cmd',
  'comm',
  'cwd',
  'data',
  'dir',
  'exe',
  'file',
  'grp',
  'key',
  'name',
  'new_group',
  'ocomm',
  'old-chardev',
  'new-chardev',
  'old-disk',
  'new-disk',
  'old-fs',
  'new-fs',
  'old-net',
  'new-net',
  'old-rng',
  'new-rng',
  'path',
  'proctitle',
  'root_dir',
  'sw',
  'vm',
  'watch',
]);

const UPPER_HEX = /^(?:[0-9A-F]{2})+$/;

export function parseAuditRecord(line: string): AuditRecord | null {
  const m = HEADER.exec(line);
  if (m === null) return null;
  const serial = Number(m[4]);
  if (!Number.isSafeInteger(serial)) return null;
  return { node: m[1] ?? null, type: m[2]!, time: m[3]!, serial, fields: parsePairs(line, m[0].length) };
}

/** key=value pairs from `from` on; words that are not pairs (AVC's "denied { read }") go to `text`. */
export function parsePairs(s: string, from = 0, end = s.length): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  const words: string[] = [];
  let i = from;
  while (i < end) {
    while (i < end && isSep(s.charCodeAt(i))) i++;
    if (i >= end) break;
    const keyStart = i;
    while (i < end && !isSep(s.charCodeAt(i)) && s[i] !== '=') i++;
    if (s[i] !== '=' || i === keyStart) {
      while (i < end && !isSep(s.charCodeAt(i))) i++;
      words.push(s.slice(keyStart, i));
      continue;
    }
    const key = s.slice(keyStart, i);
    i++;
    const q = s[i];
    if (q === '"' || q === "'") {
      const close = s.indexOf(q, i + 1);
      const stop = close === -1 || close > end ? end : close;
      const inner = s.slice(i + 1, stop);
      fields[key] = q === "'" ? innerPairs(s, i + 1, stop, inner) : inner;
      i = stop + 1;
      continue;
    }
    const valueStart = i;
    while (i < end && !isSep(s.charCodeAt(i))) i++;
    fields[key] = bareValue(key, s.slice(valueStart, i));
  }
  if (words.length > 0 && fields.text === undefined) fields.text = words.join(' ');
  return fields;
}

/** msg='op=login acct="root" res=failed' → {op, acct, res}; a plain message stays a string. */
function innerPairs(s: string, from: number, to: number, raw: string): unknown {
  if (!raw.includes('=')) return raw;
  return parsePairs(s, from, to);
}

function bareValue(key: string, value: string): unknown {
  if (value === '(null)' || value === '(none)') return null;
  if (HEX_FIELDS.has(key) && UPPER_HEX.test(value)) {
    const decoded = Buffer.from(value, 'hex').toString('utf8');
    // proctitle holds argv separated by NULs: shown as ausearch -i shows it.
    return key === 'proctitle' ? decoded.replace(/\0+$/, '').replace(/\0/g, ' ') : decoded;
  }
  return value;
}

/** Space, tab, and the \x1d that separates ENRICHED fields. */
function isSep(c: number): boolean {
  return c === 32 || c === 9 || c === 0x1d || c === 13;
}
