/**
 * `POST /api/v1/carriers/:provider/receipts` on a real NEXO ROUTE (embedded
 * default, ephemeral loopback port), beyond what carrier-faces covers (a bad
 * signature is 401, a good one is taken): which secret, how fresh, which
 * bodies, and a receipt for a message id nobody knows yet, which must be kept
 * and matched once an OTP is routed under that id. The upstream is a scripted
 * aggregator on 127.0.0.1 (node:http) whose message ids the test chooses.
 */
import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { until } from '#testing';
import { get, post, signup, freshPhone, startServer, type TestServer } from './harness.js';

const SECRET = 'aggr-shared-secret-0123456789abcdef';
const OTHER_SECRET = 'other-shared-secret-0123456789abcd';

const sign = (secret: string, body: string, t = Math.floor(Date.now() / 1000)) =>
  `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;

/** Answers every submit with the next id from `ids` (or a fresh one). */
async function aggregator() {
  const ids: string[] = [];
  let n = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const id = ids.shift() ?? `gen-${process.pid}-${++n}`;
      res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ message_id: id, status: 'accepted' }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ids,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

describe('receipt callbacks', () => {
  let server: TestServer;
  let upstream: Awaited<ReturnType<typeof aggregator>>;
  const callback = (provider: string, body: string, signature: string | undefined, contentType = 'application/json') =>
    fetch(`${server.base}/api/v1/carriers/${provider}/receipts`, {
      method: 'POST',
      headers: { 'content-type': contentType, ...(signature ? { 'x-signature': signature } : {}) },
      body,
    });
  /** Receipts published for the pipeline under this message id (the bus keys them by it). */
  const onBus = (messageId: string) =>
    server.running.core.readDb.prepare<[string], { n: number }>('SELECT count(*) AS n FROM bus_nexo_otp_receipts WHERE key = ?').get(messageId)!.n;
  const kept = (messageId: string) =>
    server.running.core.readDb.prepare<[string], { n: number }>('SELECT count(*) AS n FROM unmatched_receipts WHERE provider_message_id = ?').get(messageId)!.n;
  const receipt = (message_id: string, status = 'DELIVRD', extra: object = {}) => JSON.stringify({ message_id, status, ...extra });
  const mid = (what: string) => `${what}-${process.pid}-${Date.now()}`;

  beforeAll(async () => {
    upstream = await aggregator();
    const routes = { sms: ['aggr'] };
    server = await startServer({
      NEXO_CARRIERS: JSON.stringify({
        providers: [
          { kind: 'http', name: 'aggr', baseUrl: upstream.url, secret: SECRET, timeoutMs: 2_000 },
          { kind: 'http', name: 'other', baseUrl: upstream.url, secret: OTHER_SECRET, timeoutMs: 2_000 },
          { kind: 'simulator', name: 'sandbox', simulator: { timeScale: 0.001, lostReceiptRate: 1 } },
        ],
        routes: { viettel: routes, vinaphone: routes, mobifone: routes, vietnamobile: routes },
      }),
    });
  });
  afterAll(async () => {
    await server?.stop();
    await upstream?.close();
  });

  it('a provider that is not configured, or has no HTTP secret, is 401 like a bad signature (which providers exist is not told) and nothing reaches the bus', async () => {
    for (const provider of ['ghost', 'sandbox']) {
      const id = mid(`nf-${provider}`);
      const body = receipt(id);
      const res = await callback(provider, body, sign(SECRET, body));
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ ok: false, error: 'unauthorized', message: 'bad or missing receipt signature' });
      // The challenge is the signature, not an API key; the same for every provider name.
      expect(res.headers.get('www-authenticate')).toBe('HMAC-SHA256 header="x-signature"');
      expect(onBus(id)).toBe(0);
    }
  });

  it('each provider’s callbacks are checked with its own secret', async () => {
    const id = mid('other');
    const body = receipt(id, 'UNDELIV');
    const signed = sign(OTHER_SECRET, body);
    const wrong = await callback('aggr', body, signed);
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toBe('HMAC-SHA256 header="x-signature"');
    expect(await wrong.json()).toMatchObject({ ok: false, error: 'unauthorized' });
    expect(onBus(id)).toBe(0);
    const right = await callback('other', body, signed);
    expect(right.status).toBe(200);
    expect(await right.json()).toEqual({ ok: true });
    expect(onBus(id)).toBe(1);
  });

  it('a callback receipt counts in nexo_carrier_receipts_total, as adapter receipts do (NexoProviderNoReceipts watches it); a refused one does not', async () => {
    const counted = async (status: string) => {
      const text = await (await fetch(`${server.base}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith('nexo_carrier_receipts_total{') && l.includes('provider="other"') && l.includes(`status="${status}"`));
      return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
    };
    const [delivered, undelivered] = [await counted('delivered'), await counted('undelivered')];
    const ok = receipt(mid('count-ok'), 'DELIVRD');
    expect((await callback('other', ok, sign(OTHER_SECRET, ok))).status).toBe(200);
    const bad = receipt(mid('count-bad'), 'UNDELIV');
    expect((await callback('other', bad, sign(SECRET, bad))).status).toBe(401);
    expect(await counted('delivered')).toBe(delivered + 1);
    expect(await counted('undelivered')).toBe(undelivered);
  });

  it('a correctly signed callback outside the 5-minute tolerance (a replay, or a skewed clock) is 401 and records nothing', async () => {
    const id = mid('stale');
    const body = receipt(id);
    const now = Math.floor(Date.now() / 1000);
    // 310 s, not 301: the server's clock moves on while the request travels.
    for (const t of [now - 310, now + 310]) {
      const res = await callback('aggr', body, sign(SECRET, body, t));
      expect(res.status).toBe(401);
    }
    expect(onBus(id)).toBe(0);
    // The same bytes signed now are taken: the timestamp alone was refused.
    expect((await callback('aggr', body, sign(SECRET, body, now))).status).toBe(200);
    expect(onBus(id)).toBe(1);
  });

  it('a signed body that is not a receipt is 400 and records nothing', async () => {
    const id = mid('bad');
    for (const body of [JSON.stringify({ status: 'DELIVRD', reference: `${id}:1` }), receipt(id, ''), '{"message_id":'] as const) {
      const res = await callback('aggr', body, sign(SECRET, body));
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ ok: false, error: 'invalid_request' });
    }
    expect(onBus(id)).toBe(0);
  });

  it('an intermediate status is acknowledged with 200 and records nothing; unknown fields are ignored', async () => {
    const id = mid('enroute');
    const body = receipt(id, 'ENROUTE', { vendor_field: { nested: true } });
    const res = await callback('aggr', body, sign(SECRET, body), 'application/json; charset=utf-8');
    expect(res.status).toBe(200);
    expect(onBus(id)).toBe(0);
  });

  it('a receipt for a message id nobody knows yet is answered 200, kept, and recorded once an OTP is routed under that id', async () => {
    const id = mid('late');
    const body = receipt(id, 'DELIVRD');
    const res = await callback('aggr', body, sign(SECRET, body));
    expect(res.status).toBe(200);
    await until('the receipt kept for a late match', () => (kept(id) === 1 ? true : undefined), { timeoutMs: 10_000, everyMs: 25 });

    upstream.ids.push(id);
    const { api_key } = await signup(server.base);
    const sent = (await (await post(server.base, '/api/v1/send-otp', api_key, { phone: freshPhone('091'), code: '7351' })).json()) as { ok: boolean; id: string };
    expect(sent.ok).toBe(true);
    const view = await until('the OTP delivered by the early receipt', async () => {
      const v = (await (await get(server.base, `/api/v1/otp/${sent.id}`, api_key)).json()) as { status: string };
      return v.status === 'delivered' ? v : undefined;
    }, { timeoutMs: 10_000, everyMs: 25 });
    expect(view.status).toBe('delivered');
    const receipts: { providerMessageId: string; status: string }[] = [];
    for await (const e of server.running.core.store.readStream(`otp-${sent.id}`)) {
      if (e.type === 'ReceiptReceived') receipts.push(e.data as { providerMessageId: string; status: string });
    }
    expect(receipts).toEqual([expect.objectContaining({ providerMessageId: id, status: 'delivered' })]);
    expect(kept(id)).toBe(0);
  });
});
