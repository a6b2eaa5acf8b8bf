// lib/http-url.ts: every URL couchlog builds from a configured host and port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { httpUrl, isWildcardHost, redactUrlCredentials } from '../../../lib/http-url.js';

test('hosts and ports as URLs', () => {
  const cases: Array<[string, number, boolean, string]> = [
    ['127.0.0.1', 8080, false, 'http://127.0.0.1:8080'],
    ['localhost', 5984, false, 'http://localhost:5984'],
    ['::1', 8080, false, 'http://[::1]:8080'],
    ['[::1]', 8080, false, 'http://[::1]:8080'],
    ['fe80::1%eth0', 80, false, 'http://[fe80::1%eth0]:80'],
    ['0.0.0.0', 8080, false, 'http://0.0.0.0:8080'],
    ['::', 9464, false, 'http://[::]:9464'],
    // for a client here, a wildcard listen address is reached on loopback
    ['0.0.0.0', 8080, true, 'http://127.0.0.1:8080'],
    ['::', 9464, true, 'http://127.0.0.1:9464'],
    ['[::]', 9464, true, 'http://127.0.0.1:9464'],
    ['::1', 8080, true, 'http://[::1]:8080'],
  ];
  for (const [host, port, reachable, want] of cases) assert.equal(httpUrl(host, port, { reachable }), want, `${host} ${port} ${reachable}`);
});

test('every URL built parses back to its host and port', () => {
  for (const host of ['127.0.0.1', '::1', '::', '0.0.0.0', 'couch.example']) {
    for (const reachable of [false, true]) {
      const url = new URL(httpUrl(host, 6543, { reachable }));
      assert.equal(url.port, '6543');
      assert.equal(url.protocol, 'http:');
    }
  }
});

test('wildcards', () => {
  assert.deepEqual(['0.0.0.0', '::', '[::]', '127.0.0.1', '::1'].map(isWildcardHost), [true, true, true, false, false]);
});

test('the credentials of URLs in a message are redacted, the rest is kept', () => {
  const cases: Array<[string, string]> = [
    ['cannot reach http://reader:S3cretPw@127.0.0.1:1: ECONNREFUSED', 'cannot reach http://[redacted]@127.0.0.1:1: ECONNREFUSED'],
    ['https://S3cretTok@splunk:8088/services/collector', 'https://[redacted]@splunk:8088/services/collector'],
    // a "@" in the password belongs to it: the host begins after the last one
    ['"http://admin:p@ss@S3cret@couch:5984/x"', '"http://[redacted]@couch:5984/x"'],
    ['a http://u:S3cret@a:1 and HTTPS://v:S3cret@b:2/', 'a http://[redacted]@a:1 and HTTPS://[redacted]@b:2/'],
    ['Error: x\n    at http://u:S3cret@h/ (file:///app/x.js:1:2)', 'Error: x\n    at http://[redacted]@h/ (file:///app/x.js:1:2)'],
    // a password with "/", "?" or "#" unencoded: no valid URL, still a password
    ['not a URL: http://admin:S3cret/x?y#z@couch:5984/db', 'not a URL: http://[redacted]@couch:5984/db'],
    ['http://u:S3cret#1@h', 'http://[redacted]@h'],
    // a password with white space in it
    ['COUCHDB_URL http://admin:my S3cret pw@couch:5984 is not a URL', 'COUCHDB_URL http://[redacted]@couch:5984 is not a URL'],
    ['http://admin:S3cret\tx@couch\nnext line@x', 'http://[redacted]@couch\nnext line@x'],
    ['http://127.0.0.1:5984/db/doc@1 and http://h:80?q=a@b', 'http://127.0.0.1:5984/db/doc@1 and http://h:80?q=a@b'],
    // no userinfo: nothing to hide ("@" in a path, query or elsewhere in the text is left alone)
    ['http://127.0.0.1:1/db/doc@1?x=a@b and mail@example.org', 'http://127.0.0.1:1/db/doc@1?x=a@b and mail@example.org'],
    ['file:///tmp/a@b', 'file:///tmp/a@b'],
  ];
  for (const [text, want] of cases) {
    assert.equal(redactUrlCredentials(text), want, text);
    assert.ok(!redactUrlCredentials(text).includes('S3cret'));
  }
});
