/**
 * `KafkaMessageBus.health()`, what readiness probes ask: a broker that
 * answers makes it ready; one that is gone or hangs makes it not ready, said
 * within the bound whatever kafkajs's own retries and timeouts would take.
 * The cluster is librdkafka's mock (testing/kafka-mock.cluster.ts) in a file
 * of its own, since these tests kill it; the hanging broker is a TCP server
 * that takes connections and never answers.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { until } from '#testing';
import { startKafkaMockCluster, type KafkaMockCluster } from '../testing/kafka-mock.cluster.js';
import { describeWithKcat, fastKafkaOptions } from '../testing/kafka-test.support.js';
import type { BusHealth } from '../message-bus.port.js';
import { KafkaMessageBus } from './kafka.message-bus.js';

const BOUND_MS = 300;
/** What a timer and the event loop may add to the bound on a busy machine. */
const SLACK_MS = 200;

async function timed(bus: KafkaMessageBus): Promise<{ health: BusHealth; ms: number }> {
  const t0 = performance.now();
  const health = await bus.health();
  return { health, ms: performance.now() - t0 };
}

describe('Kafka bus health against a broker that never answers', () => {
  let server: Server;
  const sockets = new Set<Socket>();
  beforeAll(async () => {
    server = createServer((s) => void sockets.add(s.on('error', () => undefined)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it('is not ready within the bound, while kafkajs would wait out its own timeouts (here 10 s)', async () => {
    const { port } = server.address() as { port: number };
    const bus = new KafkaMessageBus({ brokers: [`127.0.0.1:${port}`], connectionTimeoutMs: 10_000, requestTimeoutMs: 10_000, healthTimeoutMs: BOUND_MS });
    try {
      for (let i = 0; i < 3; i++) {
        const { health, ms } = await timed(bus);
        expect(health).toEqual({ ok: false, reason: `kafka: no broker answered within ${BOUND_MS} ms` });
        expect(ms).toBeLessThan(BOUND_MS + SLACK_MS);
      }
    } finally {
      await bus.close();
    }
  });
});

describeWithKcat('Kafka bus health on the mock cluster', () => {
  let cluster: KafkaMockCluster;
  beforeAll(async () => {
    cluster = await startKafkaMockCluster();
  }, 15_000);
  afterAll(async () => cluster.stop());

  it('is ready while the cluster answers, then not ready within the bound once its process is killed', async () => {
    const bus = new KafkaMessageBus({ ...fastKafkaOptions(cluster.brokers, 'nexo-health'), healthTimeoutMs: BOUND_MS, healthCacheMs: 100 });
    try {
      expect(await bus.health()).toEqual({ ok: true });
      await new Promise((r) => setTimeout(r, 150));
      // Past the cache time: a broker was asked again, on the connection the first question opened.
      expect(await bus.health()).toEqual({ ok: true });
      // A publish on the same bus: its producer is connected when the broker dies.
      await bus.publish('nexo.health.probe', [{ key: 'k', value: 1 }]);

      await cluster.kill();
      const slowest = { ms: 0 };
      const down = await until(
        'health to say the broker is gone',
        async () => {
          const { health, ms } = await timed(bus);
          slowest.ms = Math.max(slowest.ms, ms);
          return health.ok ? undefined : health;
        },
        { timeoutMs: 10_000, everyMs: 50 },
      );
      expect(down).toEqual({ ok: false, reason: expect.stringMatching(/^kafka: /) });
      // Every probe after the kill, and a few more, answered within the bound.
      for (let i = 0; i < 5; i++) {
        const { health, ms } = await timed(bus);
        slowest.ms = Math.max(slowest.ms, ms);
        expect(health.ok).toBe(false);
        await new Promise((r) => setTimeout(r, 60));
      }
      expect(slowest.ms).toBeLessThan(BOUND_MS + SLACK_MS);
    } finally {
      await bus.close();
    }
  }, 30_000);
});
