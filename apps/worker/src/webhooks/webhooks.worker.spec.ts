import Database from 'better-sqlite3';
import { InProcessMessageBus, TOPICS } from '#bus';
import { retireBusTable } from './webhooks.worker.js';

describe('retireBusTable: data files of versions that queued webhook messages in a bus table', () => {
  let db: Database.Database;
  const checkpoint = () => db.prepare<[], { position: number }>("SELECT position FROM relay_checkpoints WHERE name = 'webhooks-relay'").get()?.position;
  const tables = () => db.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'").all().map((t) => t.name);

  beforeEach(() => {
    db = new Database(':memory:');
    db.exec('CREATE TABLE relay_checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID');
    db.prepare("INSERT INTO relay_checkpoints VALUES ('webhooks-relay', 42)").run();
  });
  afterEach(() => db.close());

  it('does nothing on a file that never had the table', () => {
    expect(retireBusTable(db, 'webhooks-relay')).toBe(false);
    expect(checkpoint()).toBe(42);
  });

  it('drops a fully consumed table and keeps the checkpoint', async () => {
    const bus = new InProcessMessageBus(db, { pollIntervalMs: 10 });
    await bus.publish(TOPICS.webhooks, [{ key: 'acc', value: { n: 1 } }]);
    const consumer = await bus.consume('nexo-webhooks', TOPICS.webhooks, async () => undefined);
    while ((await consumer.lag()) > 0) await new Promise((r) => setTimeout(r, 10));
    await bus.close();
    expect(retireBusTable(db, 'webhooks-relay')).toBe(false);
    expect(checkpoint()).toBe(42);
    expect(tables()).not.toContain('bus_nexo_webhooks');
    expect(db.prepare('SELECT count(*) AS n FROM bus_offsets').get()).toEqual({ n: 0 });
  });

  it('rewinds the relay when messages were left unconsumed, so they are relayed again, and drops the table', async () => {
    const bus = new InProcessMessageBus(db);
    await bus.publish(TOPICS.webhooks, [{ key: 'acc', value: { n: 1 } }, { key: 'acc', value: { n: 2 } }]);
    await bus.close();
    expect(retireBusTable(db, 'webhooks-relay')).toBe(true);
    expect(checkpoint()).toBeUndefined();
    expect(tables()).not.toContain('bus_nexo_webhooks');
  });
});
