// Every preset's documented sample gives its documented output, text for
// text (docs/shipper.md shows the same pairs), plus the lines each preset
// meets in real logs.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { converterFactory, type ConvertSink } from '../../../../shipper/jsonformat/converter.js';
import { PRESETS, findPreset } from '../../../../shipper/jsonformat/presets.js';
import { UsageError } from '../../../../lib/errors.js';
import { ROOT } from '../../../helpers/repo-root.js';

/** Runs lines through --preset (and extra options) and returns outputs or mismatch reasons. */
function run(preset: string, lines: string[], extra: { fields?: string[]; types?: string[] } = {}): Array<string | { mismatch: string }> {
  const out: Array<string | { mismatch: string }> = [];
  const sink: ConvertSink<number> = {
    doc: (json) => out.push(json),
    event: () => assert.fail('no events from a preset'),
    mismatch: (_m, reason) => out.push({ mismatch: reason }),
  };
  const conv = converterFactory({ preset, ...extra }, 'schema')(sink);
  lines.forEach((l, i) => conv.line(l, i));
  conv.end(true);
  return out;
}

describe('presets', () => {
  for (const [name, p] of Object.entries(PRESETS)) {
    test(`${name}: the sample gives exactly the documented output`, () => {
      assert.deepEqual(run(name, [p.sample]), [p.output]);
    });

    test(`${name}: docs/shipper.md shows the same schema, sample and output`, () => {
      const doc = readFileSync(join(ROOT, 'docs/shipper.md'), 'utf8');
      assert.ok(doc.includes(p.sample), `${name}'s sample is in docs/shipper.md`);
      assert.ok(doc.includes(p.output), `${name}'s output is in docs/shipper.md`);
      assert.ok(doc.includes(p.schema), `${name}'s schema is in docs/shipper.md`);
    });
  }

  test('fail2ban: with machine=server, has the fields the reports read (date, process, ip, machine)', () => {
    const [json] = run('fail2ban', [PRESETS.fail2ban!.sample], { fields: ['machine=server'] });
    const doc = JSON.parse(json as string);
    assert.deepEqual(
      { date: doc.date, hour: doc.hour, process: doc.process, ip: doc.ip, machine: doc.machine },
      {
        date: '2017-06-14',
        hour: '17:16:12,329',
        process: 'sshd',
        ip: '59.45.175.88',
        machine: 'server',
      },
    );
  });

  test('fail2ban: Unban lines match too (the action says which); other lines do not', () => {
    const out = run('fail2ban', [
      '2017-06-14 18:16:12,330 fail2ban.actions        [1112]: NOTICE  [sshd] Unban 59.45.175.88',
      "2017-06-14 17:00:00,000 fail2ban.jail           [1112]: INFO    Jail 'sshd' started",
    ]);
    assert.equal(JSON.parse(out[0] as string).action, 'Unban');
    assert.deepEqual(out[1], { mismatch: 'does not match the schema' });
  });

  test('apache-combined: %b "-" (no body) is null; a quoted request with \\" inside is decoded', () => {
    const [json] = run('apache-combined', ['10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /a\\"b HTTP/1.0" 304 - "-" "curl/8.0"']);
    const doc = JSON.parse(json as string);
    assert.equal(doc.bytes, null);
    assert.equal(doc.status, 304);
    assert.equal(doc.request, 'GET /a"b HTTP/1.0');
  });

  test('nginx-combined: an empty user agent and a request with spaces', () => {
    const [json] = run('nginx-combined', ['::1 - alice [14/Jun/2017:17:16:12 +0200] "POST /log_x HTTP/1.1" 201 95 "https://a.example/?q=1 2" ""']);
    const doc = JSON.parse(json as string);
    assert.equal(doc.remote_addr, '::1');
    assert.equal(doc.remote_user, 'alice');
    assert.equal(doc.http_referer, 'https://a.example/?q=1 2');
    assert.equal(doc.http_user_agent, '');
  });

  test('syslog: a single-digit day padded with two spaces; a message with colons', () => {
    const [json] = run('syslog', ['Jun  4 07:01:02 host CRON[99]: (root) CMD (run-parts --report /etc/cron.hourly): ok']);
    assert.deepEqual(JSON.parse(json as string), {
      month: 'Jun',
      day: 4,
      time: '07:01:02',
      host: 'host',
      program: 'CRON[99]',
      message: '(root) CMD (run-parts --report /etc/cron.hourly): ok',
    });
  });

  test('--types on top of a preset adds conversions; --fields adds constants', () => {
    const [json] = run('syslog', [PRESETS.syslog!.sample], { types: ['day=string'], fields: ['env=prod'] });
    const doc = JSON.parse(json as string);
    assert.equal(doc.day, '14');
    assert.equal(doc.env, 'prod');
  });

  test('an unknown preset is a usage error listing the known ones', () => {
    assert.throws(
      () => findPreset('iis'),
      (e: unknown) => e instanceof UsageError && /known presets: fail2ban, nginx-combined/.test(e.message),
    );
  });

  test('--schema, --preset and --format are exclusive', () => {
    assert.throws(() => converterFactory({ preset: 'syslog', schema: '$a' }, 'schema'), /only one of --schema, --preset and --format/);
    assert.throws(() => converterFactory({ preset: 'syslog', format: 'auditd' }, 'schema'), /only one of/);
    assert.throws(() => converterFactory({}, 'schema'), /give --schema, --preset or --format/);
    assert.throws(() => converterFactory({ format: 'auditd', fields: ['a=b'] }, 'schema'), /do not apply to --format auditd/);
  });
});
