import { jest } from '@jest/globals';
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

describe("commands that arrive while their stream's append waits for its group commit join it", () => {
  let dir: string;
  let store: SqliteEventStore;
  const OPEN: AccountCommand = { type: 'OpenAccount', accountId: 'acc1', name: 'x', testCredits: 1, at: AT };
  const stream = accountStream('acc1');
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nexo-cmd-join-'));
    store = SqliteEventStore.open(join(dir, 'events.db'));
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Lets the runner finish the batch it answered (its drain ends a turn later), so the next command starts one. */
  const idle = () => new Promise((r) => setImmediate(r));

  const types = async () => {
    const out: string[] = [];
    for await (const e of store.readStream(stream)) out.push(`${e.revision}:${e.type}`);
    return out;
  };

  it('one append for all of them, in arrival order; each answered after it commits, a refusal too, and a peek sees the state they leave', async () => {
    const runner = new CommandRunner(store);
    await runner.handle(stream, accountDecider, OPEN);
    await idle();
    const appendOpen = jest.spyOn(store, 'appendOpen');
    const append = jest.spyOn(store, 'append');
    const settled: string[] = [];
    const track = <T>(name: string, p: Promise<T>) => p.then(
      (v) => (settled.push(name), v),
      (e: unknown) => {
        settled.push(name);
        throw e;
      },
    );
    // The first is decided and its append queued at once (the state is cached); the rest join it.
    const first = track('first', runner.handle(stream, accountDecider, sendOtp(1)));
    const refused = track('refused', runner.handle(stream, accountDecider, sendOtp(2)));
    const delivered = track('delivered', runner.handle(stream, accountDecider, { type: 'MarkDelivered', otpId: 'otp1', via: 'receipt', at: AT }));
    const peek = track('peek', runner.peek(stream, accountDecider));
    const [a, b, c, d] = await Promise.allSettled([first, refused, delivered, peek]);
    expect(appendOpen).toHaveBeenCalledTimes(1);
    expect(append).not.toHaveBeenCalled();
    expect(settled).toEqual(['first', 'refused', 'delivered', 'peek']);
    expect(a).toMatchObject({ status: 'fulfilled', value: { revision: 3n } });
    expect((a as PromiseFulfilledResult<{ events: AccountEvent[] }>).value.events.map((e) => e.type)).toEqual(['OtpRequested', 'Charged']);
    // The only test credit went to otp1: otp2 is refused, as it would have been a moment later.
    expect(b).toMatchObject({ status: 'rejected', reason: { code: 'insufficient_balance' } });
    expect((c as PromiseFulfilledResult<{ events: AccountEvent[] }>).value.events.map((e) => e.type)).toEqual(['Delivered']);
    expect(d).toMatchObject({ status: 'fulfilled', value: { events: [], revision: 3n } });
    expect((d as PromiseFulfilledResult<{ state: { open: Map<string, unknown> } }>).value.state.open.has('otp1')).toBe(false);
    expect(await types()).toEqual(['0:AccountOpened', '1:OtpRequested', '2:Charged', '3:Delivered']);
  });

  it('a conflict fails the append with what joined it, and the runner decides them all again on the current stream, in order', async () => {
    const a = new CommandRunner(store);
    const b = new CommandRunner(store);
    await a.handle(stream, accountDecider, { ...OPEN, testCredits: 5 });
    await b.peek(stream, accountDecider);
    await idle();
    // b's send is queued first; a's append, decided on the state before it, fails in the same commit.
    const other = b.handle(stream, accountDecider, sendOtp(1));
    const mine = a.handle(stream, accountDecider, sendOtp(2));
    const joined = a.handle(stream, accountDecider, sendOtp(3));
    const appendOpen = jest.spyOn(store, 'appendOpen');
    await Promise.all([other, mine, joined]);
    // a's first attempt was opened before the spy; its retry is one more append, with both sends.
    expect(appendOpen).toHaveBeenCalledTimes(1);
    expect(await types()).toEqual(['0:AccountOpened', '1:OtpRequested', '2:Charged', '3:OtpRequested', '4:Charged', '5:OtpRequested', '6:Charged']);
    const otps: string[] = [];
    for await (const e of store.readStream(stream)) if (e.type === 'OtpRequested') otps.push((e.data as { otpId: string }).otpId);
    expect(otps).toEqual(['otp1', 'otp2', 'otp3']);
    expect((await new CommandRunner(store).peek(stream, accountDecider)).state.testCreditsLeft).toBe(2);
  });

  it('nothing joins an append that has gone to the writer: the command waits for it and takes the next commit', async () => {
    const runner = new CommandRunner(store);
    await runner.handle(stream, accountDecider, { ...OPEN, testCredits: 5 });
    await idle();
    const appendOpen = jest.spyOn(store, 'appendOpen');
    const first = runner.handle(stream, accountDecider, sendOtp(1));
    // The flush takes the queued append on the next turn of the event loop.
    await idle();
    const second = runner.handle(stream, accountDecider, sendOtp(2));
    await Promise.all([first, second]);
    expect(appendOpen).toHaveBeenCalledTimes(2);
    expect((await second).revision).toBe(4n);
  });

  it('a store without appendOpen (EventStoreDB) runs each batch as before', async () => {
    const plain = new Proxy(store, {
      get: (target, key) => {
        if (key === 'appendOpen') return undefined;
        const value = Reflect.get(target, key) as unknown;
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const runner = new CommandRunner(plain);
    await runner.handle(stream, accountDecider, { ...OPEN, testCredits: 5 });
    await idle();
    const append = jest.spyOn(store, 'append');
    await Promise.all([1, 2, 3].map((i) => runner.handle(stream, accountDecider, sendOtp(i))));
    // The first alone, then the two that queued behind it as one batch.
    expect(append).toHaveBeenCalledTimes(2);
    expect(await types()).toHaveLength(7);
  });
});

