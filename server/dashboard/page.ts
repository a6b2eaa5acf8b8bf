// The live dashboard page: one self-contained HTML document (inline style
// and script, no CDN, no fonts), served by the ingress at
// /_couchlog/dashboard/<app>. It holds no data: the script logs the reader
// in (POST /_session, CouchDB's cookie) and reads everything through the
// ingress like any other reader request. The Content-Security-Policy allows
// only this page's own script (by hash) and requests to the same origin.
import { createHash } from 'node:crypto';
import { bansByDayMap } from '../../design-docs/fail2ban-report.js';
import { byJa4Map } from '../../design-docs/correlated-report.js';
import { dashboardClient, type DashboardConfig } from './client.js';
import { emittedKeysSource } from './view-rules.js';

const STYLE = `
*{box-sizing:border-box}
body{font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2430;background:#f4f6f9}
header{display:flex;flex-wrap:wrap;align-items:center;gap:8px 16px;padding:10px 16px;background:#1d2a3f;color:#fff}
header h1{font-size:18px;margin:0;font-weight:600}header .sp{flex:1}
#status{font-size:13px;padding:2px 10px;border-radius:10px;background:#7a8699}
#status.live{background:#2e8b57}#status.down{background:#b8860b}
header button{font:inherit;font-size:13px;background:transparent;color:#fff;border:1px solid #8893a5;border-radius:4px;padding:2px 10px;cursor:pointer}
main{padding:14px;display:grid;gap:14px;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));max-width:1400px;margin:0 auto}
section{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08);min-width:0}
section h2{font-size:14px;margin:0 0 8px;color:#4a5568;font-weight:600;text-transform:uppercase;letter-spacing:.03em}
.wide{grid-column:1/-1}
.kpis{display:flex;flex-wrap:wrap;gap:10px 28px}.kpi b{display:block;font-size:26px;font-variant-numeric:tabular-nums}.kpi small{color:#667}
#rate{display:flex;align-items:flex-end;gap:2px;height:90px;margin-top:10px;border-bottom:1px solid #ccd}
#rate .col{flex:1;height:100%;display:flex;align-items:flex-end}#rate .col span{display:block;width:100%;background:#3b6fb6;min-height:1px}
table{border-collapse:collapse;width:100%}td{padding:3px 6px;border-bottom:1px solid #eef0f3;white-space:nowrap}
td.n{text-align:right;font-variant-numeric:tabular-nums;width:1%}td.t{overflow:hidden;text-overflow:ellipsis;max-width:16em}
td.bar{width:45%}td.bar span{display:block;height:10px;background:#3b6fb6;border-radius:2px}.none{color:#889}
#latest{list-style:none;margin:0;padding:0;max-height:420px;overflow:auto}
#latest li{display:flex;gap:10px;padding:3px 0;border-bottom:1px solid #eef0f3;min-width:0}
#latest time{color:#667;font-size:12px;white-space:nowrap;flex:none;padding-top:2px}
#latest code{font-size:12px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;min-width:0}
#index-note,.note{color:#a0522d;font-size:13px;margin:0}
#login{max-width:360px;margin:60px auto;background:#fff;padding:20px;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.1)}
#login label{display:block;margin:10px 0 2px;font-size:13px;color:#4a5568}#login input{font:inherit;width:100%;padding:6px 8px;border:1px solid #bbc;border-radius:4px}
#login button{margin-top:14px;font:inherit;padding:6px 16px}
@media (max-width:600px){main{padding:8px;gap:8px}header{padding:8px 10px}.kpi b{font-size:22px}}
`;

function kindSections(kind: DashboardConfig['kind']): string {
  if (kind === 'fail2ban') {
    return `
<section><h2>Bans per machine, <span id="day"></span></h2><div class="kpis"><div class="kpi"><b id="bans-today">0</b><small>bans today (UTC)</small></div></div><table><tbody id="machines"></tbody></table><p class="note" id="machines-note"></p></section>
<section><h2>Top attackers of the day</h2><table><tbody id="attackers"></tbody></table><p class="note" id="attackers-note"></p></section>`;
  }
  if (kind === 'correlated') {
    return `
<section><h2>Correlated vs orphans (30 min)</h2><div class="kpis"><div class="kpi"><b id="correlated">0</b><small>correlated</small></div><div class="kpi"><b id="orphans">0</b><small>orphans</small></div><div class="kpi"><b id="orphan-share">–</b><small>orphan share</small></div></div></section>
<section><h2>Top JA4 fingerprints (all time)</h2><table><tbody id="ja4"></tbody></table><p class="note" id="ja4-note"></p></section>`;
  }
  return '';
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export interface DashboardPage {
  html: string;
  /** Content-Security-Policy allowing this page's own script only. */
  csp: string;
}

export function dashboardPage(cfg: DashboardConfig): DashboardPage {
  // `<` escaped so that no value can close the script element. The page
  // counts live changes by the views' own map functions (./view-rules.ts).
  const rules = `{ ban: ${emittedKeysSource(bansByDayMap)}, ja4: ${emittedKeysSource(byJa4Map)} }`;
  const script = `(${dashboardClient.toString()})(${JSON.stringify(cfg).replace(/</g, '\\u003c')}, ${rules});`;
  const hash = createHash('sha256').update(script).digest('base64');
  const html = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(cfg.db)} · live · couchlog</title>
<style>${STYLE}</style></head><body>
<header><h1>${esc(cfg.db)} · live</h1><span id="status">connecting…</span><span class="sp"></span><span id="user"></span><button id="logout" type="button">log out</button></header>
<div id="login" hidden><h1 style="font-size:18px;margin:0">couchlog · ${esc(cfg.db)}</h1><p id="login-message"></p>
<form id="login-form"><label for="name">user</label><input id="name" name="name" autocomplete="username" required>
<label for="password">password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">log in</button></form></div>
<div id="board" hidden><main>
<section class="wide"><h2>Documents</h2><div class="kpis"><div class="kpi"><b id="doc-count">0</b><small>in ${esc(cfg.db)}</small></div><div class="kpi"><b id="this-minute">0</b><small>this minute</small></div><div class="kpi"><b id="last-minute">0</b><small>last minute</small></div></div>
<div id="rate" aria-label="documents per minute, last 30 minutes"></div><p id="index-note"></p></section>
${kindSections(cfg.kind)}
<section class="wide"><h2>Latest documents</h2><ul id="latest"></ul></section>
</main></div>
<script>${script}</script>
</body></html>
`;
  const csp = [
    "default-src 'none'",
    `script-src 'sha256-${hash}'`,
    "style-src 'unsafe-inline'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html, csp };
}
