/**
 * `/health/ready` of an API on Kafka (`KAFKA_BROKERS`, the distributed mode)
 * over real HTTP: ready while the brokers answer; not ready, saying the bus
 * is why, once they are gone, each probe still answering within a second.
 * The broker is librdkafka's mock cluster started by kcat
 * (libs/bus/src/testing/kafka-mock.cluster.ts); the log is the SQLite one,
 * which readiness treats the same.
 */
import { startKafkaMockCluster, type KafkaMockCluster } from '../../../libs/bus/src/testing/kafka-mock.cluster.js';
import { describeWithKcat, probeUntilNotReady } from '../../../libs/bus/src/testing/kafka-test.support.js';
import { get, startServer, type TestServer } from './harness.js';

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

  it('is ready while the brokers answer, and not ready within a second of each probe once the cluster is killed', async () => {
    const ready = await get(server.base, '/health/ready');
    expect({ status: ready.status, body: await ready.json() }).toEqual({
      status: 200,
      body: { ok: true, store: true, bus: true, projection_lag_events: 0, projection_lag_seconds: 0 },
    });

    await cluster.kill();
    const { body, slowestMs } = await probeUntilNotReady(server.base);
    expect(body).toEqual({ ok: false, store: true, bus: false, bus_error: expect.stringMatching(/^kafka: /), projection_lag_events: 0, projection_lag_seconds: 0 });
    expect(slowestMs).toBeLessThan(1_000);
    // Alive all the same: an orchestrator takes it out of rotation, it does not restart it.
    expect((await get(server.base, '/health/live')).status).toBe(200);
  }, 30_000);
});
