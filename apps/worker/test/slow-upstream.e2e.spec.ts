/**
 * One upstream that hangs must not hold up the OTPs of every other carrier.
 * The bus hands the dispatcher a batch at a time, and a submit waits out its
 * adapter's timeout: without more, every OTP behind a hung submit waited for
 * it (measured by an SRE audit: p50 8.9 s for a carrier that never used the
 * hung upstream). A submit still running after `detachAfterMs` is parked and
 * finished in the background, so the next batch goes on.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { until } from '#testing';
import { startPipeline, type Pipeline } from './pipeline.harness.js';

const SECRET = 'aggregator-shared-secret-0123456789';
const HANG_MS = 3_000;

describe('a hung upstream and the other carriers', () => {
  let pipeline: Pipeline;
  let hung: http.Server;
  let account: string;

  beforeAll(async () => {
    // Takes every request and never answers.
    hung = http.createServer(() => undefined);
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    pipeline = await startPipeline({
      carriers: {
        providers: [
          { kind: 'http', name: 'hung', baseUrl: `http://127.0.0.1:${(hung.address() as AddressInfo).port}`, secret: SECRET, timeoutMs: HANG_MS, maxRetries: 0 },
          { kind: 'simulator', name: 'sim', simulator: { timeScale: 0.001, failureRate: 0, lostReceiptRate: 0, duplicateReceiptRate: 0 } },
        ],
        routes: { viettel: { sms: ['hung'] }, vinaphone: { sms: ['sim'] } },
      },
    });
    account = await pipeline.openAccount({ deposit: 10_000_000n });
  });

  afterAll(async () => {
    await pipeline?.stop();
    hung.closeAllConnections();
    await new Promise<void>((r) => hung.close(() => r()));
  });

  const routedAt = (otpId: string) =>
    until(`${otpId} routed or failed`, async () => {
      const f = (await pipeline.ledger()).get(otpId);
      const e = f?.otpEvents.find((x) => x.type === 'Routed' || x.type === 'RouteFailed');
      return e ? { type: e.type, at: Date.parse((e.data as { at: string }).at) } : undefined;
    }, { timeoutMs: HANG_MS + 10_000, everyMs: 25 });

  it('routes another carrier\'s OTP sent behind a hung submit within about a second, and still settles the hung one', async () => {
    const a = await pipeline.send(account, '0981000001', { channel: 'sms' });
    // In a later batch than A's, whose submit hangs meanwhile.
    await until('A parked while its submit hangs', () => (pipeline.workers.waiting().parkedDispatches > 0 ? true : undefined), { timeoutMs: 5_000, everyMs: 10 });
    const sentB = Date.now();
    const b = await pipeline.send(account, '0912000002', { channel: 'sms' });
    const bRouted = await routedAt(b.otpId);
    expect(bRouted.type).toBe('Routed');
    expect(bRouted.at - sentB).toBeLessThan(HANG_MS / 2);

    // A's submit times out (ambiguous: its window stays), no provider is left, and it is refunded.
    const aOutcome = await routedAt(a.otpId);
    expect(aOutcome.type).toBe('RouteFailed');
    const settled = await until('A settled', async () => {
      const f = (await pipeline.ledger()).get(a.otpId);
      return f && f.settlements.length > 0 ? f.settlements.map((e) => e.type).join() : undefined;
    }, { timeoutMs: 10_000, everyMs: 50 });
    expect(settled).toBe('Refunded');
    await until('nothing left parked', () => (pipeline.workers.waiting().parkedDispatches === 0 ? true : undefined), { timeoutMs: 5_000, everyMs: 20 });
  }, 30_000);
});
