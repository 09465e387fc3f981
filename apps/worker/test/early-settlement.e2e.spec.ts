/**
 * Early settlement (WorkerOptions.settleOnReceipt, the embedded default): a
 * delivering receipt settles its OTP as soon as it is recorded, without
 * waiting for the relay to bring `ReceiptReceived` to the settlement
 * consumer; the relay's message still comes and changes nothing. Here the
 * settlement consumer is held shut by a gate around its handler, so what
 * settles while it is shut was settled early. Failure receipts are not
 * settled early (another attempt may still deliver): they wait for the gate.
 * The relay's message for an OTP settled early is dropped without a command.
 */
import { jest } from '@jest/globals';
import { type BatchHandler, type ConsumeOptions, type MessageBus, TOPICS } from '#bus';
import { otpDecider, otpStream, type ReceiptStatus } from '#domain';
import { until } from '#testing';
import { nextPhone, type OtpFacts, type Pipeline, startPipeline } from './pipeline.harness.js';

const QUIET = { timeScale: 0.001, failureRate: 0, lostReceiptRate: 1, duplicateReceiptRate: 0 };

/** Holds the settlement consumer's batches until `open()`. */
function settlementGate(): { wrap(bus: MessageBus): MessageBus; open(): void } {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return {
    open,
    wrap: (bus) =>
      new Proxy(bus, {
        get(target, prop, receiver) {
          if (prop !== 'consume') return Reflect.get(target, prop, receiver);
          const consume: MessageBus['consume'] = <V>(group: string, topic: string, handler: BatchHandler<V>, options?: ConsumeOptions) =>
            target.consume<V>(group, topic, group === 'nexo-settlement' ? async (batch) => (await opened, handler(batch)) : handler, options);
          return consume;
        },
      }),
  };
}

describe.each([
  { settleOnReceipt: true, early: true },
  { settleOnReceipt: false, early: false },
])('settleOnReceipt: $settleOnReceipt', ({ settleOnReceipt, early }) => {
  let p: Pipeline;
  let gate: ReturnType<typeof settlementGate>;

  beforeAll(async () => {
    gate = settlementGate();
    p = await startPipeline({
      carriers: { providers: [{ kind: 'simulator', name: 'quiet', simulator: QUIET }] },
      wrapBus: gate.wrap,
      workers: { settleOnReceipt },
    });
  });
  afterAll(async () => {
    gate?.open();
    await p?.stop();
  });

  const facts = (id: string, what: string, done: (f: OtpFacts) => boolean) =>
    until(
      `otp ${id}: ${what}`,
      async () => {
        const f = (await p.ledger()).get(id);
        return f && done(f) ? f : undefined;
      },
      { timeoutMs: 8_000, everyMs: 25 },
    );
  const sendAndReceipt = async (phonePrefix: string, channel: 'sms' | 'voice', status: ReceiptStatus) => {
    const account = await p.openAccount({ deposit: 1_000_000n, testCredits: 0 });
    const { otpId } = await p.send(account, nextPhone([phonePrefix]), { channel });
    const routed = await facts(otpId, 'routed', (f) => f.otpEvents.some((e) => e.type === 'Routed'));
    const r = routed.otpEvents.find((e) => e.type === 'Routed')!.data as { provider: string; providerMessageId: string };
    await p.publishReceipt({ provider: r.provider, providerMessageId: r.providerMessageId, status, raw: `stat:${status}`, at: new Date().toISOString() });
    await facts(otpId, `receipt ${status} recorded`, (f) => f.otpEvents.some((e) => e.type === 'ReceiptReceived'));
    return otpId;
  };
  /** The OTP's settlements while the gate is shut: once settled if `expected`, else after half a second. */
  const settledWhileShut = async (otpId: string, expected: boolean) => {
    if (expected) await facts(otpId, 'settled', (f) => f.settlements.length > 0).catch(() => undefined);
    else await new Promise((r) => setTimeout(r, 500));
    return (await p.ledger()).get(otpId)!.settlements.map((e) => e.type);
  };

  it(`delivered and answered receipts ${early ? 'settle while the settlement consumer is shut' : 'wait for the settlement consumer'}; a failure receipt waits either way; each OTP settles once`, async () => {
    const handle = jest.spyOn(p.runner, 'handle');
    /** Settlement commands taken for an OTP: by early settlement and by the settlement consumer. */
    const settlementCommands = (otpId: string) =>
      handle.mock.calls.filter(([stream, , command]) => {
        const c = command as { type?: string; otpId?: string };
        return stream.startsWith('account-') && c.otpId === otpId && (c.type === 'MarkDelivered' || c.type === 'RefundOtp');
      }).length;
    const delivered = await sendAndReceipt('098', 'sms', 'delivered');
    const answered = await sendAndReceipt('091', 'voice', 'answered');
    const failed = await sendAndReceipt('090', 'sms', 'undelivered');

    expect(await settledWhileShut(delivered, early)).toEqual(early ? ['Delivered'] : []);
    expect(await settledWhileShut(answered, early)).toEqual(early ? ['Delivered'] : []);
    // A failure receipt never settles early.
    expect(await settledWhileShut(failed, false)).toEqual([]);

    // The settlement consumer then gets the relay's messages: each OTP ends settled exactly once.
    gate.open();
    for (const [otpId, type] of [
      [delivered, 'Delivered'],
      [answered, 'Delivered'],
      [failed, 'Refunded'],
    ] as const) {
      await facts(otpId, type, (f) => f.settlements.length > 0);
    }
    await until('the settlement consumer is done', async () => ((await p.workers.consumerLag())[TOPICS.settlement]?.lag === 0 ? true : undefined), { timeoutMs: 8_000 });
    const ledger = await p.ledger();
    expect(ledger.get(delivered)!.settlements.map((e) => [e.type, (e.data as { via?: string }).via])).toEqual([['Delivered', 'receipt']]);
    expect(ledger.get(answered)!.settlements.map((e) => [e.type, (e.data as { via?: string }).via])).toEqual([['Delivered', 'voice_answer']]);
    expect(ledger.get(failed)!.settlements.map((e) => [e.type, (e.data as { reason?: string }).reason])).toEqual([['Refunded', 'undelivered']]);
    // One command each: settled early, the relay's message that followed took none.
    expect([settlementCommands(delivered), settlementCommands(answered), settlementCommands(failed)]).toEqual([1, 1, 1]);
    handle.mockRestore();
  });

  it('leaves an OTP the log expired before its delivered receipt to the settlement consumer, which refunds it in the log\'s order', async () => {
    const gated = settlementGate();
    const q = await startPipeline({ carriers: { providers: [{ kind: 'simulator', name: 'quiet', simulator: QUIET }] }, wrapBus: gated.wrap, workers: { settleOnReceipt } });
    try {
      const account = await q.openAccount({ deposit: 1_000_000n, testCredits: 0 });
      const { otpId } = await q.send(account, nextPhone(['098']), { channel: 'sms' });
      const routed = await until(`otp ${otpId} routed`, async () => (await q.ledger()).get(otpId)?.otpEvents.find((e) => e.type === 'Routed'), { timeoutMs: 8_000, everyMs: 25 });
      const r = routed.data as { provider: string; providerMessageId: string };
      await q.runner.handle(otpStream(otpId), otpDecider, { type: 'Expire', at: new Date().toISOString() }, { accountId: account });
      await q.publishReceipt({ provider: r.provider, providerMessageId: r.providerMessageId, status: 'delivered', raw: 'stat:DELIVRD', at: new Date().toISOString() });
      await until(`otp ${otpId} receipt recorded`, async () => ((await q.ledger()).get(otpId)?.otpEvents.some((e) => e.type === 'ReceiptReceived') ? true : undefined), { timeoutMs: 8_000, everyMs: 25 });
      await new Promise((res) => setTimeout(res, 300));
      expect((await q.ledger()).get(otpId)!.settlements).toEqual([]);
      gated.open();
      const settled = await until(`otp ${otpId} settled`, async () => {
        const f = (await q.ledger()).get(otpId);
        return f && f.settlements.length > 0 ? f.settlements : undefined;
      }, { timeoutMs: 8_000, everyMs: 25 });
      expect(settled.map((e) => [e.type, (e.data as { reason?: string }).reason])).toEqual([['Refunded', 'expired']]);
    } finally {
      gated.open();
      await q.stop();
    }
  });
});
