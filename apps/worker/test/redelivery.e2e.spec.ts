/**
 * Every message delivered twice: the bus under every consumer and the relay
 * is wrapped so each publish lands twice (the copies in separate writes, so
 * they can fall into different batches) and each batch is handed to its
 * handler twice. Consumers are at least once and idempotent, so the money and
 * the customer's webhooks must come out exactly as with a clean bus.
 *
 * The webhook guarantee asserted here: a bus redelivery never makes a second
 * POST (deliveries are rows keyed by the log event's id, which is the
 * payload's `event_id`). In general delivery is at least once: a 2xx answer
 * lost on the way, or a crash between the POST and its record, sends the same
 * `event_id` again, which is why API.md tells customers to de-duplicate by it.
 * Here the endpoint answers at once, so each `event_id` arrives exactly once.
 */
import type { BatchHandler, ConsumeOptions, MessageBus } from '#bus';
import { verifyWebhook } from '#worker';
import { until } from '#testing';
import { nextPhone, PRICE, startPipeline, webhookSink, type Pipeline } from './pipeline.harness.js';

function everythingTwice(bus: MessageBus): MessageBus {
  return {
    async publish(topic, messages) {
      await bus.publish(topic, messages);
      await bus.publish(topic, messages);
    },
    consume: <V>(group: string, topic: string, handler: BatchHandler<V>, options?: ConsumeOptions) =>
      bus.consume<V>(
        group,
        topic,
        async (batch) => {
          await handler(batch);
          await handler(batch);
        },
        options,
      ),
    health: () => bus.health(),
    close: () => bus.close(),
  };
}

const OTPS = 400;
const ACCOUNTS = 8;
const DEPOSIT = 100n * 1_000_000n;

describe('every message delivered twice', () => {
  let pipeline: Pipeline;
  let sink: Awaited<ReturnType<typeof webhookSink>>;

  beforeAll(async () => {
    sink = await webhookSink();
    pipeline = await startPipeline({
      wrapBus: everythingTwice,
      expiryMs: 4_000,
      carriers: {
        providers: [
          {
            kind: 'simulator',
            name: 'simulator',
            // Every settlement path: delivered, undelivered receipts, lost receipts (expiry) and duplicated receipts.
            simulator: { timeScale: 0.001, failureRate: 0.2, lostReceiptRate: 0.1, duplicateReceiptRate: 0.5 },
          },
        ],
      },
    });
  });
  afterAll(async () => {
    await pipeline?.stop();
    await sink?.close();
  });

  it('charges and settles each OTP once, balances come out right, and each webhook event is POSTed once', async () => {
    const accounts = await Promise.all(Array.from({ length: ACCOUNTS }, () => pipeline.openAccount({ deposit: DEPOSIT })));
    const secrets = new Map<string, string>();
    for (const a of accounts) secrets.set(a, await pipeline.configureWebhook(a, sink.url));
    const sent = await Promise.all(Array.from({ length: OTPS }, (_, i) => pipeline.send(accounts[i % ACCOUNTS], nextPhone())));

    const ledger = await until(
      'every OTP settled',
      async () => {
        const l = await pipeline.ledger();
        return sent.every((s) => (l.get(s.otpId)?.settlements.length ?? 0) > 0) ? l : undefined;
      },
      { timeoutMs: 30_000, everyMs: 200 },
    );
    // Late copies (duplicated receipts, a second settlement message) have had their chance to do harm.
    await until(
      'the bus drained',
      async () => (Object.values(await pipeline.workers.consumerLag()).every((c) => c.lag === 0) ? true : undefined),
      { timeoutMs: 15_000, everyMs: 50 },
    );
    const final = await pipeline.ledger();

    let delivered = 0;
    const expectedHooks = new Map<string, string>();
    for (const { otpId } of sent) {
      const f = final.get(otpId)!;
      expect(f.charged).toHaveLength(1);
      expect(f.settlements).toHaveLength(1);
      const [s] = f.settlements;
      if (s.type === 'Refunded') expect((s.data as { amount: string }).amount).toBe(f.charged[0].amount.toString());
      if (s.type === 'Delivered') delivered++;
      // Exactly one carrier submission recorded per OTP: the copies of the dispatch message changed nothing.
      expect(f.otpEvents.filter((e) => e.type === 'Routed')).toHaveLength(1);
      for (const e of f.otpEvents.filter((e) => e.type === 'Routed')) expectedHooks.set(e.id, 'otp.routed');
      expectedHooks.set(s.id, s.type === 'Delivered' ? 'otp.delivered' : 'otp.refunded');
    }
    expect(ledger.size).toBeGreaterThanOrEqual(OTPS);
    // No copy of a dispatch message is waiting for a second submission, and every receipt found its OTP.
    expect(pipeline.workers.waiting()).toEqual({ parkedDispatches: 0, unmatchedReceipts: 0 });
    // The simulator's mix: most delivered, the rest refunded (undelivered or expired).
    expect(delivered).toBeGreaterThan(OTPS / 3);
    expect(delivered).toBeLessThan(OTPS);

    for (const accountId of accounts) {
      const mine = sent.filter((s) => final.get(s.otpId)!.accountId === accountId).map((s) => final.get(s.otpId)!);
      const paid = mine.filter((f) => f.settlements[0].type === 'Delivered');
      const byCredit = paid.filter((f) => f.charged[0].fundedBy === 'test_credit').length;
      const byBalance = paid.filter((f) => f.charged[0].fundedBy === 'balance').length;
      await until('balances projected', () => (pipeline.balance(accountId)?.pending === 0n ? true : undefined), { timeoutMs: 15_000, everyMs: 50 });
      expect(pipeline.balance(accountId)).toEqual({ balance: DEPOSIT - PRICE * BigInt(byBalance), testCreditsLeft: 5 - byCredit, pending: 0n });
    }

    await until(
      () => `${expectedHooks.size} webhook events, got ${new Set(sink.hooks.map((h) => JSON.parse(h.body).event_id)).size}`,
      () => (new Set(sink.hooks.map((h) => JSON.parse(h.body).event_id)).size >= expectedHooks.size ? true : undefined),
      { timeoutMs: 20_000, everyMs: 50 },
    );
    await new Promise((r) => setTimeout(r, 300));
    const byEvent = new Map<string, number>();
    for (const h of sink.hooks) {
      const body = JSON.parse(h.body) as { event_id: string; type: string; id: string };
      byEvent.set(body.event_id, (byEvent.get(body.event_id) ?? 0) + 1);
      expect(body.type).toBe(expectedHooks.get(body.event_id));
      const accountId = final.get(body.id)!.accountId;
      expect(verifyWebhook(secrets.get(accountId)!, h.body, h.signature, Math.floor(Date.now() / 1000))).toBe(true);
    }
    expect([...byEvent.keys()].sort()).toEqual([...expectedHooks.keys()].sort());
    expect([...byEvent.values()].filter((n) => n !== 1)).toEqual([]);
  });
});
