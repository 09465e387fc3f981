/**
 * The distributed worker while EventStoreDB is out of reach, then back with
 * its data: the node stops at once (open calls fail, nothing listens) for
 * longer than a subscription's retry and the Kafka consumers' backoffs, in
 * two places of an OTP's way: right after the OTPs were accepted (the relay,
 * the dispatcher's phone windows and `Routed` appends need the log), and
 * while their receipts are on their way (the receipts consumer's
 * `ReceiptReceived` and the settlement need it). Once the node is back, every
 * OTP must end delivered exactly once, submitted once, by itself.
 *
 * The node is the in-memory stand-in of EventStoreDB's gRPC service
 * (libs/eventstore/test/fake-eventstoredb.server.ts), stopped and listening
 * again on its port with its log; Kafka is librdkafka's mock cluster from
 * kcat. The test plays the API.
 */
import { until } from '#testing';
import { describeWithKcat, sleep } from '../../../libs/bus/src/testing/kafka-test.support.js';
import { type Distributed, startDistributed } from './distributed.harness.js';
import { readLedger } from './pipeline.harness.js';

const OTPS = 20;
const OUTAGE_MS = 10_000;
/** Receipts 1.5-3 s after a submit, so an outage can begin while they are on their way; none lost or failed. */
const SMS = { minMs: 1_500, maxMs: 3_000 };
const SIMULATOR = { timeScale: 1, latency: { sms: SMS, byCarrier: { mobifone: { sms: SMS } } }, failureRate: 0, lostReceiptRate: 0, duplicateReceiptRate: 0 };
const deliveredOnce = (ids: string[]) => ids.map((id) => ({ id, settlements: ['Delivered'], charges: 1, routed: 1 }));

describeWithKcat('the distributed worker while EventStoreDB is out of reach', () => {
  let d: Distributed | undefined;

  beforeAll(async () => {
    d = await startDistributed('esdb-outage', { env: { NEXO_CARRIERS: JSON.stringify({ providers: [{ kind: 'simulator', name: 'simulator', simulator: SIMULATOR }] }) } });
  }, 60_000);

  afterAll(async () => {
    await d?.esdb.restart().catch(() => undefined);
    await d?.stop();
  }, 30_000);

  const withEvent = async (ids: string[], type: string) => {
    const ledger = await readLedger(d!.api);
    return ids.filter((id) => ledger.get(id)?.otpEvents.some((e) => e.type === type));
  };

  const submitted = async () => {
    const m = /^nexo_carrier_submit_seconds_count\{provider="simulator",outcome="ok"\} (\d+)$/m.exec(await (await fetch(`${d!.worker.url}/metrics`)).text());
    return Number(m?.[1] ?? 0);
  };

  /** Stops the node for OUTAGE_MS; meanwhile the worker is live and says the store is why it is not ready. */
  async function outage(): Promise<void> {
    const { esdb, worker } = d!;
    await esdb.stop();
    const down = Date.now();
    const body = await until(
      'not ready, the store named',
      async () => {
        const res = await fetch(`${worker.url}/health/ready`);
        return res.status === 503 ? ((await res.json()) as Record<string, unknown>) : undefined;
      },
      { timeoutMs: 10_000, everyMs: 100 },
    );
    expect(body).toMatchObject({ ok: false, store: false });
    expect((await fetch(`${worker.url}/health/live`)).status).toBe(200);
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - down)));
    await esdb.restart();
  }

  async function expectRecovered(ids: string[], submittedBefore: number): Promise<void> {
    expect(await d!.settlements(ids, 60_000)).toEqual(deliveredOnce(ids));
    expect((await submitted()) - submittedBefore).toBe(ids.length);
    await until('ready again', async () => (await fetch(`${d!.worker.url}/health/ready`)).status === 200, { timeoutMs: 15_000, everyMs: 100 });
  }

  it('goes on by itself after an outage that begins as the OTPs are accepted: each submitted once, delivered once', async () => {
    const before = await submitted();
    const ids = await d!.acceptOtps(OTPS);
    await outage();
    await expectRecovered(ids, before);
  }, 120_000);

  it('goes on by itself after an outage that begins while the receipts are on their way: each delivered once', async () => {
    const before = await submitted();
    const ids = await d!.acceptOtps(OTPS);
    await until('every OTP routed', async () => (await withEvent(ids, 'Routed')).length === OTPS || undefined, { timeoutMs: 20_000, everyMs: 100 });
    // Receipts come 1.5-3 s after a submit: most are still on their way.
    expect((await withEvent(ids, 'ReceiptReceived')).length).toBeLessThan(OTPS / 2);
    await outage();
    await expectRecovered(ids, before);
  }, 120_000);
});
