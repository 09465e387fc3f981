/**
 * The embedded bus's delivery promises beyond the shared contract suite:
 * large pages and values, and a key whose handler keeps failing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { waitFor } from '../testing/kafka-test.support.js';
import type { ConsumedMessage } from '../message-bus.port.js';
import { InProcessMessageBus } from './in-process.message-bus.js';

describe('in-process bus: large pages and a failing key', () => {
  let dir: string;
  let db: Database.Database;
  let bus: InProcessMessageBus;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nexo-bus-delivery-'));
    db = new Database(join(dir, 'bus.db'));
    db.pragma('journal_mode = WAL');
    bus = new InProcessMessageBus(db, { pollIntervalMs: 20, retryDelayMs: 30 });
  });

  afterEach(async () => {
    await bus.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('takes a 5,000-message publish and a 4 MB value, and hands them over in batches of at most batchSize, in order', async () => {
    const big = 'đ'.repeat(2 * 1024 * 1024);
    await bus.publish('large.page', [...Array.from({ length: 5_000 }, (_, n) => ({ key: `k${n % 13}`, value: { n } })), { key: 'k0', value: { n: 5_000, big } }]);
    const batches: ConsumedMessage<{ n: number; big?: string }>[][] = [];
    const c = await bus.consume<{ n: number; big?: string }>(
      'g',
      'large.page',
      async (b) => {
        batches.push(b);
      },
      { batchSize: 700 },
    );
    await waitFor(
      () => batches.flat().length >= 5_001,
      () => `5,001 messages, got ${batches.flat().length}`,
      10_000,
    );
    expect(Math.max(...batches.map((b) => b.length))).toBe(700);
    const got = batches.flat();
    expect(got.map((m) => m.value.n)).toEqual(Array.from({ length: 5_001 }, (_, n) => n));
    expect(got[5_000].value.big).toBe(big);
    await waitFor(
      async () => (await c.lag()) === 0,
      () => 'lag 0',
    );
  });

  // BUG (design): the embedded bus has one partition and retries the whole
  // batch window from the group's committed offset, so one key whose handler
  // keeps failing (a poison message) stops every other key behind it for as
  // long as it fails: messages published after the first full batch are never
  // read, let alone committed. The promise is that a throwing consumer gets
  // its batch again "without blocking other keys forever"; on Kafka only the
  // keys sharing the failing key's partition wait (see the Kafka delivery spec).
  it.failing('lets other keys through while one key\'s handler keeps failing', async () => {
    const handled = new Set<string>();
    const c = await bus.consume<{ n: number }>(
      'g',
      'poison.key',
      async (batch) => {
        if (batch.some((m) => m.key === 'poison')) throw new Error('poison cannot be handled (test)');
        for (const m of batch) handled.add(`${m.key}#${m.value.n}`);
      },
      { batchSize: 10 },
    );
    await bus.publish('poison.key', [{ key: 'poison', value: { n: 0 } }, ...Array.from({ length: 50 }, (_, n) => ({ key: `k${n % 5}`, value: { n } }))]);
    try {
      await waitFor(
        () => handled.size === 50,
        () => `the 50 messages of other keys handled, got ${handled.size}`,
        3_000,
      );
    } finally {
      await c.stop();
    }
  });
});
