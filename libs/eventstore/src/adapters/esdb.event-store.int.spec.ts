/**
 * The EventStore contract against a real EventStoreDB, when ESDB_URL names one:
 *   docker compose up -d eventstore
 *   ESDB_URL='esdb://localhost:2113?tls=false' npm test
 * Without it the file says so in one line and registers one test that checks
 * exactly that (jest fails a file with no tests, and skipped tests hide rot).
 */
import { describeEventStoreContract } from '../testing/event-store.contract.js';
import { EsdbEventStore } from './esdb.event-store.js';

const url = process.env.ESDB_URL;

if (url) {
  describeEventStoreContract(`esdb (${url})`, async () => {
    const store = EsdbEventStore.connect(url);
    return { store, cleanup: () => store.close() };
  });
} else {
  const notice = "EventStoreDB contract suite not run: ESDB_URL is not set (start one with `docker compose up -d eventstore`, then ESDB_URL='esdb://localhost:2113?tls=false').";
  process.stdout.write(`${notice}\n`);
  describe('EventStoreDB contract suite', () => {
    it('is not run because ESDB_URL is not set', () => {
      expect(process.env.ESDB_URL ?? '').toBe('');
    });
  });
}
