/**
 * What the tests of the distributed worker (apps/worker/src/main.ts's
 * process, started in the test's) share: its environment on the in-memory
 * stand-in of EventStoreDB and librdkafka's mock cluster, with a carrier
 * simulator that answers at once and always delivers, and group timings short
 * enough for a test's patience.
 */
import { loadWorkerConfig, type WorkerConfig } from '#worker';

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
