import type { OutgoingMessage } from '#bus';
import type { Receipt } from '#carriers';
import type { WorkerDeps } from './worker.deps.js';
import { receiptPublisher } from './workers.js';

/** A bus that records what is published, resolving (or failing) each publish when the test says. */
function fakeBus() {
  const published: { topic: string; keys: string[] }[] = [];
  let fail: Error | undefined;
  const bus = {
    publish: async (topic: string, messages: readonly OutgoingMessage[]) => {
      if (fail) throw fail;
      published.push({ topic, keys: messages.map((m) => m.key) });
    },
  };
  return { deps: { bus } as unknown as Pick<WorkerDeps, 'bus'>, published, failWith: (e: Error | undefined) => (fail = e) };
}

const receipt = (providerMessageId: string, status: Receipt['status'] = 'delivered'): Receipt => ({
  provider: 'sim',
  providerMessageId,
  status,
  raw: 'stat:DELIVRD',
  at: '2026-11-27T00:00:00.000Z',
});

/** A `take` whose calls the test finishes one by one. */
function controlledTake() {
  const calls: { value: { providerMessageId: string; status: string }; resolve(recorded?: boolean): void; reject(e: Error): void }[] = [];
  const take = (value: unknown) =>
    new Promise<boolean>((resolve, reject) =>
      calls.push({ value: value as { providerMessageId: string; status: string }, resolve: (recorded = true) => resolve(recorded), reject }),
    );
  return { take, calls };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('receiptPublisher', () => {
  it('publishes the receipts of one turn of the event loop together, keyed by message id', async () => {
    const { deps, published } = fakeBus();
    const publish = receiptPublisher(deps);
    await Promise.all([publish(receipt('m1')), publish(receipt('m2')), publish(receipt('m1', 'accepted'))]);
    expect(published).toEqual([{ topic: 'nexo.otp.receipts', keys: ['m1', 'm2', 'm1'] }]);
  });

  it('with the receipts worker here, hands each receipt to it instead, and resolves only once it is taken', async () => {
    const { deps, published } = fakeBus();
    const { take, calls } = controlledTake();
    const publish = receiptPublisher(deps, () => take);
    let done = false;
    const p = publish(receipt('m1')).then(() => (done = true));
    await tick();
    expect(calls.map((c) => c.value)).toEqual([expect.objectContaining({ provider: 'sim', providerMessageId: 'm1', status: 'delivered', raw: 'stat:DELIVRD' })]);
    expect(done).toBe(false);
    calls[0].resolve();
    await p;
    expect(published).toEqual([]);
  });

  it("takes one message's receipts one after another, in arrival order, and different messages' at once", async () => {
    const { deps } = fakeBus();
    const { take, calls } = controlledTake();
    const publish = receiptPublisher(deps, () => take);
    const all = Promise.all([publish(receipt('m1', 'accepted')), publish(receipt('m2')), publish(receipt('m1', 'delivered'))]);
    await tick();
    // m1's second receipt waits for its first; m2's goes at once.
    expect(calls.map((c) => `${c.value.providerMessageId}:${c.value.status}`)).toEqual(['m1:accepted', 'm2:delivered']);
    calls[1].resolve();
    await tick();
    expect(calls).toHaveLength(2);
    calls[0].resolve();
    await tick();
    expect(calls.map((c) => `${c.value.providerMessageId}:${c.value.status}`)).toEqual(['m1:accepted', 'm2:delivered', 'm1:delivered']);
    calls[2].resolve();
    await all;
  });

  it('publishes a receipt the worker could not take to the bus, for its consumer; fails only if the bus refuses it too', async () => {
    const { deps, published, failWith } = fakeBus();
    const { take, calls } = controlledTake();
    const publish = receiptPublisher(deps, () => take);
    const p = publish(receipt('m1'));
    await tick();
    calls[0].reject(new Error('log unavailable (test)'));
    await p;
    expect(published).toEqual([{ topic: 'nexo.otp.receipts', keys: ['m1'] }]);

    failWith(new Error('bus down (test)'));
    const q = publish(receipt('m2'));
    await tick();
    calls[1].reject(new Error('log unavailable (test)'));
    await expect(q).rejects.toThrow('bus down (test)');
  });

  it('publishes a receipt that names no OTP yet to the bus, whose consumer keeps it (synced to the disk) for a late match', async () => {
    const { deps, published } = fakeBus();
    const { take, calls } = controlledTake();
    const publish = receiptPublisher(deps, () => take);
    const p = publish(receipt('early'));
    await tick();
    calls[0].resolve(false);
    await p;
    expect(published).toEqual([{ topic: 'nexo.otp.receipts', keys: ['early'] }]);
  });

  it('uses the bus while the worker is not running here (before it starts, after it stops)', async () => {
    const { deps, published } = fakeBus();
    const publish = receiptPublisher(deps, () => undefined);
    await publish(receipt('m1'));
    expect(published).toEqual([{ topic: 'nexo.otp.receipts', keys: ['m1'] }]);
  });
});
