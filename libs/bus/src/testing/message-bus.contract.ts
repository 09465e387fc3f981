/**
 * The behaviour every MessageBus adapter owes its consumers. An adapter's
 * spec calls `describeMessageBusContract` with a factory; the suite registers
 * the tests.
 *
 * Written to hold on a shared, long-lived broker too: every test uses topics
 * and groups of its own. Offsets are compared, never computed, and order is
 * checked per key, the only order the port promises.
 */
import { randomUUID } from 'node:crypto';
import { until } from '#testing';
import { BusError, type ConsumedMessage, type Consumer, type MessageBus, type OutgoingMessage } from '../message-bus.port.js';

export interface MessageBusFixture {
  bus: MessageBus;
  /** Releases whatever the factory made; must tolerate a bus the test already closed. */
  cleanup(): Promise<void>;
}

export type MessageBusFactory = () => Promise<MessageBusFixture>;

export interface MessageBusContractOptions {
  /** How long a test waits for messages it expects before failing with what is missing. */
  waitMs?: number;
  /** How long a stopped consumer is watched for stray deliveries. */
  quietMs?: number;
}

interface Payload {
  id: string;
  key: string;
  seq: number;
}

const run = randomUUID().slice(0, 8);
let names = 0;
/** A topic or group name no other test, run or process uses. */
const fresh = (label: string) => `contract.${label}.${run}.${++names}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `count` messages over `keys` keys, seq counting up per key, keys interleaved. */
function messages(prefix: string, keys: number, perKey: number, from = 0): OutgoingMessage[] {
  const out: OutgoingMessage[] = [];
  for (let seq = from; seq < from + perKey; seq++) {
    for (let k = 0; k < keys; k++) {
      const key = `${prefix}-k${k}`;
      out.push({ key, value: { id: `${key}#${seq}`, key, seq } satisfies Payload });
    }
  }
  return out;
}

const where = (m: ConsumedMessage) => `${m.partition}@${m.offset}`;

export function describeMessageBusContract(name: string, factory: MessageBusFactory, options: MessageBusContractOptions = {}): void {
  const waitMs = options.waitMs ?? 10_000;
  const quietMs = options.quietMs ?? 500;

  /** Everything a handler was given, batch by batch. */
  function recorder() {
    const batches: ConsumedMessage<Payload>[][] = [];
    const ids = () => new Set(batches.flat().map((m) => m.value.id));
    return {
      batches,
      ids,
      handler: async (batch: ConsumedMessage<Payload>[]) => {
        batches.push(batch);
      },
      until: (expected: readonly OutgoingMessage[]) =>
        until(
          () => `${expected.length} messages, got ${ids().size}`,
          () => {
            const got = ids();
            return expected.every((m) => got.has((m.value as Payload).id));
          },
          { timeoutMs: waitMs, everyMs: 20 },
        ),
    };
  }

  describe(`MessageBus contract: ${name}`, () => {
    let fx: MessageBusFixture;
    const consumers: Consumer[] = [];
    const consume: MessageBus['consume'] = async (...args) => {
      const c = await fx.bus.consume(...args);
      consumers.push(c);
      return c;
    };

    beforeEach(async () => {
      fx = await factory();
    });

    afterEach(async () => {
      await Promise.all(consumers.splice(0).map((c) => c.stop()));
      await fx.cleanup();
    });

    it('delivers what was published: topic, key, value, headers, a partition and an offset', async () => {
      const topic = fresh('roundtrip');
      await fx.bus.publish(topic, [
        { key: 'phone-1', value: { id: 'a', nested: { n: 1, s: 'đ' }, list: [1, 2] }, headers: { 'trace-id': 't-1', kind: 'otp' } },
        { key: 'phone-1', value: { id: 'b' } },
      ]);
      const got: ConsumedMessage[] = [];
      await consume(fresh('g'), topic, async (batch) => {
        got.push(...batch);
      });
      await until(
        () => `2 messages, got ${got.length}`,
        () => got.length >= 2,
        { timeoutMs: waitMs, everyMs: 20 },
      );
      expect(got.map((m) => ({ topic: m.topic, key: m.key, value: m.value, headers: m.headers }))).toEqual([
        { topic, key: 'phone-1', value: { id: 'a', nested: { n: 1, s: 'đ' }, list: [1, 2] }, headers: { 'trace-id': 't-1', kind: 'otp' } },
        { topic, key: 'phone-1', value: { id: 'b' }, headers: {} },
      ]);
      expect(got[0].partition).toBe(got[1].partition);
      expect(typeof got[0].offset).toBe('string');
      expect(BigInt(got[1].offset)).toBeGreaterThan(BigInt(got[0].offset));
    });

    it('keeps publish order within each key, under many keys and small batches', async () => {
      const topic = fresh('order');
      const all: OutgoingMessage[] = [];
      // Ten publishes, each carrying the next seq of every key in a different key order.
      for (let seq = 0; seq < 10; seq++) {
        const round = messages('order', 40, 1, seq);
        const rotated = [...round.slice((seq * 7) % round.length), ...round.slice(0, (seq * 7) % round.length)];
        await fx.bus.publish(topic, rotated);
        all.push(...rotated);
      }
      const r = recorder();
      await consume(fresh('g'), topic, r.handler, { batchSize: 25 });
      await r.until(all);

      expect(r.batches.every((b) => b.length <= 25)).toBe(true);
      const seqs = new Map<string, number[]>();
      const partitions = new Map<string, Set<number>>();
      for (const m of r.batches.flat()) {
        seqs.set(m.key, [...(seqs.get(m.key) ?? []), m.value.seq]);
        partitions.set(m.key, (partitions.get(m.key) ?? new Set()).add(m.partition));
      }
      expect(seqs.size).toBe(40);
      for (const [key, s] of seqs) expect({ key, s }).toEqual({ key, s: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] });
      // One owner per key: a key never spreads over partitions.
      for (const p of partitions.values()) expect(p.size).toBe(1);
    });

    it('gives every message to each of two groups', async () => {
      const topic = fresh('groups');
      const all = messages('groups', 5, 10);
      await fx.bus.publish(topic, all);
      const a = recorder();
      const b = recorder();
      await Promise.all([consume(fresh('ga'), topic, a.handler), consume(fresh('gb'), topic, b.handler)]);
      await Promise.all([a.until(all), b.until(all)]);
      expect(a.ids().size).toBe(all.length);
      expect(b.ids().size).toBe(all.length);
    });

    it('hands back the same messages after a handler rejects, and commits nothing for them', async () => {
      const topic = fresh('retry');
      const group = fresh('g');
      const all = messages('retry', 4, 5);
      await fx.bus.publish(topic, all);

      const attempts: ConsumedMessage<Payload>[][] = [];
      const failing = await consume<Payload>(group, topic, async (batch) => {
        attempts.push(batch);
        throw new Error('effect not durable (test)');
      });
      const sameBatchTwice = () => {
        const seen = new Map<string, string>();
        for (const b of attempts) {
          const first = where(b[0]);
          const content = JSON.stringify(b.map((m) => [m.key, m.value, m.offset, m.partition]));
          if (seen.get(first) === content) return true;
          if (!seen.has(first)) seen.set(first, content);
        }
        return false;
      };
      await until(() => `one batch handed over twice; ${attempts.length} attempts so far`, sameBatchTwice, { timeoutMs: waitMs, everyMs: 20 });
      await failing.stop();

      // Nothing was committed: a consumer of the same group starts from the first message.
      const r = recorder();
      await consume(group, topic, r.handler);
      await r.until(all);
      expect(r.ids().size).toBe(all.length);
      await until(
        () => 'lag 0 once everything is handled',
        async () => (await consumers[consumers.length - 1].lag()) === 0,
        { timeoutMs: waitMs, everyMs: 20 },
      );
    });

    it('resumes after the last commit when a consumer restarts: nothing lost, at most its last batch again', async () => {
      const topic = fresh('restart');
      const group = fresh('g');
      const before = messages('restart', 6, 10);
      await fx.bus.publish(topic, before);

      const first: ConsumedMessage<Payload>[][] = [];
      const a = await consume<Payload>(
        group,
        topic,
        async (batch) => {
          await sleep(30);
          first.push(batch);
        },
        { batchSize: 6 },
      );
      await until(
        () => `two batches handled, got ${first.length}`,
        () => first.length >= 2,
        { timeoutMs: waitMs, everyMs: 20 },
      );
      await a.stop();
      const handledByA = first.flat();

      const after = messages('restart', 6, 3, 10);
      await fx.bus.publish(topic, after);
      const r = recorder();
      await consume(group, topic, r.handler);
      const total = before.length + after.length;
      const union = () => new Set([...handledByA.map((m) => m.value.id), ...r.ids()]);
      // Nothing lost: A's and B's deliveries together cover everything.
      await until(
        () => `${total} messages between both consumers, got ${union().size}`,
        () => union().size === total,
        { timeoutMs: waitMs, everyMs: 20 },
      );
      expect(handledByA.length).toBeLessThan(before.length);

      // Redelivered: only messages of the last batch A handled on their partition.
      const lastBatchOf = new Map<number, Set<string>>();
      for (const b of first) lastBatchOf.set(b[0].partition, new Set(b.map((m) => m.value.id)));
      const byA = new Set(handledByA.map((m) => m.value.id));
      const again = r.batches.flat().filter((m) => byA.has(m.value.id));
      for (const m of again) expect({ id: m.value.id, inLastBatch: lastBatchOf.get(m.partition)?.has(m.value.id) ?? false }).toEqual({ id: m.value.id, inLastBatch: true });
    });

    it('stops: no handler call after stop() resolves, and what comes later waits as lag', async () => {
      const topic = fresh('stop');
      const r = recorder();
      const consumer = await consume(fresh('g'), topic, r.handler);
      const first = messages('stop', 1, 5);
      await fx.bus.publish(topic, first);
      await r.until(first);
      await until(
        () => 'lag 0 after the first messages',
        async () => (await consumer.lag()) === 0,
        { timeoutMs: waitMs, everyMs: 20 },
      );
      await consumer.stop();
      const calls = r.batches.length;

      await fx.bus.publish(topic, messages('stop', 1, 4, 5));
      await sleep(quietMs);
      expect(r.batches.length).toBe(calls);
      expect(await consumer.lag()).toBe(4);
      await expect(consumer.stop()).resolves.toBeUndefined();
    });

    it('is healthy while open, and says it is closed once closed', async () => {
      expect(await fx.bus.health()).toEqual({ ok: true });
      await fx.bus.close();
      expect(await fx.bus.health()).toEqual({ ok: false, reason: 'bus is closed' });
    });

    it('refuses to publish or consume once closed, with a BusError', async () => {
      const topic = fresh('closed');
      await fx.bus.close();
      const publishing = fx.bus.publish(topic, messages('closed', 1, 1));
      await expect(publishing).rejects.toBeInstanceOf(BusError);
      await expect(publishing).rejects.toMatchObject({ code: 'closed', retriable: false });
      await expect(fx.bus.consume(fresh('g'), topic, async () => undefined)).rejects.toMatchObject({ code: 'closed' });
    });
  });
}
