import { BusError, type ConsumedMessage } from '../message-bus.port.js';
import { DirectMessageBus } from './direct.message-bus.js';

// Not the MessageBus contract suite: this bus keeps nothing, so there is no second group, no
// resume after a restart and no lag; what it promises instead is below.
describe('DirectMessageBus: publish hands the messages to the consumer and resolves after it', () => {
  it('resolves a publish only once the handler has, with every message in order, split into batches', async () => {
    const bus = new DirectMessageBus();
    const batches: ConsumedMessage<number>[][] = [];
    let handled = 0;
    await bus.consume<number>('g', 't', async (batch) => {
      await new Promise((r) => setTimeout(r, 5));
      batches.push(batch);
      handled += batch.length;
    }, { batchSize: 3 });
    await bus.publish('t', [1, 2, 3, 4, 5, 6, 7].map((v) => ({ key: `k${v % 2}`, value: v, headers: { h: String(v) } })));
    expect(handled).toBe(7);
    expect(batches.map((b) => b.map((m) => m.value))).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
    const first = batches[0][0];
    expect(first).toEqual({ topic: 't', key: 'k1', value: 1, headers: { h: '1' }, offset: '1', partition: 0 });
    expect(batches.flat().map((m) => Number(m.offset))).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('runs publishes to a topic one after another, even when they are not awaited', async () => {
    const bus = new DirectMessageBus();
    const seen: number[] = [];
    await bus.consume<number>('g', 't', async (batch) => {
      await new Promise((r) => setTimeout(r, batch[0].value === 1 ? 20 : 0));
      seen.push(...batch.map((m) => m.value));
    });
    await Promise.all([bus.publish('t', [{ key: 'k', value: 1 }]), bus.publish('t', [{ key: 'k', value: 2 }])]);
    expect(seen).toEqual([1, 2]);
  });

  it('rejects the publish when the handler does, and takes the next publish all the same', async () => {
    const bus = new DirectMessageBus();
    let fail = true;
    const got: number[] = [];
    await bus.consume<number>('g', 't', async (batch) => {
      if (fail) throw new Error('disk full (test)');
      got.push(...batch.map((m) => m.value));
    });
    await expect(bus.publish('t', [{ key: 'k', value: 1 }])).rejects.toThrow('disk full (test)');
    fail = false;
    await bus.publish('t', [{ key: 'k', value: 1 }]);
    expect(got).toEqual([1]);
  });

  it('refuses a topic nobody consumes as unavailable (the publisher keeps it and retries)', async () => {
    const bus = new DirectMessageBus();
    const error = await bus.publish('t', [{ key: 'k', value: 1 }]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BusError);
    expect((error as BusError).retriable).toBe(true);
  });

  it('allows one consumer per topic; stop waits for the batch in hand, after which the topic has none', async () => {
    const bus = new DirectMessageBus();
    let finished = false;
    const c = await bus.consume('g', 't', async () => {
      await new Promise((r) => setTimeout(r, 30));
      finished = true;
    });
    await expect(bus.consume('other', 't', async () => undefined)).rejects.toThrow(/already has a consumer/);
    expect(await c.lag()).toBe(0);
    const publishing = bus.publish('t', [{ key: 'k', value: 1 }]);
    await c.stop();
    expect(finished).toBe(true);
    await publishing;
    await expect(bus.publish('t', [{ key: 'k', value: 2 }])).rejects.toBeInstanceOf(BusError);
  });

  it('is healthy until closed, then refuses to publish or consume', async () => {
    const bus = new DirectMessageBus();
    // Nothing outside this process to reach: consumed or not, the bus is ready.
    expect(await bus.health()).toEqual({ ok: true });
    await bus.close();
    expect(await bus.health()).toEqual({ ok: false, reason: 'bus is closed' });
    await expect(bus.publish('t', [{ key: 'k', value: 1 }])).rejects.toMatchObject({ code: 'closed' });
    await expect(bus.consume('g', 't', async () => undefined)).rejects.toMatchObject({ code: 'closed' });
  });
});
