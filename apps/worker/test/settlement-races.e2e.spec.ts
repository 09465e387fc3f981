/**
 * Settlement edges through the embedded pipeline: receipts that repeat,
 * contradict each other, come for a superseded attempt, or come after the
 * OTP was refunded; expiry racing a delivered receipt; a test-credit OTP
 * refunded. The carrier simulator here sends no receipts of its own
 * (lostReceiptRate 1), so every receipt is the test's, published where an
 * SMPP session or an HTTP callback would publish it. Each case asserts the
 * account stream's settlements, the balance read model, the customer's
 * webhooks and, at the end, `ledger verify` over the whole log.
 */
import { otpDecider, otpStream, type ReceiptStatus } from '#domain';
import type { RecordedEvent } from '#eventstore';
import { getWebhook } from '#projections';
import { until } from '#testing';
import { openLedgerContext } from '../../ledger/src/ledger-context.js';
import { verifyCommand } from '../../ledger/src/verify.command.js';
import { nextPhone, PRICE, startPipeline, webhookSink, type OtpFacts, type Pipeline } from './pipeline.harness.js';

const QUIET = { timeScale: 0.001, failureRate: 0, lostReceiptRate: 1, duplicateReceiptRate: 0 };
const EXPIRY_MS = 2_000;
const DEPOSIT = 1_000_000n;

interface Hook {
  event_id: string;
  type: string;
  id: string;
  status: string;
  carrier?: string;
  channel?: string;
  via?: string;
  reason?: string;
  amount?: string;
}

// Both ways a delivering receipt settles: early, beside the receipts consumer (the embedded default), and
// through the relay and the settlement consumer only (a distributed worker).
describe.each([true, false])('settlement edges, embedded pipeline (settleOnReceipt: %s)', (settleOnReceipt) => {
  let p: Pipeline;
  let sink: Awaited<ReturnType<typeof webhookSink>>;

  beforeAll(async () => {
    sink = await webhookSink();
    p = await startPipeline({
      expiryMs: EXPIRY_MS,
      carriers: {
        providers: [
          { kind: 'simulator', name: 'quiet', simulator: QUIET },
          // Refuses every submit with a retryable error: Vinaphone SMS fails over from it to `quiet` as attempt 2.
          { kind: 'simulator', name: 'flaky', simulator: { ...QUIET, submitErrorRate: 1 } },
        ],
        routes: {
          viettel: { voice: ['quiet'], sms: ['quiet'] },
          vinaphone: { voice: ['quiet'], sms: ['flaky', 'quiet'] },
          mobifone: { sms: ['quiet'] },
          vietnamobile: { voice: ['quiet'], sms: ['quiet'] },
        },
      },
      workers: { expiryIntervalMs: 100, receiptRematchMs: 50, settleOnReceipt },
    });
  });
  afterAll(async () => {
    await p?.stop();
    await sink?.close();
  });

  /** A funded account (no test credits unless asked) with the sink as its webhook. */
  const account = async (options: { deposit?: bigint; testCredits?: number } = {}) => {
    const id = await p.openAccount({ deposit: options.deposit ?? DEPOSIT, testCredits: options.testCredits ?? 0 });
    await p.configureWebhook(id, sink.url);
    // The webhook worker drops events of an account whose endpoint it cannot see yet; the API's PUT waits for the read models, so this does too.
    await until('webhook projected', () => getWebhook(p.db, id), { timeoutMs: 5_000, everyMs: 10 });
    return id;
  };
  const facts = (id: string, what: string, done: (f: OtpFacts) => boolean, timeoutMs = 8_000) =>
    until(
      `otp ${id}: ${what}`,
      async () => {
        const f = (await p.ledger()).get(id);
        return f && done(f) ? f : undefined;
      },
      { timeoutMs, everyMs: 25 },
    );
  const routed = async (id: string) => {
    const f = await facts(id, 'routed', (x) => x.otpEvents.some((e) => e.type === 'Routed'));
    return f.otpEvents.find((e) => e.type === 'Routed')!.data as { provider: string; providerMessageId: string; attempt: number };
  };
  const receipts = (f: OtpFacts) => f.otpEvents.filter((e) => e.type === 'ReceiptReceived').map((e) => (e.data as { status: string }).status);
  const settlements = (f: OtpFacts) =>
    f.settlements.map((e: RecordedEvent) => {
      const d = e.data as { via?: string; reason?: string; amount?: string; fundedBy?: string };
      return { type: e.type, ...(d.via ? { via: d.via } : {}), ...(d.reason ? { reason: d.reason, amount: d.amount, fundedBy: d.fundedBy } : {}) };
    });
  const receipt = (provider: string, providerMessageId: string, status: ReceiptStatus, otpId?: string) =>
    p.publishReceipt({ provider, providerMessageId, status, raw: `id:${providerMessageId} stat:${status}`, at: new Date().toISOString(), ...(otpId ? { otpId } : {}) });
  /** Every receipt of `statuses` is on the OTP's stream, in that order. */
  const recorded = (id: string, statuses: string[]) => facts(id, `receipts ${statuses.join(',')}`, (f) => receipts(f).join() === statuses.join());
  /**
   * Nothing more can happen: the relay has published the whole log, every consumer has committed
   * everything, the projections are at the head (two looks in a row, so a settlement appended by the
   * last message is relayed and consumed too).
   */
  const quiet = async () => {
    let calm = 0;
    await until('the pipeline is quiet', async () => {
      const head = await p.store.headPosition();
      const lags = Object.values(await p.workers.consumerLag());
      const still = (p.workers.relay?.checkpoint ?? 0n) >= head && lags.every((c) => c.lag === 0);
      calm = still ? calm + 1 : 0;
      return calm >= 3 ? true : undefined;
    }, { timeoutMs: 8_000, everyMs: 40 });
  };
  const balanceIs = (accountId: string, expected: { balance: bigint; testCreditsLeft: number; pending: bigint }) =>
    until(
      () => `balance of ${accountId} = ${JSON.stringify(expected, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}, got ${JSON.stringify(p.balance(accountId), (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`,
      () => {
        const b = p.balance(accountId);
        return b && b.balance === expected.balance && Number(b.testCreditsLeft) === expected.testCreditsLeft && b.pending === expected.pending ? true : undefined;
      },
      { timeoutMs: 8_000, everyMs: 25 },
    );
  const hooksOf = (otpId: string): Hook[] => sink.hooks.map((h) => JSON.parse(h.body) as Hook).filter((h) => h.id === otpId);
  /** The OTP's webhooks once `types` have all arrived (and a moment for any extra one to show). */
  const webhooks = async (otpId: string, types: string[]) => {
    await until(
      `webhooks ${types.join(',')} for ${otpId}`,
      () => (types.every((t) => hooksOf(otpId).some((h) => h.type === t)) ? true : undefined),
      { timeoutMs: 8_000, everyMs: 25 },
    );
    await new Promise((r) => setTimeout(r, 150));
    return hooksOf(otpId);
  };
  /** The one settlement of a refunded OTP, as `settlements` shows it. */
  const refund = (reason: string, fundedBy = 'balance') => ({ type: 'Refunded', reason, amount: String(PRICE), fundedBy });
  const charged = { balance: DEPOSIT - PRICE, testCreditsLeft: 0, pending: 0n };
  const refunded = { balance: DEPOSIT, testCreditsLeft: 0, pending: 0n };

  it('a delivered receipt sent three times delivers once: one Delivered, one otp.delivered webhook, the price kept', async () => {
    const acc = await account();
    const { otpId } = await p.send(acc, nextPhone(['098']), { channel: 'sms' });
    const r = await routed(otpId);
    await Promise.all([receipt(r.provider, r.providerMessageId, 'delivered'), receipt(r.provider, r.providerMessageId, 'delivered')]);
    await receipt(r.provider, r.providerMessageId, 'delivered');
    await recorded(otpId, ['delivered']);
    await quiet();
    const f = (await p.ledger()).get(otpId)!;
    expect(settlements(f)).toEqual([{ type: 'Delivered', via: 'receipt' }]);
    await balanceIs(acc, charged);
    const hooks = await webhooks(otpId, ['otp.routed', 'otp.delivered']);
    expect(hooks.map((h) => h.type).sort()).toEqual(['otp.delivered', 'otp.routed']);
    expect(hooks.find((h) => h.type === 'otp.delivered')).toMatchObject({ status: 'delivered', via: 'receipt', carrier: 'viettel', channel: 'sms' });
    // Which upstream carried it is ours to know, not the customer's.
    expect(Object.keys(hooks.find((h) => h.type === 'otp.routed')!).sort()).toEqual(['at', 'carrier', 'channel', 'event_id', 'id', 'status', 'type']);
  });

  const deliveredOnce = [{ type: 'Delivered', via: 'receipt' }];
  const refundedOnce = [refund('undelivered')];
  it.each([
    ['DELIVRD then UNDELIV', 'delivered', 'undelivered', deliveredOnce, charged, 'otp.delivered', 'otp.refunded'],
    ['UNDELIV then DELIVRD', 'undelivered', 'delivered', refundedOnce, refunded, 'otp.refunded', 'otp.delivered'],
  ] as const)(
    '%s for the same message: both recorded, the first settles once, the second moves no money and sends no webhook',
    async (_name, first, second, expected, money, hook, never) => {
      const acc = await account();
      const { otpId } = await p.send(acc, nextPhone(['098']), { channel: 'sms' });
      const r = await routed(otpId);
      await receipt(r.provider, r.providerMessageId, first);
      await facts(otpId, 'settled', (f) => f.settlements.length > 0);
      await receipt(r.provider, r.providerMessageId, second);
      await recorded(otpId, [first, second]);
      await quiet();
      expect(settlements((await p.ledger()).get(otpId)!)).toEqual(expected);
      await balanceIs(acc, money);
      const hooks = await webhooks(otpId, ['otp.routed', hook]);
      expect(hooks.map((h) => h.type).sort()).toEqual([hook, 'otp.routed'].sort());
      expect(hooks.filter((h) => h.type === never)).toEqual([]);
      expect(hooks.find((h) => h.type === hook)).toMatchObject(
        hook === 'otp.refunded' ? { status: 'refunded', reason: 'undelivered', amount: '0.022000', carrier: 'viettel', channel: 'sms' } : { status: 'delivered', via: 'receipt' },
      );
    },
  );

  it('conflicting receipts in one batch settle one way only: delivered if it comes first, or if it is recorded before settlement reads the failure', async () => {
    const acc = await account();
    const { otpId } = await p.send(acc, nextPhone(['098']), { channel: 'sms' });
    const r = await routed(otpId);
    // Published in the same turn: one bus write, one batch, one key.
    await Promise.all([receipt(r.provider, r.providerMessageId, 'undelivered'), receipt(r.provider, r.providerMessageId, 'delivered')]);
    const f0 = await facts(otpId, 'both receipts', (f) => receipts(f).length === 2);
    await quiet();
    const f = (await p.ledger()).get(otpId)!;
    expect(f.settlements).toHaveLength(1);
    const first = receipts(f0)[0];
    // A failure read by settlement after the delivered receipt was recorded waits for it (refundWaits).
    const outcome = settlements(f)[0];
    if (first === 'delivered') expect(outcome).toEqual({ type: 'Delivered', via: 'receipt' });
    else expect([{ type: 'Delivered', via: 'receipt' }, refund('undelivered')]).toContainEqual(outcome);
    await balanceIs(acc, outcome.type === 'Delivered' ? charged : refunded);
  });

  it('voice: answered delivers via voice_answer; unanswered refunds as undelivered', async () => {
    const acc = await account();
    const a = await p.send(acc, nextPhone(['098']), { channel: 'voice' });
    const b = await p.send(acc, nextPhone(['098']), { channel: 'voice' });
    const [ra, rb] = await Promise.all([routed(a.otpId), routed(b.otpId)]);
    await receipt(ra.provider, ra.providerMessageId, 'answered');
    await receipt(rb.provider, rb.providerMessageId, 'unanswered');
    await Promise.all([recorded(a.otpId, ['answered']), recorded(b.otpId, ['unanswered'])]);
    await quiet();
    const l = await p.ledger();
    expect(settlements(l.get(a.otpId)!)).toEqual([{ type: 'Delivered', via: 'voice_answer' }]);
    expect(settlements(l.get(b.otpId)!)).toEqual([refund('undelivered')]);
    await balanceIs(acc, { balance: DEPOSIT - PRICE, testCreditsLeft: 0, pending: 0n });
    expect((await webhooks(a.otpId, ['otp.delivered'])).find((h) => h.type === 'otp.delivered')).toMatchObject({ via: 'voice_answer', channel: 'voice' });
  });

  it('an accepted (SMSC) receipt settles nothing: the OTP stays open until expiry refunds it', async () => {
    const acc = await account();
    const { otpId } = await p.send(acc, nextPhone(['098']), { channel: 'sms' });
    const r = await routed(otpId);
    await receipt(r.provider, r.providerMessageId, 'accepted');
    await recorded(otpId, ['accepted']);
    const f = await facts(otpId, 'expired and refunded', (x) => x.settlements.length > 0, EXPIRY_MS + 6_000);
    expect(f.otpEvents.map((e) => e.type)).toEqual(['Routed', 'ReceiptReceived', 'Expired']);
    expect(settlements(f)).toEqual([refund('expired')]);
    await balanceIs(acc, refunded);
  });

  it('no receipt by the deadline: Expired then Refunded (expired); a delivered receipt after the refund is recorded and changes no money or status', async () => {
    const acc = await account();
    const { otpId } = await p.send(acc, nextPhone(['098']), { channel: 'sms' });
    const r = await routed(otpId);
    await facts(otpId, 'refunded by expiry', (x) => x.settlements.length > 0, EXPIRY_MS + 6_000);
    await receipt(r.provider, r.providerMessageId, 'delivered');
    await recorded(otpId, ['delivered']);
    await quiet();
    const f = (await p.ledger()).get(otpId)!;
    expect(f.otpEvents.map((e) => e.type)).toEqual(['Routed', 'Expired', 'ReceiptReceived']);
    expect(settlements(f)).toEqual([refund('expired')]);
    await balanceIs(acc, refunded);
    const hooks = await webhooks(otpId, ['otp.routed', 'otp.refunded']);
    expect(hooks.map((h) => h.type).sort()).toEqual(['otp.refunded', 'otp.routed']);
    expect(hooks.find((h) => h.type === 'otp.refunded')).toMatchObject({ reason: 'expired', amount: '0.022000', funded_by: 'balance' });
  });

  it('an expiry scan that read the open row before the delivery was projected appends Expired, and refunds nothing', async () => {
    const acc = await account();
    const { otpId } = await p.send(acc, nextPhone(['098']), { channel: 'sms' });
    const r = await routed(otpId);
    await receipt(r.provider, r.providerMessageId, 'delivered');
    await facts(otpId, 'delivered', (x) => x.settlements.length > 0);
    // What a scan on a stale read model does: the OTP's row still said "routed".
    await p.runner.handle(otpStream(otpId), otpDecider, { type: 'Expire', at: new Date().toISOString() }, { accountId: acc });
    await quiet();
    const f = (await p.ledger()).get(otpId)!;
    expect(f.otpEvents.map((e) => e.type)).toEqual(['Routed', 'ReceiptReceived', 'Expired']);
    expect(settlements(f)).toEqual([{ type: 'Delivered', via: 'receipt' }]);
    await balanceIs(acc, charged);
    expect((await webhooks(otpId, ['otp.delivered'])).filter((h) => h.type === 'otp.refunded')).toEqual([]);
  });

  it('expiry and a delivered receipt at the same moment: exactly one settlement, and the money agrees with it', async () => {
    const acc = await account();
    const sent = await Promise.all([0, 1, 2, 3, 4].map(() => p.send(acc, nextPhone(['098']), { channel: 'sms' })));
    const routes = await Promise.all(sent.map((s) => routed(s.otpId)));
    await Promise.all(
      sent.flatMap((s, i) => [
        receipt(routes[i].provider, routes[i].providerMessageId, 'delivered'),
        p.runner.handle(otpStream(s.otpId), otpDecider, { type: 'Expire', at: new Date().toISOString() }, { accountId: acc }),
      ]),
    );
    await Promise.all(sent.map((s) => facts(s.otpId, 'receipt and expiry', (f) => receipts(f).length === 1 && f.otpEvents.some((e) => e.type === 'Expired'))));
    await quiet();
    const l = await p.ledger();
    let delivered = 0;
    for (const s of sent) {
      const f = l.get(s.otpId)!;
      expect(f.settlements).toHaveLength(1);
      // The first of the two facts on the OTP's stream decides.
      const first = f.otpEvents.find((e) => e.type === 'ReceiptReceived' || e.type === 'Expired')!.type;
      expect(f.settlements[0].type).toBe(first === 'ReceiptReceived' ? 'Delivered' : 'Refunded');
      if (first === 'ReceiptReceived') delivered++;
    }
    await balanceIs(acc, { balance: DEPOSIT - PRICE * BigInt(delivered), testCreditsLeft: 0, pending: 0n });
  });

  it('a test-credit OTP that expires gives the credit back and moves no money: no ledger line, balance untouched', async () => {
    const acc = await account({ testCredits: 2 });
    const { otpId } = await p.send(acc, nextPhone(['098']), { channel: 'sms' });
    await balanceIs(acc, { balance: DEPOSIT, testCreditsLeft: 1, pending: 0n });
    const f = await facts(otpId, 'refunded by expiry', (x) => x.settlements.length > 0, EXPIRY_MS + 6_000);
    expect(f.charged).toEqual([{ amount: PRICE, fundedBy: 'test_credit' }]);
    expect(settlements(f)).toEqual([refund('expired', 'test_credit')]);
    await balanceIs(acc, { balance: DEPOSIT, testCreditsLeft: 2, pending: 0n });
    // The webhook says what came back: a test credit, not money.
    const hooks = await webhooks(otpId, ['otp.routed', 'otp.refunded']);
    expect(hooks.find((h) => h.type === 'otp.refunded')).toMatchObject({ reason: 'expired', amount: '0.022000', funded_by: 'test_credit' });
    const lines = p.db.prepare<[string], { type: string; ref: string }>('SELECT type, ref FROM ledger_lines WHERE account_id = ? ORDER BY position').all(acc);
    expect(lines.map((x) => x.type)).toEqual(['deposit']);
  });

  it('a delivered receipt for the earlier, failed-over attempt proves delivery: Delivered once, the routed attempt’s receipt changes nothing', async () => {
    const acc = await account();
    const { otpId } = await p.send(acc, nextPhone(['091']), { channel: 'sms' });
    const r = await routed(otpId);
    const f0 = (await p.ledger()).get(otpId)!;
    expect(f0.otpEvents.map((e) => [e.type, (e.data as { provider: string }).provider])).toEqual([
      ['RouteFailed', 'flaky'],
      ['Routed', 'quiet'],
    ]);
    // The first upstream answered with an error but had taken the message after all (an ambiguous
    // failure); its receipt names our reference, as the HTTP protocol echoes it.
    await receipt('flaky', 'flaky-attempt-1', 'delivered', otpId);
    await facts(otpId, 'delivered', (x) => x.settlements.length > 0);
    await receipt(r.provider, r.providerMessageId, 'undelivered');
    await recorded(otpId, ['delivered', 'undelivered']);
    await quiet();
    expect(settlements((await p.ledger()).get(otpId)!)).toEqual([{ type: 'Delivered', via: 'receipt' }]);
    await balanceIs(acc, charged);
  });

  // Fixed 2026-11-27: the OTP decider knew a routed message by its id alone, so the routed attempt's
  // id, given by another upstream, hid the earlier attempt's message of the same id: the earlier
  // upstream's receipt was refused ("routed through quiet") and the OTP was refunded though delivered.
  it("the earlier attempt's upstream delivered under the same id the routed attempt's upstream gave: its receipt counts, Delivered once", async () => {
    const acc = await account();
    const { otpId } = await p.send(acc, nextPhone(['091']), { channel: 'sms' });
    const r = await routed(otpId);
    expect(r).toMatchObject({ provider: 'quiet', attempt: 2 });
    await receipt('flaky', r.providerMessageId, 'delivered', otpId);
    await receipt(r.provider, r.providerMessageId, 'undelivered');
    await recorded(otpId, ['delivered', 'undelivered']);
    await quiet();
    const f = (await p.ledger()).get(otpId)!;
    expect(f.otpEvents.filter((e) => e.type === 'ReceiptReceived').map((e) => (e.data as { provider: string }).provider)).toEqual(['flaky', 'quiet']);
    expect(settlements(f)).toEqual([{ type: 'Delivered', via: 'receipt' }]);
    await balanceIs(acc, charged);
  });

  // Found by this test, fixed 2026-11-26 (it was a bug): settlement refunded on the first failure receipt of ANY message of the OTP. The relay's
  // SettlementMessage carries no providerMessageId and settlement.consumer.ts's commandFor maps
  // `undelivered` to RefundOtp without asking whether that message is the OTP's live (routed)
  // attempt. A late UNDELIV for attempt 1 (which failed over after an ambiguous error) therefore
  // refunds the OTP while attempt 2 is still in flight; when attempt 2's DELIVRD arrives the charge
  // is already closed, so the code reached the user but the customer was refunded and told
  // `otp.refunded`. A failure receipt should only refund when it is for the routed attempt (or once
  // no attempt can still deliver); otherwise it should wait for the routed attempt or expiry.
  it('an undelivered receipt for the earlier, failed-over attempt does not refund while the routed attempt can still deliver', async () => {
    const acc = await account();
    const { otpId } = await p.send(acc, nextPhone(['091']), { channel: 'sms' });
    const r = await routed(otpId);
    expect(r).toMatchObject({ provider: 'quiet', attempt: 2 });
    await receipt('flaky', 'flaky-attempt-1', 'undelivered', otpId);
    await recorded(otpId, ['undelivered']);
    await quiet();
    await receipt(r.provider, r.providerMessageId, 'delivered');
    await recorded(otpId, ['undelivered', 'delivered']);
    await quiet();
    expect(settlements((await p.ledger()).get(otpId)!)).toEqual([{ type: 'Delivered', via: 'receipt' }]);
    await balanceIs(acc, charged);
  });

  it('a failure receipt of the earlier attempt, read by settlement after the routed attempt delivered, does not refund: Delivered once', async () => {
    const acc = await account();
    const { otpId } = await p.send(acc, nextPhone(['091']), { channel: 'sms' });
    const r = await routed(otpId);
    // Both receipts in one append, the failure first: settlement reads the failure with the delivery already on the stream.
    const at = new Date().toISOString();
    const receiptEvent = (provider: string, providerMessageId: string, status: ReceiptStatus) => ({
      type: 'ReceiptReceived',
      data: { providerMessageId, status, raw: `id:${providerMessageId} stat:${status}`, at },
      metadata: { accountId: acc, provider },
    });
    await p.store.append(otpStream(otpId), [receiptEvent('flaky', 'flaky-attempt-1', 'undelivered'), receiptEvent(r.provider, r.providerMessageId, 'delivered')], 'stream_exists');
    await recorded(otpId, ['undelivered', 'delivered']);
    await quiet();
    expect(settlements((await p.ledger()).get(otpId)!)).toEqual([{ type: 'Delivered', via: 'receipt' }]);
    await balanceIs(acc, charged);
  });

  it('after all of the above, ledger verify finds no violation and every OTP in the log is charged once and settled once', async () => {
    await quiet();
    const l = await p.ledger();
    for (const [otpId, f] of l) {
      expect([otpId, f.charged.length, f.settlements.length]).toEqual([otpId, 1, 1]);
      const [s] = f.settlements;
      if (s.type === 'Refunded') expect((s.data as { amount: string; fundedBy: string })).toMatchObject({ amount: String(f.charged[0].amount), fundedBy: f.charged[0].fundedBy });
    }
    const out: string[] = [];
    const ctx = await openLedgerContext({ db: `${p.dir}/nexo.db` }, (t) => out.push(t));
    try {
      const result = await verifyCommand(ctx);
      expect(result.violations).toEqual([]);
      expect(result.accounts).toBeGreaterThan(0);
    } finally {
      await ctx.close();
    }
  });
});
