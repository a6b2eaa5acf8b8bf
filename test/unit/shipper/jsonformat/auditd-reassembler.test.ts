// Linux audit records (shipper/jsonformat/auditd-record.ts) and their
// reassembly into events (shipper/jsonformat/auditd-reassembler.ts): values
// decoded, records grouped by type, interleaved events kept apart, events
// without EOE emitted after the timeout (stream time, wall clock, end of
// input), output in serial order.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAuditRecord, parsePairs } from '../../../../shipper/jsonformat/auditd-record.js';
import { AuditReassembler, auditEventJson, type AuditEvent } from '../../../../shipper/jsonformat/auditd-reassembler.js';
import { AuditConverter } from '../../../../shipper/jsonformat/converter.js';

const hex = (s: string) => Buffer.from(s).toString('hex').toUpperCase();

/** The records of one execve event, serial `serial` at `time`. */
function execEvent(time: string, serial: number, cmd = 'ls'): string[] {
  const a = `msg=audit(${time}:${serial}):`;
  return [
    `type=SYSCALL ${a} arch=c000003e syscall=59 success=yes exit=0 items=2 ppid=1200 pid=${serial} auid=1000 uid=0 tty=pts0 ses=3 comm="${cmd}" exe="/usr/bin/${cmd}" key="exec"`,
    `type=EXECVE ${a} argc=2 a0="${cmd}" a1="-la"`,
    `type=CWD ${a} cwd="/root"`,
    `type=PATH ${a} item=0 name="/usr/bin/${cmd}" inode=1234 dev=fd:00 mode=0100755 nametype=NORMAL`,
    `type=PATH ${a} item=1 name="/lib64/ld-linux-x86-64.so.2" inode=5678 dev=fd:00 mode=0100755 nametype=NORMAL`,
    `type=PROCTITLE ${a} proctitle=${hex(`${cmd}\0-la`)}`,
    `type=EOE ${a}`,
  ];
}

interface Collected {
  events: Array<AuditEvent<number>>;
  push(line: string, meta: number): void;
  r: AuditReassembler<number>;
}

function collect(timeoutS = 2, maxOpen = 1000, now?: () => number): Collected {
  const events: Array<AuditEvent<number>> = [];
  const r = new AuditReassembler<number>({ timeoutS, maxOpen, now, emit: (e) => events.push(e) });
  return {
    events,
    r,
    push(line, meta) {
      const rec = parseAuditRecord(line);
      assert.ok(rec, `not parsed: ${line}`);
      r.push(rec, meta);
    },
  };
}

describe('audit records', () => {
  test('header, quoted, bare and hex-encoded values', () => {
    const rec = parseAuditRecord(
      `type=SYSCALL msg=audit(1721187223.512:3051): arch=c000003e syscall=59 comm=${hex('my script')} exe="/usr/bin/bash" key=(null)`,
    );
    assert.deepEqual(rec, {
      node: null,
      type: 'SYSCALL',
      time: '1721187223.512',
      serial: 3051,
      fields: { arch: 'c000003e', syscall: '59', comm: 'my script', exe: '/usr/bin/bash', key: null },
    });
  });

  test('proctitle: NUL-separated argv shown with spaces; hex only decoded for fields the kernel encodes', () => {
    const rec = parseAuditRecord(`type=PROCTITLE msg=audit(1.000:1): proctitle=${hex('/bin/sh\0-c\0echo "hi"')}`)!;
    assert.equal(rec.fields.proctitle, '/bin/sh -c echo "hi"');
    assert.equal(parseAuditRecord('type=SYSCALL msg=audit(1.000:1): a0=ABCD arch=C000003E')!.fields.a0, 'ABCD', 'a0 is a number, not text');
  });

  test("user-space msg='...' is parsed into an object; node= prefix; ENRICHED fields after \\x1d", () => {
    const rec = parseAuditRecord(
      `node=web1 type=USER_LOGIN msg=audit(1721187230.001:3060): pid=999 uid=0 auid=4294967295 msg='op=login acct="root" exe="/usr/sbin/sshd" hostname=? addr=59.45.175.88 terminal=ssh res=failed'\x1dUID="root" AUID="unset"`,
    )!;
    assert.equal(rec.node, 'web1');
    assert.equal(rec.type, 'USER_LOGIN');
    assert.deepEqual(rec.fields, {
      pid: '999',
      uid: '0',
      auid: '4294967295',
      msg: { op: 'login', acct: 'root', exe: '/usr/sbin/sshd', hostname: '?', addr: '59.45.175.88', terminal: 'ssh', res: 'failed' },
      UID: 'root',
      AUID: 'unset',
    });
  });

  test('words that are not key=value (AVC) are kept as text', () => {
    const fields = parsePairs('avc:  denied  { read } for  pid=12 comm="cat" tclass=file');
    assert.deepEqual(fields, { pid: '12', comm: 'cat', tclass: 'file', text: 'avc: denied { read } for' });
  });

  test('lines that are not audit records are refused', () => {
    for (const line of ['hello', 'type=SYSCALL msg=audit(abc:1): x=1', 'type=SYSCALL msg=audit(1.0:): x=1', 'msg=audit(1.0:1): type=SYSCALL']) {
      assert.equal(parseAuditRecord(line), null, line);
    }
  });
});

describe('reassembly', () => {
  test('one event: records grouped by type in arrival order, emitted at EOE, complete', () => {
    const c = collect();
    execEvent('1721187223.512', 3051).forEach((l, i) => c.push(l, i));
    assert.equal(c.events.length, 1);
    const e = c.events[0]!;
    assert.equal(e.complete, true);
    assert.deepEqual(Object.keys(e.records), ['SYSCALL', 'EXECVE', 'CWD', 'PATH', 'PROCTITLE']);
    assert.deepEqual(
      e.records.PATH!.map((p) => p.item),
      ['0', '1'],
    );
    assert.equal(e.records.PROCTITLE![0]!.proctitle, 'ls -la');
    assert.deepEqual(e.meta, [0, 1, 2, 3, 4, 5, 6], 'every line, the EOE included, belongs to the event');
    const doc = JSON.parse(auditEventJson(e));
    assert.equal(doc.timestamp, 1721187223.512);
    assert.equal(doc.time, '2024-07-17T03:33:43.512Z');
    assert.equal(doc.serial, 3051);
    assert.equal(doc.complete, true);
    assert.deepEqual(doc.types, ['SYSCALL', 'EXECVE', 'CWD', 'PATH', 'PROCTITLE']);
    assert.equal(doc.records.SYSCALL[0].comm, 'ls');
  });

  test('interleaved events are kept apart and leave in serial order, whichever ends first', () => {
    const a = execEvent('100.000', 10, 'ls');
    const b = execEvent('100.001', 11, 'cat');
    const c3 = execEvent('100.002', 12, 'id');
    // b ends first, then c, then a: records shuffled between the three.
    const order: string[] = [
      a[0]!,
      b[0]!,
      a[1]!,
      c3[0]!,
      b[1]!,
      b[2]!,
      b[3]!,
      b[4]!,
      b[5]!,
      c3[1]!,
      c3[2]!,
      c3[3]!,
      c3[4]!,
      c3[5]!,
      b[6]!,
      c3[6]!,
      a[2]!,
      a[3]!,
      a[4]!,
      a[5]!,
    ];
    const c = collect();
    order.forEach((l, i) => c.push(l, i));
    assert.equal(c.events.length, 0, 'b and c are done but wait for a, the earlier serial');
    c.push(a[6]!, 99);
    assert.deepEqual(
      c.events.map((e) => e.serial),
      [10, 11, 12],
    );
    for (const [e, cmd] of c.events.map((e, i) => [e, ['ls', 'cat', 'id'][i]] as const)) {
      assert.equal(e.complete, true);
      assert.equal(e.records.SYSCALL![0]!.comm, cmd, 'no record went to the wrong event');
      assert.equal(e.records.PATH!.length, 2);
      assert.equal(e.meta.length, 7);
    }
  });

  test('same serial at another time (after a reboot) is another event', () => {
    const c = collect();
    execEvent('100.000', 5).forEach((l, i) => c.push(l, i));
    execEvent('200.000', 5).forEach((l, i) => c.push(l, 10 + i));
    assert.equal(c.events.length, 2);
    assert.deepEqual(
      c.events.map((e) => e.time),
      ['100.000', '200.000'],
    );
  });

  test('an event whose EOE never comes leaves once the stream is timeoutS past it, incomplete, still in order', () => {
    const c = collect(2);
    const lost = execEvent('100.000', 20).slice(0, 3); // no EOE
    lost.forEach((l, i) => c.push(l, i));
    execEvent('101.000', 21).forEach((l, i) => c.push(l, 10 + i));
    assert.equal(c.events.length, 0, '21 waits for 20; 1 s of stream time is not enough to give up on 20');
    execEvent('102.500', 22).forEach((l, i) => c.push(l, 20 + i));
    assert.deepEqual(
      c.events.map((e) => [e.serial, e.complete]),
      [
        [20, false],
        [21, true],
        [22, true],
      ],
    );
    assert.deepEqual(Object.keys(c.events[0]!.records), ['SYSCALL', 'EXECVE', 'CWD']);
  });

  test('a live stream gone quiet: idleExpire() lets an EOE-less event out after timeoutS of wall clock', () => {
    let now = 1_000_000;
    const c = collect(2, 1000, () => now);
    execEvent('100.000', 30)
      .slice(0, 2)
      .forEach((l, i) => c.push(l, i));
    now += 1500;
    c.r.idleExpire();
    assert.equal(c.events.length, 0);
    now += 600;
    c.r.idleExpire();
    assert.deepEqual(
      c.events.map((e) => [e.serial, e.complete]),
      [[30, false]],
    );
  });

  test('flush() at the end of input lets every open event out, in serial order', () => {
    const c = collect(60);
    execEvent('100.000', 41)
      .slice(0, 2)
      .forEach((l, i) => c.push(l, i));
    execEvent('100.000', 40)
      .slice(0, 2)
      .forEach((l, i) => c.push(l, i));
    c.r.flush();
    assert.deepEqual(
      c.events.map((e) => [e.serial, e.complete]),
      [
        [40, false],
        [41, false],
      ],
    );
  });

  test('expireOlderThan(): at the end of a file still being written, only events older than the timeout leave', () => {
    const c = collect(2);
    execEvent('100.000', 50)
      .slice(0, 2)
      .forEach((l, i) => c.push(l, i));
    execEvent('109.000', 51)
      .slice(0, 2)
      .forEach((l, i) => c.push(l, 10 + i));
    c.r.expireOlderThan(110);
    assert.deepEqual(
      c.events.map((e) => e.serial),
      [50],
    );
    assert.deepEqual([...c.r.pendingMeta()], [10, 11], 'the lines of the open event are still pending');
  });

  test('user-space messages (single record, no EOE) leave at once', () => {
    const c = collect(60);
    c.push(`type=USER_LOGIN msg=audit(100.000:60): pid=1 uid=0 msg='op=login acct="root" res=failed'`, 0);
    c.push(`type=CRED_DISP msg=audit(100.001:61): pid=1 uid=0 msg='op=PAM:setcred acct="root" res=success'`, 1);
    assert.deepEqual(
      c.events.map((e) => [e.serial, e.complete]),
      [
        [60, true],
        [61, true],
      ],
    );
  });

  test('at most maxOpen events wait; the oldest is let out incomplete', () => {
    const c = collect(60, 2);
    for (let s = 1; s <= 3; s++) c.push(execEvent('100.000', s)[0]!, s);
    assert.deepEqual(
      c.events.map((e) => [e.serial, e.complete]),
      [[1, false]],
    );
    assert.equal(c.r.openCount, 2);
  });

  test('a stray EOE (its records already gone) accounts for its line and gives no document', () => {
    const docs: string[] = [];
    const events: Array<[string | null, number[]]> = [];
    const conv = new AuditConverter<number>(
      {
        doc: (json) => docs.push(json),
        event: (json, metas) => events.push([json, metas]),
        mismatch: () => assert.fail('not a mismatch'),
      },
      2,
      100,
    );
    conv.line('type=EOE msg=audit(100.000:70):', 7);
    assert.deepEqual(events, [[null, [7]]]);
  });

  test('AuditConverter: non-records are mismatches with a reason; end(true) flushes', () => {
    const out: Array<[string | null, number[]]> = [];
    const bad: Array<[number, string]> = [];
    const conv = new AuditConverter<number>({ doc: () => assert.fail(), event: (j, m) => out.push([j, m]), mismatch: (m, r) => bad.push([m, r]) }, 2, 100);
    conv.line('garbage', 1);
    execEvent('100.000', 80)
      .slice(0, 2)
      .forEach((l, i) => conv.line(l, 10 + i));
    conv.end(true);
    assert.equal(bad.length, 1);
    assert.match(bad[0]![1], /not an audit record/);
    assert.equal(out.length, 1);
    assert.equal(JSON.parse(out[0]![0]!).complete, false);
    assert.deepEqual(out[0]![1], [10, 11]);
  });
});
