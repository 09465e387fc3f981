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
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accountDecider, accountStream } from '#domain';
import { CommandRunner, type EventStore, openEventStore } from '#eventstore';
import { createLogger, linesInto } from '#observability';
import { AesGcmCipher, newId } from '#security';
import { freePort, until } from '#testing';
import { startKafkaMockCluster, type KafkaMockCluster } from '../../../libs/bus/src/testing/kafka-mock.cluster.js';
import { probeUntilNotReady } from '../../../libs/bus/src/testing/kafka-test.support.js';
import { FakeEventStoreDb } from '../../../libs/eventstore/test/fake-eventstoredb.server.js';
import { startWorkerProcess, type WorkerProcess } from '../src/worker.process.js';
import { distributedWorkerConfig, FAST_KAFKA } from './distributed.harness.js';
import { appendSend, nextPhone } from './pipeline.harness.js';

const OTPS = 12;

describe('the distributed worker on Kafka and EventStoreDB', () => {
  let cluster: KafkaMockCluster | undefined;
  let esdb: FakeEventStoreDb | undefined;
  let worker: WorkerProcess | undefined;
  let api: EventStore | undefined;
  let dir: string;
  const logs: string[] = [];
  const cipherKey = randomBytes(32);
  const pepper = randomBytes(32);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nexo-worker-process-'));
    // One after the other: when one fails (kcat missing), the other is already assigned and afterAll
    // stops it, instead of its server keeping jest from ever exiting.
    esdb = await FakeEventStoreDb.start();
    cluster = await startKafkaMockCluster();
    const config = distributedWorkerConfig({ esdbUrl: esdb.url, brokers: cluster.brokers, cipherKey, pepper, dbFile: join(dir, 'worker.db') });
    const logger = createLogger({
      level: 'warn',
      destination: linesInto(logs),
    });
    worker = await startWorkerProcess(config, logger, { kafka: FAST_KAFKA });
    api = await openEventStore({ kind: 'esdb', url: esdb.url });
  }, 60_000);

  afterAll(async () => {
    await worker?.stop();
    await api?.close();
    await esdb?.stop();
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('relays accepted OTPs to Kafka and delivers, settles and reports them', async () => {
    const runner = new CommandRunner(api!);
    const cipher = new AesGcmCipher({ k1: cipherKey }, 'k1');
    const accountId = newId('acc');
    const stream = accountStream(accountId);
    const at = () => new Date().toISOString();
    await runner.handle(stream, accountDecider, { type: 'OpenAccount', accountId, name: 'distributed', testCredits: OTPS, at: at() });
    const ids: string[] = [];
    for (let i = 0; i < OTPS; i++) ids.push((await appendSend(runner, { cipher, pepper }, accountId, nextPhone(), { channel: 'sms', code: '246810' })).otpId);

    const delivered = await until(
      'every OTP delivered through Kafka',
      async () => {
        const settled = new Set<string>();
        for await (const e of api!.readStream(stream)) if (e.type === 'Delivered') settled.add((e.data as { otpId: string }).otpId);
        return ids.every((id) => settled.has(id)) ? settled : undefined;
      },
      { timeoutMs: 40_000, everyMs: 200 },
    );
    expect(delivered.size).toBe(OTPS);

    const base = worker!.url;
    expect((await fetch(`${base}/health/live`)).status).toBe(200);
    const ready = await until('ready', async () => {
      const res = await fetch(`${base}/health/ready`);
      return res.status === 200 ? ((await res.json()) as { store: boolean; bus: boolean }) : undefined;
    }, { timeoutMs: 15_000, everyMs: 50 });
    expect(ready).toMatchObject({ store: true, bus: true });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/nexo_otp_delivered_total\{carrier="\w+",channel="sms",via="receipt"\} [1-9]/);
    expect(metrics).toMatch(/nexo_carrier_submit_seconds_count\{provider="simulator",outcome="ok"\} [1-9]/);
    expect(logs.join('')).not.toContain('246810');
  }, 60_000);

  it('answers /metrics while a new instance replays the log, showing the projections behind, instead of 503 (Prometheus would count it down)', async () => {
    const port = await freePort();
    // Each page of the replay takes a second: the new instance is still catching up for a while.
    const restore = esdb!.slowForwardLogReads(1_000);
    let started = false;
    const starting = startWorkerProcess(
      distributedWorkerConfig({
        esdbUrl: esdb!.url,
        brokers: cluster!.brokers,
        cipherKey,
        pepper,
        dbFile: join(dir, 'catching-up.db'),
        relay: false,
        env: { PORT: String(port) },
      }),
      createLogger({ level: 'warn', destination: linesInto(logs) }),
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
    const base = worker!.url;
    await until('ready', async () => (await fetch(`${base}/health/ready`)).status === 200, { timeoutMs: 15_000, everyMs: 50 });
    await cluster!.kill();
    const { body, slowestMs } = await probeUntilNotReady(base);
    expect(body).toMatchObject({ ok: false, store: true, bus: false, bus_error: expect.stringMatching(/^kafka: /) });
    expect(slowestMs).toBeLessThan(1_000);
    expect((await fetch(`${base}/health/live`)).status).toBe(200);
  }, 30_000);
});
