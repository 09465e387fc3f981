/**
 * The dashboard's browser script, plain JavaScript served as /dashboard/app.js.
 *
 * It is a string here, not a compiled module: the repo's TypeScript targets
 * Node (no DOM library), and adding the DOM library would leak browser
 * globals into server code. Keeping it in a .ts file lets `tsc` carry it into
 * dist/ and the image; the browser test is what checks it. Inside the string:
 * no backticks and no dollar-brace, which would end or interpolate it.
 *
 * Rules it keeps:
 * - The API key lives in sessionStorage (this tab only) and in memory; never
 *   in localStorage, a cookie or a URL. It is sent only as a Bearer header.
 * - Every value from the API reaches the page through textContent, element
 *   attributes or CSSOM, never as markup (the CSP enforces Trusted Types, so
 *   an innerHTML assignment would throw).
 * - Live status by polling: GET /api/v1/otp every second, and balance, stats
 *   and deposits when an OTP changes (or every 10 s for deposits). Polling
 *   needs no second auth scheme for EventSource and recovers by itself after
 *   a restart; one second plus a loopback round trip stays inside the 2 s
 *   promise for a status change to show.
 */
export const DASHBOARD_JS = String.raw`(() => {
  'use strict';

  const KEY_SLOT = 'nexo.dashboard.api-key';
  const POLL_MS = 1000;
  const SUMMARY_EVERY_MS = 10000;
  const KNOWN_CARRIERS = ['viettel', 'vinaphone', 'mobifone', 'vietnamobile'];
  const KEY_FORMAT = /^[A-Za-z0-9_-]{16,200}$/;
  const EVM_ADDRESS = /^0x[0-9a-fA-F]{40}$/;

  const byId = (id) => document.getElementById(id);
  const field = (name) => document.querySelector('[data-field="' + name + '"]');
  const setText = (node, text) => { if (node) node.textContent = text; };

  class Unauthorized extends Error {}

  let apiKey = null;
  // Bumped on every sign-in and sign-out: answers for an older session are dropped.
  let generation = 0;
  let timer = 0;
  let polling = false;
  let otpSignature = null;
  let knownStatus = new Map();
  let lastSummaryAt = 0;

  async function api(path) {
    const res = await fetch(path, {
      headers: { Authorization: 'Bearer ' + apiKey, Accept: 'application/json' },
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
    if (res.status === 401) {
      // Its body is not needed, but left unread it would hold the connection (an answer the browser does not cache is read on demand).
      await res.body?.cancel().catch(() => undefined);
      throw new Unauthorized('unauthorized');
    }
    let body = null;
    try {
      body = await res.json();
    } catch {
      body = null;
    }
    return { status: res.status, body };
  }

  function el(tag, props, children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (name === 'text') node.textContent = value;
      else if (name === 'className') node.className = value;
      else node.setAttribute(name, value);
    }
    if (children) node.append(...children);
    return node;
  }

  // ---- formatting: money stays a decimal string end to end, never a float
  function usd(s) {
    if (typeof s !== 'string' || !/^-?\d+(\.\d+)?$/.test(s)) return '—';
    const negative = s.startsWith('-');
    const [whole, frac = ''] = s.replace('-', '').split('.');
    let cents = frac.replace(/0+$/, '');
    if (cents.length < 2) cents = (cents + '00').slice(0, 2);
    return (negative ? '-$' : '$') + whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',') + '.' + cents;
  }
  const pct = (r) => (typeof r === 'number' ? (r * 100).toFixed(1) + '%' : '—');
  function seconds(s) {
    if (typeof s !== 'number') return '—';
    return (s < 10 ? s.toFixed(1) : String(Math.round(s))) + ' s';
  }
  function clock(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return '—';
    const now = new Date();
    const sameDay = d.toDateString() === now.toDateString();
    return sameDay
      ? d.toLocaleTimeString(undefined, { hour12: false })
      : d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false });
  }
  function monthName(m) {
    const parts = /^(\d{4})-(\d{2})$/.exec(m || '');
    if (!parts) return 'this month';
    const d = new Date(Date.UTC(Number(parts[1]), Number(parts[2]) - 1, 1));
    return d.toLocaleDateString(undefined, { month: 'long', year: 'numeric', timeZone: 'UTC' });
  }
  const title = (s) => (typeof s === 'string' && s ? s[0].toUpperCase() + s.slice(1) : '—');
  const shortHash = (h) => (typeof h === 'string' && h.length > 14 ? h.slice(0, 8) + '…' + h.slice(-6) : String(h || '—'));

  // ---- rendering
  function renderBalance(b) {
    if (!b || b.ok !== true) return;
    setText(field('balance'), usd(b.balance));
    setText(field('test_credits'), String(b.test_credits));
    setText(field('pending'), usd(b.pending));
  }

  function rateState(rate, target) {
    if (typeof rate !== 'number') return 'none';
    return rate >= target ? 'ok' : 'low';
  }

  function bar(name, f, target) {
    const rate = f && typeof f.delivery_rate === 'number' ? f.delivery_rate : null;
    const state = rateState(rate, target);
    const fill = el('div', { className: 'fill' });
    fill.style.width = (rate === null ? 0 : Math.min(1, Math.max(0, rate)) * 100) + '%';
    const mark = el('div', { className: 'target', title: 'target ' + pct(target) });
    mark.style.left = target * 100 + '%';
    const settled = f ? f.delivered + f.refunded : 0;
    let detail = 'no traffic this month';
    if (f) {
      detail = f.delivered + ' of ' + settled + ' delivered';
      if (f.in_flight > 0) detail += ' · ' + f.in_flight + ' in flight';
      if (typeof f.p50_delivery_seconds === 'number') detail += ' · p50 ' + seconds(f.p50_delivery_seconds);
    }
    const label = title(name) + ' delivery rate ' + (rate === null ? 'not available' : pct(rate)) + ', target ' + pct(target);
    return el('div', { className: 'bar ' + state, 'data-carrier': name }, [
      el('span', { className: 'bar-label', text: title(name) }),
      el('div', { className: 'track', role: 'img', 'aria-label': label }, [fill, mark]),
      el('span', { className: 'bar-value', text: rate === null ? '—' : pct(rate) }),
      el('span', { className: 'bar-detail muted', text: detail }),
    ]);
  }

  function renderStats(s) {
    if (!s || s.ok !== true) return;
    const target = typeof s.target === 'number' ? s.target : 0.9;
    const state = rateState(s.delivery_rate, target);
    setText(field('month'), monthName(s.month));
    const big = field('delivery_rate');
    setText(big, pct(s.delivery_rate));
    big.dataset.state = state;
    setText(field('target'), pct(target).replace('.0%', '%'));
    const badge = byId('rate-badge');
    badge.dataset.state = state;
    setText(badge, state === 'ok' ? 'on target' : state === 'low' ? 'below target' : 'no settled OTPs yet');
    setText(field('p50'), seconds(s.p50_delivery_seconds));
    setText(field('p95'), seconds(s.p95_delivery_seconds));
    for (const k of ['sent', 'delivered', 'refunded', 'in_flight']) setText(field(k), String(s[k]));
    const byCarrier = s.by_carrier || {};
    const names = KNOWN_CARRIERS.concat(Object.keys(byCarrier).filter((c) => !KNOWN_CARRIERS.includes(c)));
    byId('carrier-bars').replaceChildren(...names.map((n) => bar(n, byCarrier[n], target)));
  }

  function outcome(o) {
    if (o.status === 'delivered' && o.delivered_at) {
      const ms = Date.parse(o.delivered_at) - Date.parse(o.created_at);
      return 'delivered in ' + seconds(ms / 1000);
    }
    if (o.status === 'refunded') return 'refunded · ' + (o.refund_reason || 'not delivered');
    return o.status === 'routed' ? 'with the carrier' : 'waiting for a route';
  }

  function renderOtps(otps) {
    const rows = otps.map((o) => {
      const before = knownStatus.get(o.id);
      const changed = otpSignature !== null && before !== o.status;
      return el('tr', { 'data-otp-id': o.id, 'data-status': o.status, className: changed ? 'fresh' : '' }, [
        el('td', {}, [el('span', { className: 'badge', 'data-status': o.status, text: o.status })]),
        el('td', { text: clock(o.created_at), title: o.created_at }),
        el('td', { className: 'mono', text: o.phone }),
        el('td', { text: title(o.carrier) }),
        el('td', { text: o.channel }),
        el('td', { text: outcome(o) }),
        el('td', { className: 'mono id', text: o.id }),
      ]);
    });
    knownStatus = new Map(otps.map((o) => [o.id, o.status]));
    byId('otp-rows').replaceChildren(...rows);
    byId('otp-empty').hidden = otps.length > 0;
  }

  function renderDeposits(r) {
    // Until the deposits endpoint exists (404) the account simply has none to show.
    const list = r && r.status === 200 && r.body && Array.isArray(r.body.deposits) ? r.body.deposits : [];
    const rows = list.map((d) =>
      el('tr', {}, [
        el('td', { text: clock(d.credited_at), title: String(d.credited_at) }),
        el('td', { text: title(d.chain) }),
        el('td', { text: String(d.token) }),
        el('td', { className: 'num', text: usd(d.amount) }),
        el('td', {}, [el('span', { className: 'badge', 'data-status': String(d.status), text: String(d.status) })]),
        el('td', { className: 'mono', text: shortHash(d.tx_hash), title: String(d.tx_hash) }),
      ]),
    );
    byId('deposit-rows').replaceChildren(...rows);
    byId('deposits-table').hidden = rows.length === 0;
    byId('deposits-empty').hidden = rows.length > 0;
  }

  /**
   * The chains this instance takes deposits on, as its OpenAPI document lists them: the select then
   * offers exactly those (a dev chain too), in the document's order. Without a list the select keeps
   * its options, and the API's answer says why no address is given.
   */
  const CHAIN_NAMES = { ethereum: 'Ethereum', bsc: 'BNB Smart Chain', polygon: 'Polygon', arbitrum: 'Arbitrum One', base: 'Base', local: 'Local test chain' };
  async function loadChains() {
    try {
      const res = await fetch('/openapi.json', { cache: 'no-store', credentials: 'omit' });
      const doc = await res.json();
      const params = doc.paths['/api/v1/deposit-address'].get.parameters;
      const slugs = params.find((p) => p.name === 'chain').schema.enum;
      if (!Array.isArray(slugs) || slugs.length === 0) return;
      byId('chain').replaceChildren(...slugs.map((slug) => el('option', { value: String(slug), text: CHAIN_NAMES[slug] || String(slug) })));
    } catch {
      // Keep the page's own list.
    }
  }

  async function loadDepositAddress(gen) {
    const select = byId('chain');
    const chain = select.value;
    const chainName = select.options[select.selectedIndex].textContent;
    const note = byId('address-note');
    let r;
    try {
      r = await api('/api/v1/deposit-address?chain=' + encodeURIComponent(chain));
    } catch (e) {
      if (gen !== generation) return;
      if (e instanceof Unauthorized) return signOut('This key is no longer valid. Sign in again.');
      setText(note, 'Could not load the deposit address. Choose the chain again to retry.');
      return;
    }
    if (gen !== generation || chain !== select.value) return;
    const a = r.body;
    if (r.status === 200 && a && a.ok === true && typeof a.address === 'string') {
      setText(byId('address'), a.address);
      const symbols = Array.isArray(a.tokens) ? a.tokens.map((t) => String(t.symbol)) : [];
      const tokens = symbols.length > 1 ? symbols.slice(0, -1).join(', ') + ' or ' + symbols[symbols.length - 1] : symbols.join('');
      let text = 'Send ' + (tokens || 'USDT or USDC') + ' on ' + chainName + ' only.';
      if (typeof a.confirmations === 'number') text += ' Credited after ' + a.confirmations + ' confirmation' + (a.confirmations === 1 ? '' : 's') + '.';
      setText(byId('address-tokens'), text);
      const qr = byId('qr');
      if (EVM_ADDRESS.test(a.address)) {
        qr.src = '/dashboard/qr.svg?address=' + a.address;
        qr.hidden = false;
      } else qr.hidden = true;
      byId('address-box').hidden = false;
      note.hidden = true;
      return;
    }
    byId('address-box').hidden = true;
    note.hidden = false;
    setText(note, r.status === 404 ? 'No deposit address is available for ' + chainName + ' yet.' : (a && a.message) || 'Could not load the deposit address.');
  }

  // ---- live updates
  function setLive(ok) {
    const live = byId('live');
    live.dataset.live = ok ? 'live' : 'offline';
    setText(byId('live-text'), ok ? 'live · updated ' + new Date().toLocaleTimeString(undefined, { hour12: false }) : 'reconnecting…');
  }

  async function refreshSummary(gen) {
    const [balance, stats, deposits] = await Promise.all([api('/api/v1/balance'), api('/api/v1/stats'), api('/api/v1/deposits')]);
    if (gen !== generation) return;
    renderBalance(balance.body);
    renderStats(stats.body);
    renderDeposits(deposits);
    lastSummaryAt = Date.now();
  }

  async function pollOnce(gen) {
    const r = await api('/api/v1/otp?limit=20');
    if (gen !== generation) return;
    if (r.status !== 200 || !r.body || !Array.isArray(r.body.otps)) throw new Error('OTP list answered ' + r.status);
    const signature = r.body.otps.map((o) => o.id + ':' + o.status).join(',');
    const changed = signature !== otpSignature;
    // The list first: a status change shows before the slower summary reads.
    if (changed) renderOtps(r.body.otps);
    otpSignature = signature;
    if (changed || Date.now() - lastSummaryAt >= SUMMARY_EVERY_MS) await refreshSummary(gen);
  }

  async function poll(gen) {
    if (polling || gen !== generation) return;
    polling = true;
    let ok = true;
    try {
      await pollOnce(gen);
    } catch (e) {
      if (e instanceof Unauthorized && gen === generation) {
        polling = false;
        signOut('This key is no longer valid. Sign in again.');
        return;
      }
      ok = false;
    }
    polling = false;
    if (gen !== generation) return;
    setLive(ok);
    schedule(gen);
  }

  function schedule(gen) {
    clearTimeout(timer);
    // A hidden tab stops polling; becoming visible polls at once.
    if (gen === generation && !document.hidden) timer = setTimeout(() => poll(gen), POLL_MS);
  }

  document.addEventListener('visibilitychange', () => {
    if (apiKey !== null && !document.hidden) {
      clearTimeout(timer);
      poll(generation);
    }
  });

  // ---- session
  function show(state) {
    document.body.dataset.state = state;
    byId('sign-in').hidden = state !== 'signed-out';
    byId('dashboard').hidden = state !== 'ready';
    byId('session').hidden = state !== 'ready';
  }

  function signOut(message) {
    generation += 1;
    clearTimeout(timer);
    apiKey = null;
    otpSignature = null;
    knownStatus = new Map();
    lastSummaryAt = 0;
    try {
      sessionStorage.removeItem(KEY_SLOT);
    } catch {
      // Storage may be disabled; the key then lived in memory only.
    }
    // Nothing of the previous account stays in the page.
    byId('otp-rows').replaceChildren();
    byId('deposit-rows').replaceChildren();
    byId('carrier-bars').replaceChildren();
    byId('address-box').hidden = true;
    byId('qr').removeAttribute('src');
    setText(byId('address'), '');
    setText(byId('address-note'), 'Loading…');
    byId('address-note').hidden = false;
    setText(byId('sign-in-error'), message || '');
    show('signed-out');
    byId('api-key').focus();
  }

  async function start(key) {
    const gen = ++generation;
    apiKey = key;
    try {
      const [otps] = await Promise.all([api('/api/v1/otp?limit=20'), refreshSummary(gen)]);
      if (gen !== generation) return;
      if (otps.status !== 200 || !otps.body || !Array.isArray(otps.body.otps)) throw new Error('OTP list answered ' + otps.status);
      renderOtps(otps.body.otps);
      otpSignature = otps.body.otps.map((o) => o.id + ':' + o.status).join(',');
    } catch (e) {
      if (gen !== generation) return;
      if (e instanceof Unauthorized) return signOut('Unknown or revoked API key.');
      apiKey = null;
      setText(byId('sign-in-error'), 'Could not reach the API. Try again in a moment.');
      show('signed-out');
      return;
    }
    try {
      sessionStorage.setItem(KEY_SLOT, key);
    } catch {
      // Without storage the key lives in memory until the page is closed or reloaded.
    }
    byId('api-key').value = '';
    setText(byId('sign-in-error'), '');
    show('ready');
    setLive(true);
    performance.mark('dashboard-ready');
    loadChains().then(() => loadDepositAddress(gen));
    schedule(gen);
  }

  byId('sign-in-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = byId('api-key').value.trim();
    if (!KEY_FORMAT.test(key)) {
      setText(byId('sign-in-error'), 'That does not look like an API key.');
      return;
    }
    const button = byId('sign-in-button');
    button.disabled = true;
    try {
      await start(key);
    } finally {
      button.disabled = false;
    }
  });
  byId('sign-out').addEventListener('click', () => signOut(''));
  byId('chain').addEventListener('change', () => loadDepositAddress(generation));
  byId('copy-address').addEventListener('click', async () => {
    const button = byId('copy-address');
    try {
      await navigator.clipboard.writeText(byId('address').textContent);
      setText(button, 'Copied');
    } catch {
      setText(button, 'Select and copy');
    }
    setTimeout(() => setText(button, 'Copy'), 1500);
  });

  let stored = null;
  try {
    stored = sessionStorage.getItem(KEY_SLOT);
  } catch {
    stored = null;
  }
  if (stored && KEY_FORMAT.test(stored)) start(stored);
  else show('signed-out');
})();
`;
