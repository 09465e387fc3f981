import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { InProcessMessageBus, openMessageBus } from './index.js';

describe('openMessageBus', () => {
  it('opens the embedded bus on the given connection', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nexo-open-bus-'));
    const db = new Database(join(dir, 'bus.db'));
    try {
      const bus = await openMessageBus({ kind: 'in-process', db, pollIntervalMs: 10 });
      expect(bus).toBeInstanceOf(InProcessMessageBus);
      expect((bus as InProcessMessageBus).sharesConnection(db)).toBe(true);
      await bus.close();
    } finally {
      db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('opens the Kafka bus without touching the network until it is used', async () => {
    const bus = await openMessageBus({ kind: 'kafka', brokers: ['127.0.0.1:1'] });
    expect(bus.constructor.name).toBe('KafkaMessageBus');
    await bus.close();
  });
});
