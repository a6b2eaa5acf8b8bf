// Schemas for common log formats. Each carries a sample line and the exact
// output it gives: docs/shipper.md shows them and test/unit/jsonformat-presets
// checks them, so the documentation cannot drift from the code.
import { UsageError } from '../../lib/errors.js';

export interface Preset {
  description: string;
  schema: string;
  /** `--types` of the preset (more can be given on the command line). */
  types: string;
  sample: string;
  /** What the sample gives, as JSON text (key order as written). */
  output: string;
}

export const PRESETS: Record<string, Preset> = {
  fail2ban: {
    description:
      "fail2ban.log action lines (Ban, Unban, ...): keep the Ban lines with --grep '\\] Ban ' (grep Ban also passes 0.10+'s Restore Ban and Increase Ban lines)",
    schema: '$date $hour _ \\[$pid\\]: $level \\[$process\\] $action $ip',
    types: 'pid=int',
    sample: '2017-06-14 17:16:12,329 fail2ban.actions        [1112]: NOTICE  [sshd] Ban 59.45.175.88',
    output: '{"date":"2017-06-14","hour":"17:16:12,329","pid":1112,"level":"NOTICE","process":"sshd","action":"Ban","ip":"59.45.175.88"}',
  },
  'nginx-combined': {
    description: "nginx's predefined `combined` log_format (the schema is that format's own text)",
    schema: '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"',
    types: 'status=int,body_bytes_sent=int',
    sample: '203.0.113.7 - - [14/Jun/2017:17:16:12 +0200] "GET /index.html?q=a%20b HTTP/1.1" 200 612 "-" "Mozilla/5.0 (X11; Linux x86_64)"',
    output:
      '{"remote_addr":"203.0.113.7","remote_user":"-","time_local":"14/Jun/2017:17:16:12 +0200","request":"GET /index.html?q=a%20b HTTP/1.1","status":200,"body_bytes_sent":612,"http_referer":"-","http_user_agent":"Mozilla/5.0 (X11; Linux x86_64)"}',
  },
  'apache-combined': {
    description: 'Apache\'s "%h %l %u %t \\"%r\\" %>s %b \\"%{Referer}i\\" \\"%{User-agent}i\\"" (%b is "-" for no body: null)',
    schema: '$host $ident $user [$time] "$request" $status $bytes "$referer" "$user_agent"',
    types: 'status=int,bytes=int',
    sample:
      '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"',
    output:
      '{"host":"127.0.0.1","ident":"-","user":"frank","time":"10/Oct/2000:13:55:36 -0700","request":"GET /apache_pb.gif HTTP/1.0","status":200,"bytes":2326,"referer":"http://www.example.com/start.html","user_agent":"Mozilla/4.08 [en] (Win98; I ;Nav)"}',
  },
  syslog: {
    description: 'traditional syslog files (/var/log/syslog, auth.log: "Mmm dd hh:mm:ss host program[pid]: message")',
    schema: '$month $day $time $host $program: $message...',
    types: 'day=int',
    sample: 'Jun 14 17:16:12 myhost sshd[1112]: Failed password for root from 59.45.175.88 port 52113 ssh2',
    output:
      '{"month":"Jun","day":14,"time":"17:16:12","host":"myhost","program":"sshd[1112]","message":"Failed password for root from 59.45.175.88 port 52113 ssh2"}',
  },
  'syslog-rfc3339': {
    description: "rsyslog's RFC 3339 timestamps (Debian 12's default file format)",
    schema: '$time $host $program: $message...',
    types: '',
    sample: '2024-07-17T11:47:03.123456+08:00 myhost sshd[1112]: Accepted publickey for deploy from 192.0.2.10 port 50122 ssh2',
    output:
      '{"time":"2024-07-17T11:47:03.123456+08:00","host":"myhost","program":"sshd[1112]","message":"Accepted publickey for deploy from 192.0.2.10 port 50122 ssh2"}',
  },
};

export function findPreset(name: string): Preset {
  const preset = PRESETS[name];
  if (!preset) throw new UsageError(`unknown preset "${name}"; known presets: ${Object.keys(PRESETS).join(', ')}`);
  return preset;
}
