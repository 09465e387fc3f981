/**
 * The http adapter against the simulator's HTTP face, and the simulator's
 * signed receipt callbacks into a receiver that checks them the way the
 * API's `POST /api/v1/carriers/:provider/receipts` will. Real sockets on
 * 127.0.0.1, ephemeral ports.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { until } from '#testing';
import type { Receipt, SubmitRequest } from '../carrier-gateway.port.js';
import { HttpCarrierGateway } from './http.carrier-gateway.js';
import { SIGNATURE_HEADER, parseReceiptCallback } from './http.protocol.js';
import { HttpSimulator } from './simulator/http.simulator.js';

const SECRET = 'sim-secret-0123456789abcdef';
const QUIET = { failureRate: 0, lostReceiptRate: 0, duplicateReceiptRate: 0, timeScale: 0.001 };

const sms = (otpId: string, phoneE164 = '+84912345678'): SubmitRequest => ({
  otpId,
  attempt: 1,
  phoneE164,
  carrier: 'vinaphone',
  channel: 'sms',
  text: 'Ma xac thuc cua ban la 482913.',
  digits: '482913',
});

/** Stands in for the API's receipts endpoint: verify, parse, answer 401/400/200. */
async function startReceiver(secret: string) {
  const receipts: Receipt[] = [];
  let refused = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const header = req.headers[SIGNATURE_HEADER] as string | undefined;
      const parsed = parseReceiptCallback('agg', secret, Buffer.concat(chunks), header);
      if (!parsed.ok) {
        refused++;
        return res.writeHead(parsed.reason === 'bad_signature' ? 401 : 400).end();
      }
      if (parsed.receipt) receipts.push(parsed.receipt);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/api/v1/carriers/agg/receipts`,
    receipts,
    refused: () => refused,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

describe('http adapter ↔ simulator HTTP face', () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let sim: HttpSimulator;
  let gw: HttpCarrierGateway;
  const gateway = (over: Partial<ConstructorParameters<typeof HttpCarrierGateway>[0]> = {}) =>
    new HttpCarrierGateway({ provider: 'agg', baseUrl: sim.url, secret: SECRET, timeoutMs: 500, maxRetries: 2, backoff: { baseMs: 10, maxMs: 40 }, ...over });

  beforeEach(async () => {
    receiver = await startReceiver(SECRET);
    sim = await HttpSimulator.start({ secret: SECRET, callbackUrl: receiver.url, config: QUIET });
    gw = gateway();
  });
  afterEach(async () => {
    await gw.close();
    await sim.close();
    await receiver.close();
  });

  it('submits SMS and voice, and the signed receipt callbacks come back verified and tied to the OTP', async () => {
    const a = await gw.submit(sms('otp_a'));
    const b = await gw.submit({ ...sms('otp_b', '+84961234567'), carrier: 'viettel', channel: 'voice', speech: 'một, hai', attempt: 2 } as SubmitRequest);
    await until('2 receipts', () => receiver.receipts.length === 2, { timeoutMs: 5_000, everyMs: 10 });
    const byOtp = Object.fromEntries(receiver.receipts.map((r) => [r.otpId, r]));
    expect(byOtp.otp_a).toMatchObject({ provider: 'agg', providerMessageId: a.providerMessageId, status: 'delivered', attempt: 1 });
    expect(byOtp.otp_b).toMatchObject({ providerMessageId: b.providerMessageId, status: 'answered', attempt: 2 });
    expect(byOtp.otp_a!.raw).not.toContain('482913');
    expect(receiver.refused()).toBe(0);
    // The receiver stores before it answers, so the simulator counts a receipt as sent a moment later.
    await until('2 receipts sent', () => sim.stats().receiptsSent === 2, { timeoutMs: 5_000, everyMs: 10 });
    expect(sim.stats()).toMatchObject({ requests: 2, accepted: 2, receiptsFailed: 0 });
  });

  it('retries a 5xx with the same idempotency key and succeeds', async () => {
    sim.injectFault({ status: 503 }, { status: 502 });
    const r = await gw.submit(sms('otp_retry'));
    expect(r.providerMessageId).toMatch(/^[0-9a-f]{12}$/);
    expect(sim.stats()).toMatchObject({ requests: 3, accepted: 1 });
  });

  it('gives up after the bounded retries with a retryable error', async () => {
    sim.injectFault({ status: 503 }, { status: 503 }, { status: 503 }, { status: 503 });
    await expect(gw.submit(sms('otp_down'))).rejects.toMatchObject({ code: 'unavailable', retryable: true, detail: 'http_503' });
    expect(sim.stats().requests).toBe(3);
  });

  it('never retries a 4xx at the same provider; a refused credential or a provider without the route fails over', async () => {
    await gw.close();
    gw = gateway({ secret: 'wrong-secret-0123456789' });
    await expect(gw.submit(sms('otp_401'))).rejects.toMatchObject({ code: 'unauthorized', retryable: true, detail: 'http_401' });
    expect(sim.stats().requests).toBe(1);

    await gw.close();
    gw = gateway();
    // 0212… is a landline: well-formed E.164, refused by the aggregator.
    await expect(gw.submit(sms('otp_422', '+84212345678'))).rejects.toMatchObject({ code: 'rejected', retryable: false });
    await expect(
      gw.submit({ ...sms('otp_mobi', '+84901234567'), carrier: 'mobifone', channel: 'voice', speech: 'x' } as SubmitRequest),
    ).rejects.toMatchObject({ code: 'no_route', retryable: true });
    expect(sim.stats().requests).toBe(3);
  });

  it('treats 429 as retryable elsewhere but does not hammer the throttled upstream', async () => {
    sim.injectFault({ status: 429, retryAfterSec: 2 });
    await expect(gw.submit(sms('otp_429'))).rejects.toMatchObject({ code: 'throttled', retryable: true, retryAfterMs: 2_000 });
    expect(sim.stats().requests).toBe(1);
  });

  it('times out a hung upstream (AbortController) with a retryable error', async () => {
    await gw.close();
    gw = gateway({ timeoutMs: 100, maxRetries: 0 });
    sim.injectFault({ hangMs: 2_000 });
    const t0 = Date.now();
    await expect(gw.submit(sms('otp_slow'))).rejects.toMatchObject({ code: 'timeout', retryable: true });
    expect(Date.now() - t0).toBeLessThan(1_000);
  });

  it('a retry after a timeout is the same message: the idempotency key dedupes it upstream', async () => {
    await gw.close();
    gw = gateway({ timeoutMs: 100, maxRetries: 1 });
    sim.injectFault({ hangMs: 300 });
    const r = await gw.submit(sms('otp_twice'));
    // The hung request finishes later, finds the key and adds nothing.
    await until('the idempotent replay', () => sim.stats().idempotentReplays === 1, { timeoutMs: 5_000, everyMs: 10 });
    expect(sim.stats()).toMatchObject({ requests: 2, accepted: 1, idempotentReplays: 1 });
    await until('the receipt', () => receiver.receipts.length === 1, { timeoutMs: 5_000, everyMs: 10 });
    expect(receiver.receipts[0]!.providerMessageId).toBe(r.providerMessageId);
  });

  it('close() aborts a request in flight', async () => {
    sim.injectFault({ hangMs: 2_000 });
    const pending = gw.submit(sms('otp_closing'));
    await until('the request at the simulator', () => sim.stats().requests === 1, { timeoutMs: 5_000, everyMs: 10 });
    await gw.close();
    await expect(pending).rejects.toMatchObject({ code: 'closed' });
  });
});

describe('simulator receipt callbacks to a receiver that refuses them', () => {
  it('are rejected on a bad signature and retried a bounded number of times', async () => {
    const receiver = await startReceiver('the-receiver-knows-another-secret');
    const sim = await HttpSimulator.start({ secret: SECRET, callbackUrl: receiver.url, config: QUIET, callbackAttempts: 2 });
    const gw = new HttpCarrierGateway({ provider: 'agg', baseUrl: sim.url, secret: SECRET });
    try {
      await gw.submit(sms('otp_forged'));
      await until('the refused receipt callback', () => sim.stats().receiptsFailed === 1, { timeoutMs: 5_000, everyMs: 10 });
      expect(receiver.refused()).toBe(2);
      expect(receiver.receipts).toEqual([]);
    } finally {
      await gw.close();
      await sim.close();
      await receiver.close();
    }
  });
});
