/**
 * The distributed worker while Kafka is out of reach, then back: the network
 * to the broker fails (every connection drops, new ones are closed at once),
 * or the broker hangs (its process stopped: connections open, nothing
 * answers). Either way for longer than kafkajs's retries, the group's session
 * timeout and a request timeout, while the API goes on appending accepted
 * OTPs to the log. Once the broker is back, every OTP must end delivered
 * exactly once, by itself: the relay publishes what it could not, the
 * consumers rejoin, the simulator hands its receipts again.
 *
 * How soon after the broker is back they flow again is mostly the mock's
 * group coordinator's: after a network outage it answered the consumers'
 * rejoin late or never, so kafkajs waited out its JoinGroup timeout (the
 * rebalance timeout + 5 s) once or twice: 4-25 s over seven runs here, 2-3 s
 * after a hang. The test allows a minute.
 *
 * Same setting as worker-process.e2e.spec.ts: librdkafka's mock cluster from
 * kcat (its proxy cuts the network; SIGSTOP hangs it) and the in-memory
 * stand-in of EventStoreDB's gRPC service; the test plays the API.
 */
import { until } from '#testing';
import { describeWithKcat, probeUntilNotReady, sleep } from '../../../libs/bus/src/testing/kafka-test.support.js';
import { type Distributed, startDistributed } from './distributed.harness.js';
import { readLedger } from './pipeline.harness.js';

const BEFORE = 10;
const DURING = 20;
/** Longer than the group's session timeout (2.5 s), kafkajs's retries (~2 s here) and a request timeout (5 s). */
const OUTAGE_MS = 12_000;
const deliveredOnce = (ids: string[]) => ids.map((id) => ({ id, settlements: ['Delivered'], charges: 1, routed: 1 }));

describeWithKcat('the distributed worker while Kafka is out of reach', () => {
  let d: Distributed | undefined;

  beforeAll(async () => {
    d = await startDistributed('kafka-outage', { kafka: { requestTimeoutMs: 5_000, connectionTimeoutMs: 1_000 } });
  }, 60_000);

  afterAll(async () => {
    d?.cluster.thaw();
    d?.cluster.reconnect();
    await d?.stop();
  }, 30_000);

  async function outage(name: string, begin: () => void, end: () => void): Promise<void> {
    const { worker, api, logs } = d!;
    const before = await d!.acceptOtps(BEFORE);
    expect(await d!.settlements(before, 30_000)).toEqual(deliveredOnce(before));

    begin();
    const t0 = Date.now();
    const { body } = await probeUntilNotReady(worker.url, { timeoutMs: 10_000 });
    expect(body).toMatchObject({ ok: false, store: true, bus: false });
    // The API goes on accepting: the log is up.
    const during = await d!.acceptOtps(DURING);
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - t0)));
    const settledMeanwhile = [...(await readLedger(api)).entries()].filter(([id, f]) => during.includes(id) && f.settlements.length > 0);
    expect(settledMeanwhile).toEqual([]);
    end();
    expect(await d!.settlements(during, 60_000)).toEqual(deliveredOnce(during));
    await until(`ready again after the ${name}`, async () => (await fetch(`${worker.url}/health/ready`)).status === 200, { timeoutMs: 15_000, everyMs: 100 });
    expect((await fetch(`${worker.url}/health/live`)).status).toBe(200);
    // kafkajs's failed tries that it makes again are warnings, not hundreds of errors (the failures it
    // gives up on are logged as errors by the relay and the consumers).
    const lines = logs.map((l) => JSON.parse(l) as { level: number; retryCount?: number; msg: string });
    expect(lines.filter((l) => l.level >= 50 && l.retryCount !== undefined)).toEqual([]);
    expect(lines.some((l) => l.level === 40 && l.retryCount !== undefined)).toBe(true);
  }

  it('delivers every OTP accepted during a network outage to the broker, once, when it ends', async () => {
    await outage('network outage', () => d!.cluster.disconnect(), () => d!.cluster.reconnect());
  }, 120_000);

  it('delivers every OTP accepted while the broker hangs, once, when it answers again', async () => {
    await outage('hang', () => d!.cluster.freeze(), () => d!.cluster.thaw());
  }, 120_000);
});
