import { MAKE_A_TOKEN } from './auth.js';

/** The UI at `/`: one static page over the JSON API (a full UI comes later). It holds no data; the token stays in the browser. */
export const UI_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Capstan</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }
  h1 { font-size: 1.3rem; }
  table { border-collapse: collapse; width: 100%; margin-top: 1rem; }
  th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #ddd; }
  code { font: 12px ui-monospace, monospace; }
  .synced { color: #17803d; } .failed, .invalid, .denied { color: #b42318; } .drifted, .awaiting-approval, .out-of-sync { color: #b54708; }
  #error { color: #b42318; }
  input { width: 28rem; }
</style>
</head>
<body>
<h1>Capstan stacks</h1>
<form id="login"><label>API token <input id="token" type="password" autocomplete="off"></label> <button>Use</button></form>
<p id="error"></p>
<table>
  <thead><tr><th>Stack</th><th>Status</th><th>Policy</th><th>Last applied</th><th>Head</th><th>Drifted</th><th>Last run</th></tr></thead>
  <tbody id="stacks"></tbody>
</table>
<script>
  const tokenInput = document.getElementById('token');
  tokenInput.value = sessionStorage.getItem('capstan-token') || '';
  document.getElementById('login').addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem('capstan-token', tokenInput.value.trim());
    refresh();
  });
  const text = (v) => document.createTextNode(v == null ? '' : String(v));
  const cell = (v, cls) => { const td = document.createElement('td'); if (cls) td.className = cls; td.appendChild(text(v)); return td; };
  const short = (c) => (c ? c.slice(0, 12) : '');
  async function refresh() {
    const token = sessionStorage.getItem('capstan-token');
    const err = document.getElementById('error');
    if (!token) { err.textContent = 'Enter an API token (make one on the server with: ${MAKE_A_TOKEN}).'; return; }
    try {
      const res = await fetch('/api/stacks', { headers: { authorization: 'Bearer ' + token } });
      if (!res.ok) throw new Error(res.status + ' ' + ((await res.json()).error || res.statusText));
      const stacks = await res.json();
      const body = document.getElementById('stacks');
      body.replaceChildren(...stacks.map((s) => {
        const tr = document.createElement('tr');
        tr.append(cell(s.name), cell(s.branchMovedBackwards ? s.status + ': ' + s.branchMovedBackwards.message : s.status, s.status), cell(s.policy), cell(short(s.lastAppliedCommit)), cell(short(s.headCommit)), cell(s.drifted),
          cell(s.lastRun ? '#' + s.lastRun.id + ' ' + s.lastRun.kind + ' ' + s.lastRun.status : ''));
        return tr;
      }));
      err.textContent = '';
    } catch (e) {
      err.textContent = String(e.message || e);
    }
  }
  refresh();
  setInterval(refresh, 5000);
</script>
</body>
</html>
`;
