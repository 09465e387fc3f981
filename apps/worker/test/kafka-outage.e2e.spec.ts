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
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accountDecider, accountStream } from '#domain';
import { CommandRunner, type EventStore, openEventStore } from '#eventstore';
import { createLogger, linesInto } from '#observability';
import { AesGcmCipher, newId } from '#security';
import { until } from '#testing';
import { startKafkaMockCluster, type KafkaMockCluster } from '../../../libs/bus/src/testing/kafka-mock.cluster.js';
import { describeWithKcat, probeUntilNotReady, sleep } from '../../../libs/bus/src/testing/kafka-test.support.js';
import { FakeEventStoreDb } from '../../../libs/eventstore/test/fake-eventstoredb.server.js';
import { startWorkerProcess, type WorkerProcess } from '../src/worker.process.js';
import { distributedWorkerConfig, FAST_KAFKA } from './distributed.harness.js';
import { appendSend, nextPhone, readLedger } from './pipeline.harness.js';

const BEFORE = 10;
const DURING = 20;
/** Longer than the group's session timeout (2.5 s), kafkajs's retries (~2 s here) and a request timeout (5 s). */
const OUTAGE_MS = 12_000;

describeWithKcat('the distributed worker while Kafka is out of reach', () => {
  let cluster: KafkaMockCluster | undefined;
  let esdb: FakeEventStoreDb | undefined;
  let worker: WorkerProcess | undefined;
  let api: EventStore | undefined;
  let runner: CommandRunner;
  let dir: string;
  const logs: string[] = [];
  const cipherKey = randomBytes(32);
  const pepper = randomBytes(32);
  const cipher = new AesGcmCipher({ k1: cipherKey }, 'k1');
  const at = () => new Date().toISOString();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nexo-kafka-outage-'));
    esdb = await FakeEventStoreDb.start();
    cluster = await startKafkaMockCluster();
    const config = distributedWorkerConfig({ esdbUrl: esdb.url, brokers: cluster.brokers, cipherKey, pepper, dbFile: join(dir, 'worker.db') });
    worker = await startWorkerProcess(config, createLogger({ level: 'warn', destination: linesInto(logs) }), {
      kafka: { ...FAST_KAFKA, requestTimeoutMs: 5_000, connectionTimeoutMs: 1_000 },
    });
    api = await openEventStore({ kind: 'esdb', url: esdb.url });
    runner = new CommandRunner(api);
  }, 60_000);

  afterAll(async () => {
    cluster?.thaw();
    cluster?.reconnect();
    await worker?.stop();
    await api?.close();
    await esdb?.stop();
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  async function openAccount(credits: number): Promise<string> {
    const accountId = newId('acc');
    await runner.handle(accountStream(accountId), accountDecider, { type: 'OpenAccount', accountId, name: 'outage', testCredits: credits, at: at() });
    return accountId;
  }

  async function send(accountId: string, n: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push((await appendSend(runner, { cipher, pepper }, accountId, nextPhone(), { channel: 'sms' })).otpId);
    return ids;
  }

  /** Waits until every OTP of `ids` has a settlement, then checks each has exactly one, a delivery, and one charge. */
  async function expectDeliveredOnce(ids: string[], timeoutMs: number): Promise<void> {
    const ledger = await until(
      `${ids.length} OTPs settled`,
      async () => {
        const l = await readLedger(api!);
        return ids.every((id) => (l.get(id)?.settlements.length ?? 0) > 0) ? l : undefined;
      },
      { timeoutMs, everyMs: 250 },
    );
    // A double settlement would land right after the first: look again a little later.
    await sleep(1_000);
    const again = await readLedger(api!);
    for (const id of ids) {
      const facts = again.get(id)!;
      expect({ id, settlements: facts.settlements.map((e) => e.type), charges: facts.charged.length }).toEqual({ id, settlements: ['Delivered'], charges: 1 });
    }
    expect(ledger.size).toBeGreaterThanOrEqual(ids.length);
  }

  async function outage(name: string, begin: () => void, end: () => void): Promise<void> {
    const accountId = await openAccount(BEFORE + DURING);
    const before = await send(accountId, BEFORE);
    await expectDeliveredOnce(before, 30_000);

    begin();
    const t0 = Date.now();
    const { body } = await probeUntilNotReady(worker!.url, { timeoutMs: 10_000 });
    expect(body).toMatchObject({ ok: false, store: true, bus: false });
    // The API goes on accepting: the log is up.
    const during = await send(accountId, DURING);
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - t0)));
    const settledMeanwhile = [...(await readLedger(api!)).entries()].filter(([id, f]) => during.includes(id) && f.settlements.length > 0);
    expect(settledMeanwhile).toEqual([]);
    end();
    await expectDeliveredOnce(during, 60_000);
    await until(`ready again after the ${name}`, async () => (await fetch(`${worker!.url}/health/ready`)).status === 200, { timeoutMs: 15_000, everyMs: 100 });
    expect((await fetch(`${worker!.url}/health/live`)).status).toBe(200);
    // kafkajs's failed tries that it makes again are warnings, not hundreds of errors (the failures it
    // gives up on are logged as errors by the relay and the consumers).
    const lines = logs.map((l) => JSON.parse(l) as { level: number; retryCount?: number; msg: string });
    expect(lines.filter((l) => l.level >= 50 && l.retryCount !== undefined)).toEqual([]);
    expect(lines.some((l) => l.level === 40 && l.retryCount !== undefined)).toBe(true);
  }

  it('delivers every OTP accepted during a network outage to the broker, once, when it ends', async () => {
    await outage('network outage', () => cluster!.disconnect(), () => cluster!.reconnect());
  }, 120_000);

  it('delivers every OTP accepted while the broker hangs, once, when it answers again', async () => {
    await outage('hang', () => cluster!.freeze(), () => cluster!.thaw());
  }, 120_000);
});
