import { loadWorkerConfig, WorkerConfigError } from './worker.config.js';

const KEY = 'a'.repeat(64);
const complete = {
  ESDB_URL: 'esdb://eventstore:2113?tls=false',
  KAFKA_BROKERS: 'kafka-1:9092, kafka-2:9092',
  NEXO_CIPHER_KEYS: `k2:${KEY},k1:${'b'.repeat(64)}`,
  NEXO_PHONE_PEPPER: 'c'.repeat(64),
};

describe('worker configuration', () => {
  it('refuses to start without EventStoreDB, Kafka, the cipher keys or the phone pepper, naming each', () => {
    let message = '';
    try {
      loadWorkerConfig({});
    } catch (error) {
      expect(error).toBeInstanceOf(WorkerConfigError);
      message = (error as Error).message;
    }
    for (const name of ['ESDB_URL', 'KAFKA_BROKERS', 'NEXO_CIPHER_KEYS', 'NEXO_PHONE_PEPPER']) expect(message).toContain(`${name}: is required`);
  });

  it('refuses malformed values', () => {
    expect(() => loadWorkerConfig({ ...complete, KAFKA_BROKERS: 'kafka-1' })).toThrow(/KAFKA_BROKERS.*: each broker must be host:port/);
    expect(() => loadWorkerConfig({ ...complete, ESDB_URL: 'http://eventstore:2113' })).toThrow(/ESDB_URL: must be an esdb/);
    expect(() => loadWorkerConfig({ ...complete, NEXO_CARRIERS: '{' })).toThrow(/NEXO_CARRIERS: must be JSON/);
    expect(() => loadWorkerConfig({ ...complete, NEXO_RELAY: 'yes' })).toThrow(/NEXO_RELAY/);
  });

  it('reads a complete environment; the relay is off unless asked for', () => {
    const c = loadWorkerConfig({ ...complete, NEXO_DATA_DIR: '/var/lib/nexo' });
    expect(c).toMatchObject({
      esdbUrl: complete.ESDB_URL,
      kafka: { brokers: ['kafka-1:9092', 'kafka-2:9092'], clientId: 'nexo-worker', ssl: false },
      cipherKeyId: 'k2',
      dbFile: '/var/lib/nexo/worker.db',
      relay: false,
      expiryMs: 600_000,
      port: 3001,
      webhookPrivateAddresses: 'deny',
    });
    expect(Object.keys(c.cipherKeys)).toEqual(['k2', 'k1']);
    expect(loadWorkerConfig({ ...complete, NEXO_RELAY: 'true' }).relay).toBe(true);
  });

  it('takes every NEXO_PHONE_INTERVAL_SECONDS the API takes, so one value starts both (0: a 1 ms window, as in the API)', () => {
    expect(loadWorkerConfig(complete).phoneIntervalMs).toBe(30_000);
    expect(loadWorkerConfig({ ...complete, NEXO_PHONE_INTERVAL_SECONDS: '0' }).phoneIntervalMs).toBe(1);
    expect(() => loadWorkerConfig({ ...complete, NEXO_PHONE_INTERVAL_SECONDS: '3601' })).toThrow(/NEXO_PHONE_INTERVAL_SECONDS/);
  });
});
