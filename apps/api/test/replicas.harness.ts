/**
 * Two API replicas sharing one EventStoreDB (the distributed mode with the
 * workers elsewhere), on the in-memory stand-in of its gRPC service, and a
 * client of that log for the test to read and append with.
 */
import { randomBytes } from 'node:crypto';
import { type EventStore, openEventStore } from '#eventstore';
import { FakeEventStoreDb } from '../../../libs/eventstore/test/fake-eventstoredb.server.js';
import { startServer, type TestServer } from './harness.js';

export interface Replicas {
  a: TestServer;
  b: TestServer;
  log: EventStore;
  /** The node both replicas use: stop and restart it for an outage. */
  esdb: FakeEventStoreDb;
  /** The phone pepper both replicas hash with. */
  pepper: Buffer;
  stop(): Promise<void>;
}

export async function startReplicas(): Promise<Replicas> {
  const esdb = await FakeEventStoreDb.start();
  const pepper = randomBytes(32);
  const env = {
    ESDB_URL: esdb.url,
    NEXO_WORKERS: 'off',
    NEXO_PHONE_PEPPER: pepper.toString('hex'),
    NEXO_CIPHER_KEYS: `k1:${randomBytes(32).toString('hex')}`,
    LOG_LEVEL: 'warn',
  };
  const started: TestServer[] = [];
  const stop = async () => {
    for (const s of started) await s.stop();
    await log?.close();
    await esdb.stop();
  };
  let log: EventStore | undefined;
  try {
    started.push(await startServer(env), await startServer(env));
    log = await openEventStore({ kind: 'esdb', url: esdb.url });
  } catch (error) {
    await stop();
    throw error;
  }
  return { a: started[0], b: started[1], log, esdb, pepper, stop };
}
