/**
 * After OTPs settle, over real HTTP with the embedded pipeline: an
 * Idempotency-Key replay still answers the first response, stats and the
 * ledger (JSON and CSV) agree with each other and with the balance, and a
 * replaced webhook configuration signs with its new secret only.
 *
 * The carrier simulator (real clock, tens of milliseconds) delivers every
 * voice call and fails every Mobifone SMS, so each OTP's fate is known from
 * its carrier. Signup grants no test credits here: every send is paid from a
 * deposit, credited through the command path as the chain listener does (no
 * chain runs in this test), so every charge and refund is a ledger line.
 */
import { accountDecider, accountStream } from '#domain';
import { verifyWebhook } from '#worker';
import { until } from '#testing';
import { webhookSink } from '../../worker/test/pipeline.harness.js';
import { freshPhone, get, post, signup, startServer, type TestServer } from './harness.js';

const fast = { minMs: 20, maxMs: 60 };
const SIMULATOR = { failureRate: 0, lostReceiptRate: 0, duplicateReceiptRate: 0, latency: { voice: fast, sms: fast, byCarrier: { mobifone: { sms: { ...fast, failureRate: 1 } } } } };
const CARRIERS = { providers: [{ kind: 'simulator', name: 'simulator', simulator: SIMULATOR }] };

let server: TestServer;
let depositSeq = 0;

beforeAll(async () => {
  server = await startServer({ NEXO_CARRIERS: JSON.stringify(CARRIERS), NEXO_TEST_CREDITS: '0' });
});
afterAll(async () => server.stop());

/** A funded account: `micros` credited by a (made-up) USDT transfer on chain 1. */
async function fundedAccount(micros: bigint): Promise<{ account_id: string; api_key: string }> {
  const account = await signup(server.base);
  depositSeq += 1;
  const hex = (n: number) => `0x${n.toString(16).padStart(64, '0')}`;
  await server.running.core.runner.handle(accountStream(account.account_id), accountDecider, {
    type: 'CreditDeposit',
    chainId: 1,
    token: '0xdac17f958d2ee523a2206206994597c13d831ec7',
    txHash: hex(process.pid * 1000 + depositSeq),
    logIndex: 0,
    blockNumber: depositSeq,
    blockHash: hex(depositSeq),
    amount: String(micros),
    at: new Date().toISOString(),
  });
  return account;
}

async function sendOk(key: string, phone: string, headers: Record<string, string> = {}): Promise<{ id: string; text: string }> {
  const res = await post(server.base, '/api/v1/send-otp', key, { phone, code: '246813' }, headers);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`send-otp refused: ${res.status} ${text}`);
  return { id: JSON.parse(text).id, text };
}

const settled = (key: string, id: string) =>
  until(`OTP ${id} settled`, async () => {
    const v = await (await get(server.base, `/api/v1/otp/${id}`, key)).json();
    return v.status === 'delivered' || v.status === 'refunded' ? v : undefined;
  }, { timeoutMs: 10_000, everyMs: 25 });

async function chargeCount(accountId: string): Promise<number> {
  let n = 0;
  for await (const e of server.running.core.store.readStream(`account-${accountId}`)) if (e.type === 'Charged') n++;
  return n;
}

describe('I7: an Idempotency-Key replay after the OTP settled', () => {
  it('answers the first response byte for byte, delivered or refunded, and charges nothing more', async () => {
    const { account_id, api_key } = await fundedAccount(1_000_000n);
    const sends = [
      { phone: freshPhone('098'), key: 'settled-delivered', status: 'delivered' },
      { phone: freshPhone('090'), key: 'settled-refunded', status: 'refunded' },
    ];
    const firsts = await Promise.all(sends.map((s) => sendOk(api_key, s.phone, { 'Idempotency-Key': s.key })));
    for (const [i, s] of sends.entries()) expect((await settled(api_key, firsts[i].id)).status).toBe(s.status);
    expect(JSON.parse(firsts[0].text)).toMatchObject({ channel: 'voice', status: 'queued', funded_by: 'balance', price: '0.022000' });
    const before = await (await get(server.base, '/api/v1/balance', api_key)).json();
    expect(before).toMatchObject({ balance: '0.978000', pending: '0.000000' });

    // Well inside each phone's 30 s window: a replay, not a new send (which would be rate_limited).
    for (const [i, s] of sends.entries()) {
      const again = await post(server.base, '/api/v1/send-otp', api_key, { phone: s.phone, code: '246813' }, { 'Idempotency-Key': s.key });
      expect(again.status).toBe(200);
      expect(await again.text()).toBe(firsts[i].text);
      const conflict = await post(server.base, '/api/v1/send-otp', api_key, { phone: s.phone, code: '999999' }, { 'Idempotency-Key': s.key });
      expect(conflict.status).toBe(409);
      expect(await conflict.json()).toMatchObject({ ok: false, error: 'idempotency_conflict', message: expect.any(String) });
    }
    expect(await chargeCount(account_id)).toBe(2);
    expect(await (await get(server.base, '/api/v1/balance', api_key)).json()).toEqual(before);
  });
});

describe('stats and ledger after delivered and refunded OTPs', () => {
  const month = new Date().toISOString().slice(0, 7);
  let key: string;
  let delivered: string[];
  let refunded: string[];

  beforeAll(async () => {
    ({ api_key: key } = await fundedAccount(500_000n));
    // Voice to Viettel, Vinaphone, Vietnamobile (answered); SMS to Mobifone (fails) twice.
    delivered = await Promise.all(['098', '091', '052'].map(async (p) => (await sendOk(key, freshPhone(p))).id));
    refunded = await Promise.all(['090', '093'].map(async (p) => (await sendOk(key, freshPhone(p))).id));
    for (const id of [...delivered, ...refunded]) await settled(key, id);
  });

  it('GET /stats counts them per carrier and channel, with the rate over settled OTPs', async () => {
    const stats = await (await get(server.base, `/api/v1/stats?month=${month}`, key)).json();
    const fig = (sent: number, d: number, r: number) =>
      expect.objectContaining({ sent, delivered: d, refunded: r, in_flight: sent - d - r, delivery_rate: d / (d + r), target: 0.9 });
    expect(stats).toMatchObject({ ok: true, month, sent: 5, delivered: 3, refunded: 2, in_flight: 0, delivery_rate: 0.6, target: 0.9 });
    expect(stats.p50_delivery_seconds).toEqual(expect.any(Number));
    expect(stats.p95_delivery_seconds).toBeGreaterThanOrEqual(stats.p50_delivery_seconds);
    expect(stats.by_carrier).toEqual({ mobifone: fig(2, 0, 2), viettel: fig(1, 1, 0), vietnamobile: fig(1, 1, 0), vinaphone: fig(1, 1, 0) });
    expect(stats.by_channel).toEqual({ sms: fig(2, 0, 2), voice: fig(3, 3, 0) });
    const pub = await (await get(server.base, `/api/v1/stats/public?month=${month}`)).json();
    expect(pub.ok).toBe(true);
    expect(pub.sent).toBeGreaterThanOrEqual(5);
    expect(pub.sent).toBe(pub.delivered + pub.refunded + pub.in_flight);
    const other = await (await get(server.base, '/api/v1/stats?month=2001-01', key)).json();
    expect(other).toMatchObject({ ok: true, month: '2001-01', sent: 0, delivered: 0, refunded: 0, in_flight: 0, delivery_rate: null });
  });

  it('the JSON statement adds up to the balance: deposit, five charges, two refunds of exactly the refunded OTPs', async () => {
    const balance = await (await get(server.base, '/api/v1/balance', key)).json();
    expect(balance).toEqual({ ok: true, balance: '0.434000', currency: 'USD', test_credits: 0, pending: '0.000000' });
    const { ok, month: m, lines } = await (await get(server.base, `/api/v1/ledger?month=${month}`, key)).json();
    expect([ok, m]).toEqual([true, month]);
    const micros = (usd: string) => BigInt(usd.replace('.', ''));
    let running = 0n;
    for (const l of lines) {
      expect(l).toEqual({ at: expect.any(String), type: expect.any(String), amount: expect.stringMatching(/^-?\d+\.\d{6}$/), balance_after: expect.stringMatching(/^-?\d+\.\d{6}$/), ref: expect.any(String) });
      running += micros(l.amount);
      expect(micros(l.balance_after)).toBe(running);
    }
    expect(lines.at(-1).balance_after).toBe(balance.balance);
    const of = (type: string) => lines.filter((l: { type: string }) => l.type === type);
    expect(of('deposit').map((l: { amount: string }) => l.amount)).toEqual(['0.500000']);
    expect(of('charge').map((l: { amount: string }) => l.amount)).toEqual(Array(5).fill('-0.022000'));
    expect(of('charge').map((l: { ref: string }) => l.ref).sort()).toEqual([...delivered, ...refunded].sort());
    expect(of('refund').map((l: { amount: string }) => l.amount)).toEqual(['0.022000', '0.022000']);
    expect(of('refund').map((l: { ref: string }) => l.ref).sort()).toEqual([...refunded].sort());
    expect(lines).toHaveLength(8);
    expect(await (await get(server.base, '/api/v1/ledger?month=2001-01', key)).json()).toEqual({ ok: true, month: '2001-01', lines: [] });
  });

  it('the CSV statement is the JSON one, line for line, with a header and one row per line', async () => {
    const { lines } = await (await get(server.base, `/api/v1/ledger?month=${month}`, key)).json();
    const res = await get(server.base, `/api/v1/ledger?month=${month}`, key, { Accept: 'text/csv' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
    const text = await res.text();
    // RFC 4180: every record ends in CRLF.
    expect(text.endsWith('\r\n')).toBe(true);
    const rows = text.slice(0, -2).split('\r\n');
    expect(rows.some((r) => r.includes('\n') || r.includes('\r'))).toBe(false);
    expect(rows[0]).toBe('at,type,amount,balance_after,ref');
    // Refs are ids and `chainId:txHash:logIndex`: nothing to quote, and no cell may start a spreadsheet formula.
    expect(rows.slice(1)).toEqual(lines.map((l: Record<string, string>) => [l.at, l.type, l.amount, l.balance_after, l.ref].join(',')));
    for (const row of rows) expect(row.split(',').every((cell) => !/^[=+@]/.test(cell))).toBe(true);
    const total = rows.slice(1).reduce((sum, r) => sum + BigInt(r.split(',')[2].replace('.', '')), 0n);
    expect(total).toBe(434_000n);
    // A browser-style Accept list that names CSV still gets CSV; plain JSON otherwise.
    const listed = await get(server.base, `/api/v1/ledger?month=${month}`, key, { Accept: 'text/html, text/csv;q=0.9' });
    expect(await listed.text()).toBe(text);
    expect((await get(server.base, `/api/v1/ledger?month=${month}`, key, { Accept: 'application/json' })).headers.get('content-type')).toMatch(/^application\/json/);
  });
});

describe('webhook configuration replaced', () => {
  it('returns a new secret; later events go to the new URL signed with it, and never with the old one', async () => {
    const [oldSink, newSink] = await Promise.all([webhookSink(), webhookSink()]);
    try {
      const { api_key } = await fundedAccount(100_000n);
      const put = async (url: string) => {
        const res = await fetch(`${server.base}/api/v1/webhook`, {
          method: 'PUT',
          headers: { Authorization: `Bearer ${api_key}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ url }),
        });
        expect(res.status).toBe(200);
        return res.json();
      };
      const first = await put(oldSink.url);
      const second = await put(newSink.url);
      expect(second).toEqual({ ok: true, url: newSink.url, secret: expect.stringMatching(/^whsec_/) });
      expect(second.secret).not.toBe(first.secret);

      const { id } = await sendOk(api_key, freshPhone('098'));
      const hooks = await until('routed and delivered webhooks', () => {
        const mine = newSink.hooks.filter((h) => JSON.parse(h.body).id === id);
        return mine.length >= 2 ? mine : undefined;
      }, { timeoutMs: 10_000, everyMs: 25 });
      const now = Math.floor(Date.now() / 1000);
      expect(hooks.map((h) => JSON.parse(h.body).type).sort()).toEqual(['otp.delivered', 'otp.routed']);
      for (const h of hooks) {
        expect(verifyWebhook(second.secret, h.body, h.signature, now)).toBe(true);
        expect(verifyWebhook(first.secret, h.body, h.signature, now)).toBe(false);
      }
      await new Promise((r) => setTimeout(r, 200));
      expect(oldSink.hooks).toEqual([]);
    } finally {
      await Promise.all([oldSink.close(), newSink.close()]);
    }
  });

  it('a bad URL is 400 invalid_request and keeps the configuration (and its secret) as it was', async () => {
    const sink = await webhookSink();
    try {
      const { api_key } = await fundedAccount(100_000n);
      const put = (body: unknown) =>
        fetch(`${server.base}/api/v1/webhook`, {
          method: 'PUT',
          headers: { Authorization: `Bearer ${api_key}`, 'Content-Type': 'application/json' },
          body: JSON.stringify(body),
        });
      const configured = await (await put({ url: sink.url })).json();
      for (const body of [{ url: 'ftp://example.test/h' }, { url: 'not a url' }, {}, { url: sink.url, secret: 'mine' }]) {
        const res = await put(body);
        expect(res.status).toBe(400);
        expect(await res.json()).toMatchObject({ ok: false, error: 'invalid_request', message: expect.any(String) });
      }
      const { id } = await sendOk(api_key, freshPhone('091'));
      const hook = await until('a webhook', () => sink.hooks.find((h) => JSON.parse(h.body).id === id), { timeoutMs: 10_000, everyMs: 25 });
      expect(verifyWebhook(configured.secret, hook.body, hook.signature, Math.floor(Date.now() / 1000))).toBe(true);
    } finally {
      await sink.close();
    }
  });
});
