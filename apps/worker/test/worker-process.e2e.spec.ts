/**
 * The distributed worker (apps/worker/src/main.ts's process, started in this
 * one) against Kafka's wire protocol and EventStoreDB's: librdkafka's mock
 * cluster started by kcat (libs/bus/src/testing/kafka-mock.cluster.ts) and
 * the in-memory stand-in of EventStoreDB's gRPC service
 * (libs/eventstore/test/fake-eventstoredb.server.ts); neither server can run
 * here for real. The test plays the API: it appends accepted OTPs to the
 * log, and the worker's relay, consumers and carrier simulator must take each
 * to `Delivered` through Kafka, with probes and metrics answering.
 */
import { join } from 'node:path';
import { createLogger, linesInto } from '#observability';
import { freePort, until } from '#testing';
import { probeUntilNotReady } from '../../../libs/bus/src/testing/kafka-test.support.js';
import { startWorkerProcess } from '../src/worker.process.js';
import { type Distributed, distributedWorkerConfig, FAST_KAFKA, startDistributed } from './distributed.harness.js';

const OTPS = 12;

describe('the distributed worker on Kafka and EventStoreDB', () => {
  let d: Distributed | undefined;

  beforeAll(async () => {
    d = await startDistributed('worker-process');
  }, 60_000);

  afterAll(async () => d?.stop(), 30_000);

  it('relays accepted OTPs to Kafka and delivers, settles and reports them', async () => {
    const ids = await d!.acceptOtps(OTPS, { code: '246810' });
    expect(await d!.settlements(ids, 40_000)).toEqual(ids.map((id) => ({ id, settlements: ['Delivered'], charges: 1, routed: 1 })));

    const base = d!.worker.url;
    expect((await fetch(`${base}/health/live`)).status).toBe(200);
    const ready = await until('ready', async () => {
      const res = await fetch(`${base}/health/ready`);
      return res.status === 200 ? ((await res.json()) as { store: boolean; bus: boolean }) : undefined;
    }, { timeoutMs: 15_000, everyMs: 50 });
    expect(ready).toMatchObject({ store: true, bus: true });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/nexo_otp_delivered_total\{carrier="\w+",channel="sms",via="receipt"\} [1-9]/);
    expect(metrics).toMatch(/nexo_carrier_submit_seconds_count\{provider="simulator",outcome="ok"\} [1-9]/);
    expect(d!.logs.join('')).not.toContain('246810');
  }, 60_000);

  it('answers /metrics while a new instance replays the log, showing the projections behind, instead of 503 (Prometheus would count it down)', async () => {
    const port = await freePort();
    // Each page of the replay takes a second: the new instance is still catching up for a while.
    const restore = d!.esdb.slowForwardLogReads(1_000);
    let started = false;
    const starting = startWorkerProcess(
      distributedWorkerConfig({
        esdbUrl: d!.esdb.url,
        brokers: d!.cluster.brokers,
        cipherKey: d!.cipherKey,
        pepper: d!.pepper,
        dbFile: join(d!.dir, 'catching-up.db'),
        relay: false,
        env: { PORT: String(port) },
      }),
      createLogger({ level: 'warn', destination: linesInto(d!.logs) }),
      { kafka: FAST_KAFKA },
    ).finally(() => (started = true));
    try {
      const base = `http://127.0.0.1:${port}`;
      // Scraped every 50 ms: every answer a 200 (`nexo_process_starting` alone for the first
      // milliseconds), and while the replay runs, the instance's own metrics with its projections behind.
      const statuses = new Set<number>();
      await until(
        'a /metrics scrape showing the projections behind',
        async () => {
          const res = await fetch(`${base}/metrics`).catch(() => undefined);
          if (res === undefined) return undefined;
          statuses.add(res.status);
          return /^nexo_projection_lag_events\{projection="otps"\} [1-9]\d*$/m.test(await res.text());
        },
        { timeoutMs: 10_000, everyMs: 50 },
      );
      expect(started).toBe(false);
      expect([...statuses]).toEqual([200]);
    } finally {
      restore();
      await (await starting).stop();
    }
  }, 30_000);

  it('is not ready once Kafka is gone, saying the bus is why, each probe answering within a second', async () => {
    const base = d!.worker.url;
    await until('ready', async () => (await fetch(`${base}/health/ready`)).status === 200, { timeoutMs: 15_000, everyMs: 50 });
    await d!.cluster.kill();
    const { body, slowestMs } = await probeUntilNotReady(base);
    expect(body).toMatchObject({ ok: false, store: true, bus: false, bus_error: expect.stringMatching(/^kafka: /) });
    expect(slowestMs).toBeLessThan(1_000);
    expect((await fetch(`${base}/health/live`)).status).toBe(200);
  }, 30_000);
});
