/**
 * I8 when a phone changes dispatcher: the distributed worker (apps/worker's
 * process, started in this one) on librdkafka's mock cluster and the
 * in-memory stand-in of EventStoreDB, as in worker-process.e2e. A first
 * worker submits an OTP to a phone and goes away; a second one, with a file
 * of its own (a recreated container, or the partition's new owner after a
 * rebalance), gets the next OTP to that phone. Its own file knows nothing of
 * the first submission; the phone's window in the log does.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { accountDecider, accountStream, otpStream, parseVnMobile, phoneWindowDecider, phoneWindowStream } from '#domain';
import { CommandRunner, type EventStore, openEventStore } from '#eventstore';
import { createLogger, linesInto } from '#observability';
import { AesGcmCipher, newId, phoneHash } from '#security';
import { until } from '#testing';
import { startKafkaMockCluster, type KafkaMockCluster } from '../../../libs/bus/src/testing/kafka-mock.cluster.js';
import { FakeEventStoreDb } from '../../../libs/eventstore/test/fake-eventstoredb.server.js';
import { startWorkerProcess, type WorkerProcess } from '../src/worker.process.js';
import { distributedWorkerConfig, FAST_KAFKA } from './distributed.harness.js';
import { appendSend, nextPhone } from './pipeline.harness.js';

const INTERVAL_S = 8;

describe('a phone handed to another dispatcher keeps its window (I8)', () => {
  let cluster: KafkaMockCluster | undefined;
  let esdb: FakeEventStoreDb | undefined;
  let api: EventStore | undefined;
  let dir: string;
  const workers: WorkerProcess[] = [];
  const logs: string[] = [];
  const cipherKey = randomBytes(32);
  const pepper = randomBytes(32);
  const cipher = new AesGcmCipher({ k1: cipherKey }, 'k1');

  const startWorker = (name: string) =>
    startWorkerProcess(
      distributedWorkerConfig({
        esdbUrl: esdb!.url,
        brokers: cluster!.brokers,
        cipherKey,
        pepper,
        dbFile: join(dir, `${name}.db`),
        env: { NEXO_PHONE_INTERVAL_SECONDS: String(INTERVAL_S) },
      }),
      createLogger({ level: 'warn', destination: linesInto(logs) }),
      { kafka: FAST_KAFKA },
    ).then((w) => (workers.push(w), w));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nexo-phone-handover-'));
    // One after the other: when one fails (kcat missing), the other is already assigned and afterAll
    // stops it, instead of its server keeping jest from ever exiting.
    esdb = await FakeEventStoreDb.start();
    cluster = await startKafkaMockCluster();
    api = await openEventStore({ kind: 'esdb', url: esdb.url });
  }, 60_000);

  afterAll(async () => {
    for (const w of workers) await w.stop().catch(() => undefined);
    await api?.close();
    await esdb?.stop();
    await cluster?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it('makes the new dispatcher wait out the window the old one opened, then send', async () => {
    const runner = new CommandRunner(api!);
    const accountId = newId('acc');
    const stream = accountStream(accountId);
    const at = () => new Date().toISOString();
    await runner.handle(stream, accountDecider, { type: 'OpenAccount', accountId, name: 'handover', testCredits: 5, at: at() });
    const mobile = parseVnMobile(nextPhone())!;
    const send = async () => (await appendSend(runner, { cipher, pepper }, accountId, mobile.e164, { channel: 'sms', code: '135790' })).otpId;
    const routedAt = (otpId: string) =>
      until(`${otpId} routed`, async () => {
        for await (const e of api!.readStream(otpStream(otpId))) if (e.type === 'Routed') return Date.parse((e.data as { at: string }).at);
        return undefined;
      }, { timeoutMs: 30_000, everyMs: 50 });

    const windowsTaken = async () => {
      const taken: { holder: string; at: number }[] = [];
      for await (const e of api!.readStream(phoneWindowStream(phoneHash(pepper, mobile.e164)))) {
        const d = e.data as { holder: string; at: string };
        if (e.type === 'PhoneWindowTaken') taken.push({ holder: d.holder, at: Date.parse(d.at) });
      }
      return taken;
    };

    const first = await startWorker('first');
    const a = await send();
    await routedAt(a);
    await first.stop();
    workers.length = 0;

    const second = await startWorker('second');
    const sentB = Date.now();
    const b = await send();
    await until('the second worker parks it', async () => (second.workers.waiting().parkedDispatches > 0 ? true : undefined), { timeoutMs: 15_000, everyMs: 20 });
    await routedAt(b);
    const [wa, wb] = await windowsTaken();
    expect([wa.holder, wb.holder]).toEqual([`${a}/1`, `${b}/1`]);
    // The case this test is about: the second worker had the OTP while the first one's window still ran...
    expect(sentB - wa.at).toBeLessThan(INTERVAL_S * 1_000);
    // ...and it waited the window out (parked above, not refused), then sent.
    expect(wb.at - wa.at).toBeGreaterThanOrEqual(INTERVAL_S * 1_000);
    expect(logs.join('')).not.toContain('135790');
  }, 60_000);

  it('lets one of many dispatchers racing for a phone take its window, through the expected revision', async () => {
    const stream = phoneWindowStream(`race${process.pid}`);
    const at = new Date().toISOString();
    // A runner each, as separate processes have: none sees the others' appends until its own is refused.
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        new CommandRunner(api!).handle(stream, phoneWindowDecider, { type: 'TakePhoneWindow', holder: `otp_race_${i}/1`, at, windowMs: INTERVAL_S * 1_000 }),
      ),
    );
    expect(results.filter((r) => r.events.length === 1)).toHaveLength(1);
    let n = 0;
    for await (const e of api!.readStream(stream)) n += e.type === 'PhoneWindowTaken' ? 1 : 0;
    expect(n).toBe(1);
  });
});
