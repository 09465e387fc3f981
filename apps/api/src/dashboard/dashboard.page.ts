/**
 * The dashboard's markup and stylesheet. They are TypeScript string constants
 * rather than files beside the code so that `tsc` carries them into dist/ and
 * the image (which copies only compiled output) without a copy step.
 *
 * The markup holds no data and no inline script or style: the page's CSP
 * forbids both. Every dynamic value is filled in by the script with
 * textContent into the elements marked `data-field` or with an id.
 */

export interface AssetVersions {
  js: string;
  css: string;
}

export function dashboardHtml(v: AssetVersions): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>NEXO ROUTE · Dashboard</title>
<link rel="icon" href="/dashboard/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/dashboard/app.css?v=${v.css}">
<script src="/dashboard/app.js?v=${v.js}" defer></script>
</head>
<body data-state="loading">
<header class="top">
  <div class="brand"><img src="/dashboard/favicon.svg" alt="" width="22" height="22">NEXO ROUTE <span class="muted">dashboard</span></div>
  <div class="session" id="session" hidden>
    <span class="live" id="live" data-live="connecting"><span class="dot"></span><span id="live-text">connecting</span></span>
    <button type="button" id="sign-out" class="ghost">Sign out</button>
  </div>
</header>
<noscript><p class="panel">The dashboard needs JavaScript.</p></noscript>
<main>
  <section id="sign-in" class="panel sign-in" hidden>
    <h1>Sign in</h1>
    <p class="muted">Paste an API key. It stays in this browser tab only and is forgotten when the tab closes.</p>
    <form id="sign-in-form" method="post" action="/dashboard" autocomplete="off" novalidate>
      <label for="api-key">API key</label>
      <input id="api-key" name="api-key" type="password" required spellcheck="false" autocapitalize="off" autocomplete="off" placeholder="nxo_live_…">
      <button type="submit" id="sign-in-button">Sign in</button>
      <p class="error" id="sign-in-error" role="alert"></p>
    </form>
  </section>

  <div id="dashboard" hidden>
    <section class="cards">
      <article class="card"><h2>Balance</h2><p class="figure" data-field="balance">—</p><p class="muted">USD · prepaid in USDT/USDC</p></article>
      <article class="card"><h2>Test credits</h2><p class="figure" data-field="test_credits">—</p><p class="muted">free OTPs left</p></article>
      <article class="card"><h2>Pending</h2><p class="figure" data-field="pending">—</p><p class="muted">charged for OTPs in flight</p></article>
    </section>

    <section class="panel" id="delivery">
      <div class="panel-head">
        <h2>Delivery rate · <span data-field="month">this month</span></h2>
        <span class="badge" id="rate-badge" data-state="none">no settled OTPs yet</span>
      </div>
      <div class="rate-row">
        <div class="rate">
          <span class="big" data-field="delivery_rate">—</span>
          <span class="muted">of settled OTPs delivered · target <span data-field="target">90%</span></span>
        </div>
        <dl class="figures">
          <div><dt>p50 delivery</dt><dd data-field="p50">—</dd></div>
          <div><dt>p95 delivery</dt><dd data-field="p95">—</dd></div>
          <div><dt>sent</dt><dd data-field="sent">—</dd></div>
          <div><dt>delivered</dt><dd data-field="delivered">—</dd></div>
          <div><dt>refunded</dt><dd data-field="refunded">—</dd></div>
          <div><dt>in flight</dt><dd data-field="in_flight">—</dd></div>
        </dl>
      </div>
      <h3>By carrier <span class="legend"><span class="tick"></span>target</span></h3>
      <div class="bars" id="carrier-bars"></div>
    </section>

    <section class="panel">
      <div class="panel-head"><h2>Recent OTPs</h2><span class="muted">newest 20 · live</span></div>
      <div class="scroll">
        <table class="otps">
          <thead><tr><th>Status</th><th>Sent</th><th>Phone</th><th>Carrier</th><th>Channel</th><th>Outcome</th><th>Id</th></tr></thead>
          <tbody id="otp-rows"></tbody>
        </table>
      </div>
      <p class="muted empty" id="otp-empty">No OTPs yet. Send one with <code>POST /api/v1/send-otp</code> and it appears here within a second.</p>
    </section>

    <div class="two">
      <section class="panel deposit">
        <div class="panel-head">
          <h2>Deposit address</h2>
          <label class="chain">Chain
            <select id="chain">
              <option value="ethereum">Ethereum</option>
              <option value="bsc">BNB Smart Chain</option>
              <option value="polygon">Polygon</option>
              <option value="arbitrum">Arbitrum One</option>
              <option value="base">Base</option>
            </select>
          </label>
        </div>
        <div class="address-box" id="address-box" hidden>
          <img id="qr" alt="QR code of the deposit address" width="176" height="176">
          <div>
            <code id="address" class="address"></code>
            <button type="button" id="copy-address" class="ghost">Copy</button>
            <p class="muted" id="address-tokens"></p>
          </div>
        </div>
        <p class="muted" id="address-note">Loading…</p>
      </section>

      <section class="panel">
        <h2>Deposits</h2>
        <div class="scroll">
          <table class="deposits" id="deposits-table" hidden>
            <thead><tr><th>Credited</th><th>Chain</th><th>Token</th><th class="num">Amount</th><th>Status</th><th>Transaction</th></tr></thead>
            <tbody id="deposit-rows"></tbody>
          </table>
        </div>
        <p class="muted empty" id="deposits-empty">No deposits yet.</p>
      </section>
    </div>
  </div>
</main>
</body>
</html>
`;
}

export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#2446c9"/><path d="M9 23V9h3l8 9.5V9h3v14h-3l-8-9.5V23z" fill="#fff"/></svg>
`;

export const DASHBOARD_CSS = `
:root {
  --bg: #f5f6f8; --panel: #fff; --line: #e2e5ea; --text: #18202d; --muted: #646f81;
  --accent: #2446c9; --ok: #138a4b; --ok-bg: #e3f5ea; --low: #c8321f; --low-bg: #fde8e5;
  --flight: #a15c00; --flight-bg: #fff1d6; --track: #edf0f4;
  color-scheme: light;
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
html { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; color: var(--text); background: var(--bg); }
body { margin: 0; }
h1, h2, h3 { margin: 0; font-weight: 600; }
h1 { font-size: 1.4rem; }
h2 { font-size: 1rem; }
h3 { font-size: .85rem; color: var(--muted); margin: 1.1rem 0 .5rem; text-transform: uppercase; letter-spacing: .04em; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .88em; }
.muted { color: var(--muted); }
button { font: inherit; cursor: pointer; border-radius: 7px; border: 1px solid var(--accent); background: var(--accent); color: #fff; padding: .45rem 1rem; }
button:disabled { opacity: .6; cursor: progress; }
button.ghost { background: transparent; color: var(--accent); border-color: var(--line); padding: .3rem .75rem; }
button.ghost:hover { border-color: var(--accent); }

.top { display: flex; align-items: center; justify-content: space-between; padding: .8rem 1.5rem; background: var(--panel); border-bottom: 1px solid var(--line); }
.brand { display: flex; align-items: center; gap: .55rem; font-weight: 700; letter-spacing: .03em; }
.brand .muted { font-weight: 400; letter-spacing: 0; }
.session { display: flex; align-items: center; gap: 1rem; }
.live { display: inline-flex; align-items: center; gap: .4rem; font-size: .85rem; color: var(--muted); }
.live .dot { width: .55rem; height: .55rem; border-radius: 50%; background: #b0b7c3; }
.live[data-live="live"] .dot { background: #1fb463; box-shadow: 0 0 0 3px #d6f3e2; }
.live[data-live="offline"] .dot { background: var(--low); }

main { max-width: 1180px; margin: 0 auto; padding: 1.25rem 1.5rem 2.5rem; display: grid; gap: 1rem; }
#dashboard { display: grid; gap: 1rem; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 1.1rem 1.25rem; }
.panel-head { display: flex; align-items: center; justify-content: space-between; gap: 1rem; margin-bottom: .75rem; flex-wrap: wrap; }
.panel > h2 { margin-bottom: .75rem; }

.sign-in { max-width: 440px; margin: 3rem auto; display: grid; gap: .6rem; }
.sign-in form { display: grid; gap: .5rem; margin-top: .5rem; }
.sign-in label { font-weight: 600; font-size: .9rem; }
.sign-in input { font: inherit; padding: .55rem .7rem; border: 1px solid var(--line); border-radius: 7px; }
.sign-in input:focus { outline: 2px solid var(--accent); outline-offset: -1px; }
.error { color: var(--low); min-height: 1.3em; margin: 0; }

.cards { display: grid; grid-template-columns: repeat(3, minmax(0, 1fr)); gap: 1rem; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 1rem 1.25rem; }
.card h2 { font-size: .8rem; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); }
.card .figure { font-size: 1.9rem; font-weight: 650; margin: .2rem 0 0; font-variant-numeric: tabular-nums; }
.card .muted { margin: 0; font-size: .85rem; }

.badge { display: inline-block; padding: .12rem .55rem; border-radius: 999px; font-size: .8rem; font-weight: 600; background: var(--track); color: var(--muted); white-space: nowrap; }
.badge[data-state="ok"], .badge[data-status="delivered"], .badge[data-status="credited"] { background: var(--ok-bg); color: var(--ok); }
.badge[data-state="low"], .badge[data-status="refunded"], .badge[data-status="reversed"] { background: var(--low-bg); color: var(--low); }
.badge[data-status="queued"], .badge[data-status="routed"] { background: var(--flight-bg); color: var(--flight); }

.rate-row { display: flex; gap: 2rem; align-items: flex-end; flex-wrap: wrap; }
.rate { display: grid; }
.rate .big { font-size: 2.6rem; font-weight: 700; line-height: 1.1; font-variant-numeric: tabular-nums; }
.rate .big[data-state="ok"] { color: var(--ok); }
.rate .big[data-state="low"] { color: var(--low); }
.figures { display: grid; grid-template-columns: repeat(6, auto); gap: .25rem 1.6rem; margin: 0; }
.figures div { display: grid; }
.figures dt { font-size: .78rem; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.figures dd { margin: 0; font-size: 1.15rem; font-weight: 600; font-variant-numeric: tabular-nums; }

.legend { float: right; text-transform: none; letter-spacing: 0; font-weight: 400; display: inline-flex; align-items: center; gap: .35rem; }
.legend .tick { display: inline-block; width: 2px; height: .9rem; background: var(--text); }
.bars { display: grid; gap: .55rem; }
.bar { display: grid; grid-template-columns: 8.5rem minmax(0, 1fr) 4.2rem 14rem; align-items: center; gap: .9rem; }
.bar-label { font-weight: 600; }
.track { position: relative; height: .8rem; background: var(--track); border-radius: 999px; }
.fill { height: 100%; border-radius: 999px; background: #b0b7c3; transition: width .3s ease; }
.bar.ok .fill { background: var(--ok); }
.bar.low .fill { background: var(--low); }
.target { position: absolute; top: -.25rem; bottom: -.25rem; width: 2px; margin-left: -1px; background: var(--text); }
.bar-value { text-align: right; font-weight: 600; font-variant-numeric: tabular-nums; }
.bar.low .bar-value { color: var(--low); }
.bar.none .bar-value { color: var(--muted); font-weight: 400; }
.bar-detail { font-size: .85rem; }

.scroll { overflow-x: auto; }
table { width: 100%; border-collapse: collapse; font-size: .9rem; }
th { text-align: left; font-weight: 600; font-size: .78rem; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; padding: .4rem .6rem; border-bottom: 1px solid var(--line); }
td { padding: .5rem .6rem; border-bottom: 1px solid var(--line); white-space: nowrap; font-variant-numeric: tabular-nums; }
tbody tr:last-child td { border-bottom: 0; }
td.num, th.num { text-align: right; }
td.id { color: var(--muted); }
tr.fresh td { animation: flash 1.2s ease-out; }
@keyframes flash { from { background: #eef2ff; } to { background: transparent; } }
.empty { margin: .5rem 0 0; }

.two { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1.4fr); gap: 1rem; }
.chain { font-size: .85rem; color: var(--muted); display: inline-flex; gap: .5rem; align-items: center; }
.chain select { font: inherit; padding: .25rem .4rem; border-radius: 6px; border: 1px solid var(--line); background: #fff; }
.address-box { display: flex; gap: 1.1rem; align-items: center; }
.address-box img { border: 1px solid var(--line); border-radius: 8px; padding: 4px; background: #fff; flex: none; }
.address { display: block; word-break: break-all; font-size: .85rem; margin-bottom: .5rem; }

@media (max-width: 900px) {
  .cards, .two { grid-template-columns: minmax(0, 1fr); }
  .bar { grid-template-columns: 6.5rem minmax(0, 1fr) 3.8rem; }
  .bar-detail { display: none; }
  .figures { grid-template-columns: repeat(3, auto); }
}
`;
