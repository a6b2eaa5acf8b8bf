// Browsers (issue 12, defects 4 and 5): CORS off by default, an allowlist of
// origins when configured (PouchDB Server's own reflecting CORS headers never
// pass); cookies set through the ingress get SameSite=Lax, and Secure when a
// trusted proxy says the caller came over TLS; a browser's script requests
// get no Basic challenge (no native dialog over Fauxton), curl still does.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { get, type IncomingMessage } from 'node:http';
import { startStack, http, JSON_TYPE, type Stack } from '../helpers/stack.js';

let stack: Stack;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.stop();
});

const EVIL = 'http://evil.example';
const TOOLS = 'http://tools.example:8443';

function login(extra: Record<string, string> = {}) {
  return http(`${stack.url}/_session`, {
    method: 'POST',
    headers: { ...JSON_TYPE, ...extra },
    body: JSON.stringify({ name: stack.config.users.reader.user, password: stack.config.users.reader.password }),
  });
}

test('every answer, proxied ones included, says nosniff and refuses framing', async () => {
  const post = await http(`${stack.url}/log_appname`, { method: 'POST', headers: JSON_TYPE, body: '{"msg":"<html><script>alert(1)</script>"}' });
  const id = post.json.id as string;
  const reader = { authorization: stack.auth.reader };
  const answers = [
    post,
    await http(`${stack.url}/log_appname/${id}`, { headers: { ...reader, accept: 'text/html,*/*' } }),
    await http(`${stack.url}/log_appname/_design/logs/_list/html/by_time?limit=5`, { headers: reader }),
    await http(`${stack.url}/_utils/`),
    await http(`${stack.url}/nowhere/x`),
  ];
  for (const res of answers) {
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', `${res.status} ${res.text.slice(0, 80)}`);
    assert.equal(res.headers.get('x-frame-options'), 'DENY', `${res.status} ${res.text.slice(0, 80)}`);
  }
  // The dashboard keeps its own, stricter policy.
  const page = await http(`${stack.url}/_couchlog/dashboard/appname`);
  assert.match(page.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
});

describe('defect 4: CORS and cookies', () => {
  test('CORS is off by default: no Access-Control-* on any answer, preflights included', async () => {
    const answers = [
      await http(`${stack.url}/log_appname/_all_docs`, { headers: { authorization: stack.auth.reader, origin: EVIL } }),
      await http(`${stack.url}/_session`, { headers: { authorization: stack.auth.reader, origin: EVIL } }),
      await login({ origin: EVIL }),
      await http(`${stack.url}/log_appname`, { method: 'POST', headers: { ...JSON_TYPE, origin: EVIL }, body: '{}' }),
      await http(`${stack.url}/log_appname/_all_docs`, { method: 'OPTIONS', headers: { origin: EVIL, 'access-control-request-method': 'GET' } }),
    ];
    for (const res of answers) {
      const cors = [...res.headers.keys()].filter((h) => h.startsWith('access-control-'));
      assert.deepEqual(cors, [], `status ${res.status}`);
    }
  });

  test('with cors_origins, only those origins get credentialed CORS', async () => {
    await stack.restartIngress((c) => {
      c.ingress.cors_origins = [TOOLS];
    });
    try {
      const ok = await http(`${stack.url}/log_appname/_all_docs`, { headers: { authorization: stack.auth.reader, origin: TOOLS } });
      assert.equal(ok.status, 200);
      assert.equal(ok.headers.get('access-control-allow-origin'), TOOLS);
      assert.equal(ok.headers.get('access-control-allow-credentials'), 'true');
      const pre = await http(`${stack.url}/log_appname/_find`, { method: 'OPTIONS', headers: { origin: TOOLS, 'access-control-request-method': 'POST' } });
      assert.equal(pre.status, 204);
      assert.equal(pre.headers.get('access-control-allow-origin'), TOOLS);
      // An allowed origin may log in too; others still may not.
      assert.equal((await login({ origin: TOOLS, 'sec-fetch-site': 'cross-site' })).status, 200);
      assert.equal((await login({ origin: EVIL })).status, 403);
      const evil = await http(`${stack.url}/log_appname/_all_docs`, { headers: { authorization: stack.auth.reader, origin: EVIL } });
      assert.equal(evil.headers.get('access-control-allow-origin'), null);
      assert.equal(evil.headers.get('access-control-allow-credentials'), null);
    } finally {
      await stack.restartIngress((c) => {
        c.ingress.cors_origins = [];
      });
    }
  });

  test('login CSRF: a login from a page of another site is refused; the same site, and clients without Origin, log in', async () => {
    const form = (extra: Record<string, string>) =>
      http(`${stack.url}/_session`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...extra },
        body: `name=${encodeURIComponent(stack.config.users.reader.user)}&password=${encodeURIComponent(stack.config.users.reader.password!)}`,
      });
    // What a cross-site <form method=post> sends: before, 200 and the attacker's session cookie for the victim.
    const crossSite: Array<Record<string, string>> = [
      { origin: EVIL },
      { origin: EVIL, 'sec-fetch-site': 'cross-site' },
      { origin: 'null' },
      { 'sec-fetch-site': 'cross-site' },
    ];
    for (const headers of crossSite) {
      const res = await form(headers);
      assert.equal(res.status, 403, JSON.stringify(headers));
      assert.equal(res.json.code, 'INGRESS_LOGIN_CROSS_SITE');
      assert.equal(res.headers.get('set-cookie'), null);
    }
    assert.equal((await login({ origin: EVIL })).status, 403, 'JSON too');
    const host = new URL(stack.url).host;
    assert.equal((await form({ origin: `http://${host}`, 'sec-fetch-site': 'same-origin' })).status, 200, 'the dashboard and Fauxton on the ingress itself');
    assert.equal((await form({})).status, 200, 'curl and scripts send no Origin');
  });

  test('the session cookie gets SameSite=Lax; Secure only behind a trusted TLS proxy', async () => {
    const plain = await login();
    assert.equal(plain.status, 200, plain.text);
    const cookie = plain.headers.get('set-cookie') ?? '';
    assert.match(cookie, /AuthSession=/);
    // One cookie, hardened: CouchDB's own was once passed on next to it (a browser keeps either).
    const cookies = plain.headers.getSetCookie().filter((c) => c.startsWith('AuthSession='));
    assert.equal(cookies.length, 1, cookies.join(' | '));
    assert.match(cookies[0]!, /SameSite=Lax/i);
    assert.doesNotMatch(cookie, /;\s*Secure/i);
    // X-Forwarded-Proto from an untrusted caller changes nothing.
    assert.doesNotMatch((await login({ 'x-forwarded-proto': 'https' })).headers.get('set-cookie') ?? '', /;\s*Secure/i);
    await stack.restartIngress((c) => {
      c.ingress.trust_proxy = ['127.0.0.1'];
    });
    try {
      const tls = await login({ 'x-forwarded-proto': 'https' });
      const secure = tls.headers.getSetCookie().filter((c) => c.startsWith('AuthSession='));
      assert.equal(secure.length, 1, secure.join(' | '));
      assert.match(secure[0]!, /;\s*Secure/i);
      assert.match(secure[0]!, /SameSite=Lax/i);
    } finally {
      await stack.restartIngress((c) => {
        c.ingress.trust_proxy = [];
      });
    }
  });
});

describe('defect 5: no Basic challenge for browser scripts', () => {
  const BROWSER = { 'sec-fetch-mode': 'cors', 'sec-fetch-site': 'same-origin' };
  test("the ingress's own 401s", async () => {
    const script = await http(`${stack.url}/log_appname/_all_docs`, { headers: BROWSER });
    assert.equal(script.status, 401);
    assert.equal(script.headers.get('www-authenticate'), null);
    const xhr = await http(`${stack.url}/log_appname/_all_docs`, { headers: { 'x-requested-with': 'XMLHttpRequest' } });
    assert.equal(xhr.headers.get('www-authenticate'), null);
    const curl = await http(`${stack.url}/log_appname/_all_docs`);
    assert.equal(curl.status, 401);
    assert.match(curl.headers.get('www-authenticate') ?? '', /^Basic/);
    // (fetch always says Sec-Fetch-Mode: cors; a navigation is sent with node:http)
    const navigation = await new Promise<IncomingMessage>((resolve, reject) => {
      get(`${stack.url}/log_appname/_all_docs`, { headers: { 'sec-fetch-mode': 'navigate', 'sec-fetch-site': 'none' } }, (res) => {
        res.resume();
        resolve(res);
      }).on('error', reject);
    });
    assert.equal(navigation.statusCode, 401);
    assert.match(String(navigation.headers['www-authenticate'] ?? ''), /^Basic/);
  });

  test("CouchDB's own 401s through the proxy (a wrong login, Fauxton's session check)", async () => {
    for (const path of ['/_session']) {
      const wrong = await http(`${stack.url}${path}`, { method: 'POST', headers: { ...JSON_TYPE, ...BROWSER }, body: '{"name":"reader","password":"wrong"}' });
      assert.equal(wrong.status, 401);
      assert.equal(wrong.headers.get('www-authenticate'), null);
      const get = await http(`${stack.url}${path}`, { headers: BROWSER });
      assert.equal(get.headers.get('www-authenticate'), null);
    }
  });
});
