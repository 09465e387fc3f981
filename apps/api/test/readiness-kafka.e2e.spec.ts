/**
 * `/health/ready` of an API on Kafka (`KAFKA_BROKERS`, the distributed mode)
 * over real HTTP, its workers elsewhere: it reports the bus, and each probe
 * answers within a second with the brokers gone, but it stays ready: sends
 * need only the event store, and pulling every replica for Kafka would stop
 * them too.
 * The broker is librdkafka's mock cluster started by kcat
 * (libs/bus/src/testing/kafka-mock.cluster.ts); the log is the SQLite one,
 * which readiness treats the same.
 */
import { startKafkaMockCluster, type KafkaMockCluster } from '../../../libs/bus/src/testing/kafka-mock.cluster.js';
import { until } from '#testing';
import { describeWithKcat } from '../../../libs/bus/src/testing/kafka-test.support.js';
import { get, post, signup, startServer, type TestServer } from './harness.js';

describeWithKcat('API readiness on Kafka', () => {
  let cluster: KafkaMockCluster;
  let server: TestServer;

  beforeAll(async () => {
    cluster = await startKafkaMockCluster();
    server = await startServer({ NEXO_WORKERS: 'off', KAFKA_BROKERS: cluster.brokers.join(',') });
  }, 30_000);

  afterAll(async () => {
    await server?.stop();
    await cluster?.stop();
  }, 30_000);

  it('reports the bus, and stays ready (saying the bus is down, within a second) once the cluster is killed', async () => {
    const ready = await get(server.base, '/health/ready');
    expect({ status: ready.status, body: await ready.json() }).toEqual({
      status: 200,
      body: { ok: true, store: true, bus: true, projection_lag_events: 0, projection_lag_seconds: 0 },
    });

    await cluster.kill();
    let slowestMs = 0;
    const body = await until('the bus reported down', async () => {
      const t0 = performance.now();
      const res = await get(server.base, '/health/ready');
      slowestMs = Math.max(slowestMs, performance.now() - t0);
      expect(res.status).toBe(200);
      const b = (await res.json()) as { bus: boolean };
      return b.bus ? undefined : b;
    }, { timeoutMs: 15_000, everyMs: 50 });
    expect(body).toEqual({ ok: true, store: true, bus: false, bus_error: expect.stringMatching(/^kafka: /), projection_lag_events: 0, projection_lag_seconds: 0 });
    expect(slowestMs).toBeLessThan(1_000);
    // Sends need only the store.
    const { api_key } = await signup(server.base);
    expect((await post(server.base, '/api/v1/send-otp', api_key, { phone: '0912000999', code: '123456' })).status).toBe(200);
  }, 30_000);
});
