/**
 * What the tests of the distributed worker (apps/worker/src/main.ts's
 * process, started in the test's) share: its environment on the in-memory
 * stand-in of EventStoreDB and librdkafka's mock cluster, with a carrier
 * simulator that answers at once and always delivers, group timings short
 * enough for a test's patience, and the whole setting started and stopped
 * together, the test playing the API.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KafkaBusOptions } from '#bus';
import { accountDecider, accountStream } from '#domain';
import { CommandRunner, type EventStore, openEventStore, StoreUnavailableError } from '#eventstore';
import { createLogger, linesInto } from '#observability';
import { AesGcmCipher, newId } from '#security';
import { until } from '#testing';
import { loadWorkerConfig, type WorkerConfig } from '#worker';
import { startKafkaMockCluster, type KafkaMockCluster } from '../../../libs/bus/src/testing/kafka-mock.cluster.js';
import { sleep } from '../../../libs/bus/src/testing/kafka-test.support.js';
import { FakeEventStoreDb } from '../../../libs/eventstore/test/fake-eventstoredb.server.js';
import { startWorkerProcess, type WorkerProcess } from '../src/worker.process.js';
import { appendSend, nextPhone, readLedger, type SendOptions } from './pipeline.harness.js';

/** The mock holds a group for the session timeout after a member leaves; short timings keep joins quick. */
export const FAST_KAFKA = { heartbeatIntervalMs: 500, sessionTimeoutMs: 2_500, rebalanceTimeoutMs: 5_000, maxWaitTimeMs: 100, retryDelayMs: 100, maxRetryDelayMs: 400 };

export interface DistributedWorkerSetting {
  esdbUrl: string;
  brokers: string[];
  cipherKey: Buffer;
  pepper: Buffer;
  /** The worker's own SQLite file. */
  dbFile: string;
  /** Runs the relay (NEXO_RELAY=true) and a simulator upstream that always delivers; false: neither. */
  relay?: boolean;
  /** More variables, or other values. */
  env?: Record<string, string>;
}

export function distributedWorkerConfig({ esdbUrl, brokers, cipherKey, pepper, dbFile, relay = true, env = {} }: DistributedWorkerSetting): WorkerConfig {
  return loadWorkerConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    ESDB_URL: esdbUrl,
    KAFKA_BROKERS: brokers.join(','),
    NEXO_CIPHER_KEYS: `k1:${cipherKey.toString('hex')}`,
    NEXO_PHONE_PEPPER: pepper.toString('hex'),
    NEXO_WORKER_DB_FILE: dbFile,
    ...(relay
      ? {
          NEXO_RELAY: 'true',
          NEXO_CARRIERS: JSON.stringify({ providers: [{ kind: 'simulator', name: 'simulator', simulator: { timeScale: 0.001, failureRate: 0, lostReceiptRate: 0 } }] }),
        }
      : {}),
    ...env,
  });
}

/** A worker with the relay on the EventStoreDB stand-in and the mock cluster, and the test's own client of the log. */
export interface Distributed {
  esdb: FakeEventStoreDb;
  cluster: KafkaMockCluster;
  worker: WorkerProcess;
  /** The test's client of the log: it plays the API. */
  api: EventStore;
  dir: string;
  cipherKey: Buffer;
  pepper: Buffer;
  /** The worker's log lines (warn and above). */
  logs: string[];
  /** Opens an account with `n` test credits and appends `n` accepted OTPs to it, as the API's send does. */
  acceptOtps(n: number, options?: Omit<SendOptions, 'channels' | 'otpId'>): Promise<string[]>;
  /**
   * Waits until every OTP of `ids` is settled, and a second more (a second settlement would come
   * right after the first), then says what the log holds of each: what settled it, its charges and
   * its `Routed` events. While the test's client cannot reach the log (right after an outage, as an
   * API would answer 503 meanwhile) it asks again.
   */
  settlements(ids: string[], timeoutMs: number): Promise<{ id: string; settlements: string[]; charges: number; routed: number }[]>;
  stop(): Promise<void>;
}

export async function startDistributed(name: string, options: { env?: Record<string, string>; kafka?: Partial<KafkaBusOptions> } = {}): Promise<Distributed> {
  const dir = mkdtempSync(join(tmpdir(), `nexo-${name}-`));
  const cipherKey = randomBytes(32);
  const pepper = randomBytes(32);
  const logs: string[] = [];
  const started: { esdb?: FakeEventStoreDb; cluster?: KafkaMockCluster; worker?: WorkerProcess; api?: EventStore } = {};
  const stop = async () => {
    await started.worker?.stop();
    await started.api?.close();
    await started.esdb?.stop();
    await started.cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // One after the other, each kept as it starts: when one fails (kcat missing), stop() still
    // stops the others, instead of a server keeping jest from ever exiting.
    const esdb = (started.esdb = await FakeEventStoreDb.start());
    const cluster = (started.cluster = await startKafkaMockCluster());
    const config = distributedWorkerConfig({ esdbUrl: esdb.url, brokers: cluster.brokers, cipherKey, pepper, dbFile: join(dir, 'worker.db'), env: options.env });
    const worker = (started.worker = await startWorkerProcess(config, createLogger({ level: 'warn', destination: linesInto(logs) }), {
      kafka: { ...FAST_KAFKA, ...options.kafka },
    }));
    const api = (started.api = await openEventStore({ kind: 'esdb', url: esdb.url }));
    const runner = new CommandRunner(api);
    const cipher = new AesGcmCipher({ k1: cipherKey }, 'k1');
    return {
      esdb,
      cluster,
      worker,
      api,
      dir,
      cipherKey,
      pepper,
      logs,
      async acceptOtps(n, send = {}) {
        const accountId = newId('acc');
        await runner.handle(accountStream(accountId), accountDecider, { type: 'OpenAccount', accountId, name, testCredits: n, at: new Date().toISOString() });
        const ids: string[] = [];
        for (let i = 0; i < n; i++) ids.push((await appendSend(runner, { cipher, pepper }, accountId, nextPhone(), { channel: 'sms', ...send })).otpId);
        return ids;
      },
      async settlements(ids, timeoutMs) {
        const ledgerNow = () =>
          readLedger(api).catch((error: unknown) => {
            if (error instanceof StoreUnavailableError) return undefined;
            throw error;
          });
        await until(
          `${ids.length} OTPs settled`,
          async () => {
            const ledger = await ledgerNow();
            return (ledger && ids.every((id) => (ledger.get(id)?.settlements.length ?? 0) > 0)) || undefined;
          },
          { timeoutMs, everyMs: 250 },
        );
        await sleep(1_000);
        const ledger = await readLedger(api);
        return ids.map((id) => {
          const f = ledger.get(id)!;
          return { id, settlements: f.settlements.map((e) => e.type), charges: f.charged.length, routed: f.otpEvents.filter((e) => e.type === 'Routed').length };
        });
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
