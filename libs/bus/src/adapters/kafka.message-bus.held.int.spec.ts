/**
 * The Kafka adapter's answer to a poison message, with a held-message store
 * (`holdIn`), against librdkafka's mock cluster: a key whose handler keeps
 * failing, or whose value is not JSON, is held aside in the store with every
 * later message of its key, so the other keys of its partition go on; it is
 * released in order once it goes through, and a restart keeps it. The keys
 * are picked with kafkajs's own partitioner to share the poison's partition
 * (the mock makes four per topic), so "the other keys" are the ones that
 * blocking would have stopped.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import kafkajs from 'kafkajs';
import { StoreUnavailableError } from '#eventstore';
import { recordCommitLevels, until } from '#testing';
import { startKafkaMockCluster, type KafkaMockCluster } from '../testing/kafka-mock.cluster.js';
import { describeWithKcat, fastKafkaOptions, sendForeign } from '../testing/kafka-test.support.js';
import { BusError, type ConsumedMessage, type Consumer } from '../message-bus.port.js';
import { KafkaMessageBus, type KafkaBusOptions } from './kafka.message-bus.js';

interface Payload {
  n: number;
}

const run = randomUUID().slice(0, 8);
let names = 0;
const fresh = (label: string) => `held.${label}.${run}.${++names}`;

const PARTITIONS = 4;
const partitioner = kafkajs.Partitioners.DefaultPartitioner();
const partitionOf = (key: string) =>
  partitioner({
    topic: 'any',
    partitionMetadata: Array.from({ length: PARTITIONS }, (_, partitionId) => ({ partitionId, leader: 1, replicas: [1], isr: [1], partitionErrorCode: 0 })),
    message: { key, value: null },
  });
/** `n` keys other than `key` that land on its partition. */
const neighbours = (key: string, n: number) => {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) if (partitionOf(`k${i}`) === partitionOf(key)) out.push(`k${i}`);
  return out;
};

const label = (m: ConsumedMessage<Payload>) => `${m.key}#${m.value.n}`;

describeWithKcat('Kafka bus: holding a poison key aside (mock cluster, SQLite store)', () => {
  let cluster: KafkaMockCluster;
  let dir: string;
  let db: Database.Database;
  const buses: KafkaMessageBus[] = [];
  const consumers: Consumer[] = [];
  const bus = (extra: Partial<KafkaBusOptions> = {}) => {
    const b = new KafkaMessageBus({ ...fastKafkaOptions(cluster.brokers, 'nexo-bus-held'), holdIn: db, holdAfter: 2, maxHoldRetryMs: 200, ...extra });
    buses.push(b);
    return b;
  };
  const heldRows = () => db.prepare<[], { n: number }>('SELECT count(*) AS n FROM bus_kafka_held').get()!.n;

  beforeAll(async () => {
    cluster = await startKafkaMockCluster();
  }, 15_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nexo-kafka-held-'));
    db = new Database(join(dir, 'worker.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
  });

  afterEach(async () => {
    await Promise.all(consumers.splice(0).map((c) => c.stop()));
    await Promise.all(buses.splice(0).map((b) => b.close()));
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }, 20_000);

  it('holds nothing while the store is down, even a batch of one key: the message stays on Kafka and goes through once it is back', async () => {
    const topic = fresh('outage');
    const holds: string[] = [];
    const b = bus({ onHold: (e) => holds.push(e.key) });
    await b.publish(topic, [{ key: 'acc_1', value: { n: 0 } }]);
    let down = true;
    let tries = 0;
    const handled: ConsumedMessage<Payload>[] = [];
    const consumer = await b.consume<Payload>(fresh('g'), topic, async (batch) => {
      tries += 1;
      if (down) throw new StoreUnavailableError('event store unreachable (test)');
      handled.push(...batch);
    });
    consumers.push(consumer);
    // Past holdAfter (2) several times over.
    await until(() => `six tries, got ${tries}`, () => tries >= 6, { timeoutMs: 15_000, everyMs: 20 });
    expect(holds).toEqual([]);
    expect(await consumer.held!()).toBe(0);
    expect(heldRows()).toBe(0);
    expect(await consumer.lag()).toBe(1);
    down = false;
    await until(() => 'handled once the store is back', () => handled.length === 1, { timeoutMs: 15_000, everyMs: 20 });
    await until(() => 'lag 0', async () => (await consumer.lag()) === 0, { timeoutMs: 15_000, everyMs: 20 });
  }, 30_000);

  it('lets the other keys of its partition through, holds the failing key\'s later messages behind it, and releases them in order', async () => {
    const topic = fresh('poison');
    const others = neighbours('poison', 3);
    const holds: { key: string; messages: number }[] = [];
    const b = bus({ onHold: (e) => holds.push({ key: e.key, messages: e.messages }) });
    const commits = recordCommitLevels(db);
    await b.publish(topic, [
      { key: 'poison', value: { n: 0 } },
      ...others.map((key) => ({ key, value: { n: 0 } })),
      { key: 'poison', value: { n: 1 } },
      ...others.map((key) => ({ key, value: { n: 1 } })),
    ]);
    let fixed = false;
    const handled: ConsumedMessage<Payload>[] = [];
    const consumer = await b.consume<Payload>(fresh('g'), topic, async (batch) => {
      if (!fixed && batch.some((m) => m.key === 'poison')) throw new Error('poison cannot be handled yet (test)');
      handled.push(...batch);
    });
    consumers.push(consumer);

    try {
      await until(
        () => `the ${others.length * 2} messages of the poison's neighbours handled, got ${handled.map(label)}`,
        () => handled.length >= others.length * 2,
        { timeoutMs: 15_000, everyMs: 20 },
      );
      expect(new Set(handled.map((m) => m.partition))).toEqual(new Set([partitionOf('poison')]));
      for (const key of others) expect(handled.filter((m) => m.key === key).map((m) => m.value.n)).toEqual([0, 1]);
      expect(holds.map((h) => h.key)).toEqual(['poison']);
      expect(commits.levels).toContain(2);
      expect(await consumer.held!()).toBe(2);
      await until(
        () => 'lag to be the 2 held messages once the partition is committed past them',
        async () => (await consumer.lag()) === 2,
        { timeoutMs: 15_000, everyMs: 20 },
      );

      // A later message of the held key goes behind it, not to the handler.
      await b.publish(topic, [{ key: 'poison', value: { n: 2 } }, { key: others[0], value: { n: 2 } }]);
      await until(
        () => `the neighbour's later message handled, got ${handled.map(label)}`,
        () => handled.some((m) => label(m) === `${others[0]}#2`),
        { timeoutMs: 15_000, everyMs: 20 },
      );
      await until(
        () => 'the later poison message held too',
        async () => (await consumer.held!()) === 3,
        { timeoutMs: 15_000, everyMs: 20 },
      );
      expect(handled.some((m) => m.key === 'poison')).toBe(false);

      fixed = true;
      await until(
        () => `the held key released, got ${handled.filter((m) => m.key === 'poison').map(label)}`,
        () => handled.some((m) => label(m) === 'poison#2'),
        { timeoutMs: 15_000, everyMs: 20 },
      );
      expect(handled.filter((m) => m.key === 'poison').map((m) => m.value.n)).toEqual([0, 1, 2]);
      await until(
        () => 'lag 0 and nothing held',
        async () => (await consumer.lag()) === 0 && (await consumer.held!()) === 0,
        { timeoutMs: 15_000, everyMs: 20 },
      );
      expect(heldRows()).toBe(0);

      // Released: the key's next message goes straight through.
      await b.publish(topic, [{ key: 'poison', value: { n: 3 } }]);
      await until(
        () => 'a later message of the released key handled',
        () => handled.some((m) => label(m) === 'poison#3'),
        { timeoutMs: 15_000, everyMs: 20 },
      );
    } finally {
      commits.restore();
    }
  }, 40_000);

  it('holds a value that is not JSON with its key\'s later messages, reported as a rejected BusError, and lets the partition go on', async () => {
    const topic = fresh('foreign');
    const [neighbour] = neighbours('x', 1);
    const errors: unknown[] = [];
    const holds: string[] = [];
    const b = bus({ onError: (error) => errors.push(error), onHold: (e) => holds.push(e.key) });
    await sendForeign(cluster.brokers, topic, [{ key: 'x', value: 'not json {' }]);
    await b.publish(topic, [
      { key: 'x', value: { n: 1 } },
      { key: neighbour, value: { n: 0 } },
    ]);
    const handled: ConsumedMessage<Payload>[] = [];
    const consumer = await b.consume<Payload>(fresh('g'), topic, async (batch) => {
      handled.push(...batch);
    });
    consumers.push(consumer);

    await until(
      () => `the neighbour handled, got ${handled.map(label)}`,
      () => handled.some((m) => m.key === neighbour),
      { timeoutMs: 15_000, everyMs: 20 },
    );
    expect(handled.some((m) => m.key === 'x')).toBe(false);
    expect(holds).toEqual(['x']);
    expect(errors[0]).toBeInstanceOf(BusError);
    expect(errors[0]).toMatchObject({ code: 'rejected', message: expect.stringMatching(/is not JSON/) });
    expect(await consumer.held!()).toBe(2);
    await until(
      () => 'lag to be the 2 held messages',
      async () => (await consumer.lag()) === 2,
      { timeoutMs: 15_000, everyMs: 20 },
    );
    // Still held at its next retries: nothing skips past it.
    const reported = errors.length;
    await until(
      () => 'the bad record retried and reported again',
      () => errors.length > reported,
      { timeoutMs: 15_000, everyMs: 20 },
    );
    expect(handled.some((m) => m.key === 'x')).toBe(false);
    expect(await consumer.held!()).toBe(2);
  }, 30_000);

  it('keeps held messages across a restart (a new bus on the same store) and releases them there, in order', async () => {
    const topic = fresh('restart');
    const group = fresh('g');
    const [neighbour] = neighbours('poison', 1);
    let fixed = false;
    const handled: ConsumedMessage<Payload>[] = [];
    const handler = async (batch: ConsumedMessage<Payload>[]) => {
      if (!fixed && batch.some((m) => m.key === 'poison')) throw new Error('poison (test)');
      handled.push(...batch);
    };
    const first = bus();
    await first.publish(topic, [
      { key: 'poison', value: { n: 0 } },
      { key: neighbour, value: { n: 0 } },
    ]);
    const before = await first.consume<Payload>(group, topic, handler);
    await until(
      () => 'the neighbour handled and the poison held',
      async () => handled.some((m) => m.key === neighbour) && (await before.held!()) === 1 && (await before.lag()) === 1,
      { timeoutMs: 15_000, everyMs: 20 },
    );
    await first.close();

    // The process comes back: a new connection to the same file, a new bus.
    db.close();
    db = new Database(join(dir, 'worker.db'));
    const second = bus();
    await second.publish(topic, [
      { key: 'poison', value: { n: 1 } },
      { key: neighbour, value: { n: 1 } },
    ]);
    const after = await second.consume<Payload>(group, topic, handler);
    consumers.push(after);
    await until(
      () => `the neighbour's next message handled and the poison's held behind the first, got ${handled.map(label)}`,
      async () => handled.some((m) => label(m) === `${neighbour}#1`) && (await after.held!()) === 2,
      { timeoutMs: 15_000, everyMs: 20 },
    );
    expect(handled.some((m) => m.key === 'poison')).toBe(false);

    fixed = true;
    await until(
      () => `the held key released after the restart, got ${handled.map(label)}`,
      async () => handled.some((m) => label(m) === 'poison#1') && (await after.lag()) === 0,
      { timeoutMs: 15_000, everyMs: 20 },
    );
    expect(handled.filter((m) => m.key === 'poison').map((m) => m.value.n)).toEqual([0, 1]);
    expect(await after.held!()).toBe(0);
  }, 40_000);
});
