import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accountDecider, accountStream, type AccountCommand, DomainError, type AccountEvent, formatUsd } from '#domain';
import { CommandRunner } from './command-runner.js';
import { SqliteEventStore } from './adapters/sqlite.event-store.js';
import { ConcurrencyError } from './event-store.port.js';

const AT = '2026-11-25T10:00:00.000Z';
const hash = (n: number) => n.toString(16).padStart(64, '0');
const sealed = 'k1:AAAA';

function sendOtp(i: number): AccountCommand {
  return {
    type: 'SendOtp',
    price: 22_000n,
    otp: {
      otpId: `otp${i}`,
      phone: sealed,
      phoneHash: hash(i),
      phoneMasked: '+8491****678',
      carrier: 'vinaphone',
      channel: 'sms',
      code: sealed,
      at: AT,
    },
  };
}

describe('command path on one account stream', () => {
  let dir: string;
  let store: SqliteEventStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nexo-cmd-'));
    store = SqliteEventStore.open(join(dir, 'events.db'));
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('cached: the folded state at once, without queueing behind commands; nothing for a stream it does not hold or another decider', async () => {
    const runner = new CommandRunner(store);
    const stream = accountStream('acc1');
    expect(runner.cached(stream, accountDecider)).toBeUndefined();
    await runner.handle(stream, accountDecider, { type: 'OpenAccount', accountId: 'acc1', name: 'x', testCredits: 5, at: AT });
    await runner.handle(stream, accountDecider, sendOtp(1));
    expect(runner.cached(stream, accountDecider)?.open.get('otp1')).toMatchObject({ amount: 22_000n, carrier: 'vinaphone', channel: 'sms', requestedAt: AT });
    const other = { ...accountDecider };
    expect(runner.cached(stream, other)).toBeUndefined();
  });

  it('I3: 10,000 concurrent sends against a balance covering 5,000 charge exactly 5,000 and leave 0', async () => {
    const runner = new CommandRunner(store);
    const stream = accountStream('acc1');
    await runner.handle(stream, accountDecider, { type: 'OpenAccount', accountId: 'acc1', name: 'x', testCredits: 0, at: AT });
    await runner.handle(stream, accountDecider, {
      type: 'CreditDeposit',
      chainId: 1,
      token: `0x${'a'.repeat(40)}`,
      txHash: `0x${'b'.repeat(64)}`,
      logIndex: 0,
      blockNumber: 1,
      blockHash: `0x${'c'.repeat(64)}`,
      amount: (22_000n * 5_000n).toString(),
      at: AT,
    });
    const results = await Promise.allSettled(Array.from({ length: 10_000 }, (_, i) => runner.handle(stream, accountDecider, sendOtp(i))));
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r) => r.status === 'rejected');
    expect(ok).toHaveLength(5_000);
    expect(refused).toHaveLength(5_000);
    for (const r of refused) {
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(DomainError);
      expect((r as PromiseRejectedResult).reason).not.toBeInstanceOf(ConcurrencyError);
      expect(((r as PromiseRejectedResult).reason as DomainError).code).toBe('insufficient_balance');
    }
    // Replay the stored stream from scratch: the log, not the cache, is the truth.
    let state = accountDecider.initialState();
    let charges = 0;
    for await (const e of store.readStream(stream)) {
      state = accountDecider.evolve(state, e as unknown as AccountEvent);
      if (e.type === 'Charged') charges++;
    }
    expect(charges).toBe(5_000);
    expect(formatUsd(state.balance)).toBe('0.000000');
  });

  it('retries a conflict caused by a writer in another process and loses nothing', async () => {
    const stream = accountStream('acc2');
    const a = new CommandRunner(store);
    const b = new CommandRunner(store);
    await a.handle(stream, accountDecider, { type: 'OpenAccount', accountId: 'acc2', name: 'x', testCredits: 5, at: AT });
    await b.peek(stream, accountDecider);
    const sends = [a.handle(stream, accountDecider, sendOtp(1)), b.handle(stream, accountDecider, sendOtp(2)), a.handle(stream, accountDecider, sendOtp(3))];
    await Promise.all(sends);
    const final = await new CommandRunner(store).peek(stream, accountDecider);
    expect(final.state.testCreditsLeft).toBe(2);
    expect(final.revision).toBe(6n);
  });

  it('a decision that appends nothing, or refuses, is never made on state another writer has moved past', async () => {
    const stream = accountStream('acc3');
    const api = new CommandRunner(store);
    const pipeline = new CommandRunner(store);
    await api.handle(stream, accountDecider, { type: 'OpenAccount', accountId: 'acc3', name: 'x', testCredits: 2, at: AT });
    await pipeline.peek(stream, accountDecider);
    // Charged through the API: the pipeline's cached state has never seen otp1 or otp2.
    await api.handle(stream, accountDecider, sendOtp(1));
    await api.handle(stream, accountDecider, sendOtp(2));
    const delivered = await pipeline.handle(stream, accountDecider, { type: 'MarkDelivered', otpId: 'otp1', via: 'receipt', at: AT });
    expect(delivered.events.map((e) => e.type)).toEqual(['Delivered']);
    // Refunded by the pipeline: the API's cached state still shows no credit left, the stream one.
    await pipeline.handle(stream, accountDecider, { type: 'RefundOtp', otpId: 'otp2', reason: 'undelivered', at: AT });
    const resent = await api.handle(stream, accountDecider, sendOtp(3));
    expect(resent.events.map((e) => e.type)).toEqual(['OtpRequested', 'Charged']);
    // And a refusal on current state stays a refusal.
    await expect(api.handle(stream, accountDecider, sendOtp(4))).rejects.toBeInstanceOf(DomainError);
  });
});
