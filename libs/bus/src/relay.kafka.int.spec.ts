/**
 * The relay publishing to Kafka (kafkajs on librdkafka's mock cluster, see
 * testing/kafka-mock.cluster.ts) rather than to the embedded bus: no shared
 * transaction, so the promise is at least once. Pages here are the relay's
 * default size (1,000 events), one publish each; the checkpoint lives in the
 * service's SQLite file as in production.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteEventStore, type RecordedEvent } from '#eventstore';
import { until } from '#testing';
import { KafkaMessageBus } from './adapters/kafka.message-bus.js';
import type { ConsumedMessage, MessageBus, OutgoingMessage } from './message-bus.port.js';
import { Relay, type RelayRoute } from './relay.js';
import { startKafkaMockCluster, type KafkaMockCluster } from './testing/kafka-mock.cluster.js';
import { describeWithKcat, fastKafkaOptions } from './testing/kafka-test.support.js';

const run = randomUUID().slice(0, 8);
let names = 0;
const fresh = (label: string) => `relay.${label}.${run}.${++names}`;

/** Every event to `topic`, keyed by the phone hash it carries; the value says where it sits in the log. */
const routeTo =
  (topic: string): RelayRoute =>
  (e: RecordedEvent) => [{ topic, message: { key: (e.data as { phoneHash: string }).phoneHash, value: String(e.position) } }];

/** A TCP pipe to the mock cluster, opened only when `open()` is called: a bootstrap address that starts answering late. */
function lateBroker(upstream: string): Promise<{ port: number; open(): Promise<void>; close(): Promise<void> }> {
  const [host, upstreamPort] = upstream.split(':');
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  return new Promise((resolve, reject) => {
    // Reserve a free port, then free it: nothing answers there until open().
    const probe = createServer().once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const port = (probe.address() as { port: number }).port;
      probe.close(() =>
        resolve({
          port,
          open: () =>
            new Promise<void>((ok, fail) => {
              server = createServer((client) => {
                const up = connect(Number(upstreamPort), host);
                sockets.add(client).add(up);
                const drop = () => {
                  client.destroy();
                  up.destroy();
                };
                client.on('error', drop).on('close', drop).pipe(up);
                up.on('error', drop).on('close', drop).pipe(client);
              });
              server.once('error', fail).listen(port, '127.0.0.1', () => ok());
            }),
          close: () =>
            new Promise<void>((done) => {
              for (const s of sockets) s.destroy();
              if (server?.listening) server.close(() => done());
              else done();
            }),
        }),
      );
    });
  });
}

describeWithKcat('Relay: event log → Kafka', () => {
  let cluster: KafkaMockCluster;
  let dir: string;
  let file: string;
  let store: SqliteEventStore;
  const buses: MessageBus[] = [];
  const relays: Relay[] = [];
  const opened: Database.Database[] = [];
  const cleanups: (() => Promise<void>)[] = [];

  const keep = <T>(list: T[], item: T): T => (list.push(item), item);
  const kafka = (brokers = cluster.brokers, extra: Partial<ConstructorParameters<typeof KafkaMessageBus>[0]> = {}) =>
    keep(buses, new KafkaMessageBus({ ...fastKafkaOptions(brokers, 'nexo-relay-kafka'), ...extra }));
  const open = () => keep(opened, new Database(file, { timeout: 5_000 }));
  const relay = (...args: ConstructorParameters<typeof Relay>) => keep(relays, new Relay(...args));

  beforeAll(async () => {
    cluster = await startKafkaMockCluster();
  }, 15_000);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nexo-relay-kafka-'));
    file = join(dir, 'service.db');
    store = SqliteEventStore.open(file, { pollIntervalMs: 20 });
  });

  afterEach(async () => {
    await Promise.all(relays.splice(0).map((r) => r.stop()));
    await Promise.all(buses.splice(0).map((b) => b.close()));
    for (const c of cleanups.splice(0)) await c();
    for (const db of opened.splice(0)) if (db.open) db.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }, 20_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  /** `n` events over `phones` phones, ten to an append; returns the head position. */
  async function appendEvents(n: number, phones = 9): Promise<bigint> {
    let head = 0n;
    for (let i = 0; i < n; i += 10) {
      const events = Array.from({ length: Math.min(10, n - i) }, (_, j) => ({ type: 'OtpRequested', data: { phoneHash: `ph-${(i + j) % phones}` } }));
      head = (await store.append(`account-a${i % 7}`, events, 'any')).position;
    }
    return head;
  }

  /** Positions per key, as a fresh group reads them off the topic once `count` messages are there. */
  async function readTopic(topic: string, count: number): Promise<Map<string, string[]>> {
    const got: ConsumedMessage<string>[] = [];
    const c = await kafka().consume<string>(fresh('reader'), topic, async (b) => {
      got.push(...b);
    });
    await until(
      () => `${count} messages on ${topic}, got ${got.length}`,
      async () => got.length >= count && (await c.lag()) === 0,
      { timeoutMs: 15_000, everyMs: 20 },
    );
    await c.stop();
    expect(got).toHaveLength(count);
    const byKey = new Map<string, string[]>();
    for (const m of got) byKey.set(m.key, [...(byKey.get(m.key) ?? []), m.value]);
    return byKey;
  }

  /** What `positions` (in log order) look like split per key, as the topic must hold them. */
  async function perKey(positions: readonly string[]): Promise<Map<string, string[]>> {
    const keyOf = new Map<string, string>();
    for await (const e of store.readAll()) keyOf.set(String(e.position), (e.data as { phoneHash: string }).phoneHash);
    const out = new Map<string, string[]>();
    for (const p of positions) out.set(keyOf.get(p)!, [...(out.get(keyOf.get(p)!) ?? []), p]);
    return out;
  }

  async function logPositions(): Promise<string[]> {
    const out: string[] = [];
    for await (const e of store.readAll()) out.push(String(e.position));
    return out;
  }

  it('after dying between a 1,000-event publish and its checkpoint, republishes that page only and loses nothing', async () => {
    const topic = fresh('crash');
    const head = await appendEvents(2_500);
    const inner = kafka();
    const checkpointDb = open();
    let publishes = 0;
    let inFlight: string[] = [];
    // Kafka takes the page, then the process "dies": its checkpoint connection is gone.
    const dying: MessageBus = {
      publish: async (t: string, messages: readonly OutgoingMessage[]) => {
        await inner.publish(t, messages);
        if (++publishes === 2) {
          inFlight = messages.map((m) => m.value as string);
          checkpointDb.close();
        }
      },
      consume: (...args) => inner.consume(...args),
      health: () => inner.health(),
      close: async () => undefined,
    };
    const errors: unknown[] = [];
    const first = relay(store, dying, checkpointDb, routeTo(topic), { retryDelayMs: 60_000, onError: (e) => errors.push(e) });
    first.start();
    await until(
      () => 'the relay to die at its second checkpoint',
      () => errors.length > 0,
      { timeoutMs: 15_000, everyMs: 20 },
    );
    await first.stop();
    expect(inFlight).toHaveLength(1_000);

    const second = relay(store, inner, open(), routeTo(topic));
    second.start();
    await until(
      () => `checkpoint ${head}, at ${second.checkpoint}`,
      () => second.checkpoint === head,
      { timeoutMs: 15_000, everyMs: 20 },
    );

    const all = await logPositions();
    const cut = all.indexOf(inFlight[inFlight.length - 1]) + 1;
    // The log up to the page that died, that page again, then the rest: per key, in that order.
    const want = await perKey([...all.slice(0, cut), ...inFlight, ...all.slice(cut)]);
    expect(await readTopic(topic, all.length + inFlight.length)).toEqual(want);
  }, 30_000);

  it('keeps its page and retries while no broker answers, then publishes everything once, in key order', async () => {
    const topic = fresh('late');
    const late = await lateBroker(cluster.brokers[0]);
    cleanups.push(late.close);
    const head = await appendEvents(30);
    const errors: unknown[] = [];
    const bus = kafka([`127.0.0.1:${late.port}`], { connectionTimeoutMs: 300, retry: { retries: 1, initialRetryTimeMs: 50 } });
    const r = relay(store, bus, open(), routeTo(topic), { retryDelayMs: 100, onError: (e) => errors.push(e) });
    r.start();
    await until(
      () => `two refused pages, got ${errors.length}`,
      () => errors.length >= 2,
      { timeoutMs: 15_000, everyMs: 20 },
    );
    expect(errors[0]).toMatchObject({ name: 'BusError', code: 'unavailable' });
    expect(r.checkpoint).toBe(0n);

    await late.open();
    await until(
      () => `checkpoint ${head} once the broker answers, at ${r.checkpoint}`,
      () => r.checkpoint === head,
      { timeoutMs: 15_000, everyMs: 20 },
    );
    const all = await logPositions();
    expect(await readTopic(topic, all.length)).toEqual(await perKey(all));
  }, 30_000);
});
