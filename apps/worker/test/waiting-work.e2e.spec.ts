/**
 * Work that has to wait: a receipt that arrives before anything knows its
 * OTP, and a dispatch parked until its phone's window opens. Neither may be
 * lost, neither may hold other work up, and the wait must end promptly once
 * it can.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HttpSimulator } from '#carriers';
import { until } from '#testing';
import { nextPhone, startPipeline, type Pipeline } from './pipeline.harness.js';

const NO_RECEIPTS = { timeScale: 0.001, failureRate: 0, lostReceiptRate: 1, duplicateReceiptRate: 0 };

describe('receipts that come before their OTP is known', () => {
  let pipeline: Pipeline;

  beforeAll(async () => {
    // The simulator sends no receipts of its own: the ones the test publishes are the only ones.
    pipeline = await startPipeline({ carriers: { providers: [{ kind: 'simulator', name: 'simulator', simulator: NO_RECEIPTS }] } });
  });
  afterAll(async () => pipeline?.stop());

  it('keeps an early receipt and records it as soon as the OTP exists, behind a pile that never matches', async () => {
    const account = await pipeline.openAccount({ deposit: 1_000_000n });
    // Receipts for messages nobody sent: kept, retried less and less often, never in the way.
    const at = new Date().toISOString();
    for (let i = 0; i < 1_200; i += 200) {
      await pipeline.publishReceipt({ provider: 'simulator', providerMessageId: `stray-${i}`, status: 'delivered', raw: 'stat:DELIVRD', at });
      await Promise.all(
        Array.from({ length: 199 }, (_, j) =>
          pipeline.publishReceipt({ provider: 'simulator', providerMessageId: `stray-${i + j + 1}`, status: 'delivered', raw: 'stat:DELIVRD', at }),
        ),
      );
    }
    await until('the strays kept', () => (pipeline.workers.waiting().unmatchedReceipts === 1_200 ? true : undefined), { timeoutMs: 15_000, everyMs: 50 });

    const otpId = 'otp_early_receipt_1';
    await pipeline.publishReceipt({ provider: 'simulator', providerMessageId: 'early-1', status: 'delivered', raw: 'stat:DELIVRD', at, otpId });
    await until(
      'the early receipt kept',
      () => (pipeline.workers.waiting().unmatchedReceipts === 1_201 ? true : undefined),
      { timeoutMs: 15_000, everyMs: 50 },
    );
    const sentAt = Date.now();
    await pipeline.send(account, nextPhone(), { otpId });
    const ledger = await until(
      'the OTP delivered by the early receipt',
      async () => {
        const l = await pipeline.ledger();
        return l.get(otpId)?.settlements.length ? l : undefined;
      },
      { timeoutMs: 5_000, everyMs: 20 },
    );
    // Well within the first retries' schedule, not the minute the strays have backed off to.
    expect(Date.now() - sentAt).toBeLessThan(1_500);
    const f = ledger.get(otpId)!;
    expect(f.settlements.map((s) => s.type)).toEqual(['Delivered']);
    expect(f.otpEvents.filter((e) => e.type === 'ReceiptReceived').map((e) => (e.data as { providerMessageId: string }).providerMessageId)).toEqual(['early-1']);
    expect(pipeline.workers.waiting().unmatchedReceipts).toBe(1_200);
  });
});

describe('a dispatch parked across a restart', () => {
  const WINDOW_MS = 1_500;
  const SECRET = 'aggregator-shared-secret-0123456789';
  let aggregator: HttpSimulator;
  let first: Pipeline | undefined;
  let second: Pipeline | undefined;
  let dir: string | undefined;

  afterAll(async () => {
    await first?.stop();
    await second?.stop();
    await aggregator?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is dispatched by the next run once its window opens, and only then', async () => {
    aggregator = await HttpSimulator.start({ secret: SECRET, config: NO_RECEIPTS });
    const options = (dir?: string, secrets?: Pipeline['secrets']) => ({
      dir,
      secrets,
      carriers: {
        providers: [
          { kind: 'http', name: 'aggr', baseUrl: aggregator.url, secret: SECRET, timeoutMs: 300, maxRetries: 0 },
          { kind: 'simulator', name: 'backup', simulator: { ...NO_RECEIPTS, lostReceiptRate: 0 } },
        ],
        routes: { vinaphone: { sms: ['aggr', 'backup'] } },
      },
      workers: { dispatcher: { phoneWindowMs: WINDOW_MS } },
    });
    dir = mkdtempSync(join(tmpdir(), 'nexo-parked-'));
    first = await startPipeline(options(dir));
    const account = await first.openAccount({ deposit: 1_000_000n });
    aggregator.injectFault({ hangMs: 2_000 });
    const { otpId } = await first.send(account, nextPhone(['091']));
    await until('the dispatch parked', () => (first!.workers.waiting().parkedDispatches === 1 ? true : undefined), { timeoutMs: 15_000, everyMs: 50 });
    await first.stop();
    const secrets = first.secrets;
    first = undefined;

    second = await startPipeline(options(dir, secrets));
    expect(second.workers.waiting().parkedDispatches).toBe(1);
    const ledger = await until(
      'delivered through the backup',
      async () => {
        const l = await second!.ledger();
        return l.get(otpId)?.settlements.length ? l : undefined;
      },
      { timeoutMs: 10_000, everyMs: 50 },
    );
    const f = ledger.get(otpId)!;
    const failed = f.otpEvents.find((e) => e.type === 'RouteFailed')!.data as { at: string; provider: string };
    const routed = f.otpEvents.find((e) => e.type === 'Routed')!.data as { at: string; provider: string; attempt: number };
    expect(failed.provider).toBe('aggr');
    expect(routed).toMatchObject({ provider: 'backup', attempt: 2 });
    expect(Date.parse(routed.at) - (Date.parse(failed.at) - 300)).toBeGreaterThanOrEqual(WINDOW_MS - 50);
    expect(f.settlements.map((s) => s.type)).toEqual(['Delivered']);
    expect(second.workers.waiting().parkedDispatches).toBe(0);
  });
});

// Found by an audit, fixed 2026-11-26: the dispatcher's windows lived in memory only, so a restart
// (a crash, a deploy) forgot them and the next OTP to a phone went out at once, within its 30 s (I8).
describe("a phone's window across a restart", () => {
  const WINDOW_MS = 2_000;
  let first: Pipeline | undefined;
  let second: Pipeline | undefined;
  let dir: string | undefined;

  afterAll(async () => {
    await first?.stop();
    await second?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('holds: the next OTP to the phone is submitted only once the window the last run opened has passed', async () => {
    const options = (dir?: string, secrets?: Pipeline['secrets']) => ({
      dir,
      secrets,
      carriers: { providers: [{ kind: 'simulator', name: 'sim', simulator: { ...NO_RECEIPTS, lostReceiptRate: 0 } }] },
      workers: { dispatcher: { phoneWindowMs: WINDOW_MS, parkedPollMs: 50 } },
    });
    dir = mkdtempSync(join(tmpdir(), 'nexo-window-'));
    first = await startPipeline(options(dir));
    const account = await first.openAccount({ deposit: 1_000_000n });
    const phone = nextPhone(['091']);
    const a = await first.send(account, phone);
    const routedAt = async (p: Pipeline, otpId: string) =>
      until(
        `${otpId} routed`,
        async () => {
          const r = (await p.ledger()).get(otpId)?.otpEvents.find((e) => e.type === 'Routed');
          return r ? Date.parse((r.data as { at: string }).at) : undefined;
        },
        { timeoutMs: 10_000, everyMs: 25 },
      );
    const firstAt = await routedAt(first, a.otpId);
    await first.stop();
    const secrets = first.secrets;
    first = undefined;

    second = await startPipeline(options(dir, secrets));
    const b = await second.send(account, phone);
    const secondAt = await routedAt(second, b.otpId);
    expect(secondAt - firstAt).toBeGreaterThanOrEqual(WINDOW_MS - 50);
  });
});
