import { jest } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { recordCommitLevels, until } from '#testing';
import { describeMessageBusContract } from '../testing/message-bus.contract.js';
import type { ConsumedMessage } from '../message-bus.port.js';
import { InProcessMessageBus, type InProcessBusOptions } from './in-process.message-bus.js';

function tempDb(): { db: Database.Database; file: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'nexo-bus-'));
  const file = join(dir, 'bus.db');
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  return {
    db,
    file,
    remove: () => {
      if (db.open) db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const fast: InProcessBusOptions = { pollIntervalMs: 20, retryDelayMs: 50 };

describeMessageBusContract('in-process (SQLite, WAL)', async () => {
  const t = tempDb();
  const bus = new InProcessMessageBus(t.db, fast);
  return {
    bus,
    async cleanup() {
      await bus.close();
      t.remove();
    },
  };
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('in-process bus only', () => {
  let t: ReturnType<typeof tempDb>;
  let bus: InProcessMessageBus;
  beforeEach(() => {
    t = tempDb();
    bus = new InProcessMessageBus(t.db, fast);
  });
  afterEach(async () => {
    await bus.close();
    t.remove();
  });

  it('keeps delivering after pruning has emptied a topic (offsets never go back below a commit)', async () => {
    const got: string[] = [];
    // batchSize 1: one commit per message, so the prune after every 100th commit runs.
    const consumer = await bus.consume<{ n: number }>(
      'g',
      'prune.topic',
      async (batch) => {
        got.push(...batch.map((m) => m.offset));
      },
      { batchSize: 1 },
    );
    await bus.publish(
      'prune.topic',
      Array.from({ length: 100 }, (_, n) => ({ key: `k${n}`, value: { n } })),
    );
    await until('100 messages', () => got.length === 100, { timeoutMs: 5_000, everyMs: 10 });
    while ((await consumer.lag()) > 0) await sleep(10);
    const left = t.db.prepare<[], { c: number }>('SELECT count(*) AS c FROM bus_prune_topic').get()!.c;
    expect(left).toBeLessThanOrEqual(1);
    await bus.publish('prune.topic', [{ key: 'late', value: { n: 100 } }]);
    await until('the message published after the prune', () => got.length === 101, { timeoutMs: 5_000, everyMs: 10 });
    expect(BigInt(got[100])).toBeGreaterThan(BigInt(got[99]));
    expect(await consumer.lag()).toBe(0);
  });

  it('commits a batch whose handler resolves while stop() waits for it', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let calls = 0;
    const consumer = await bus.consume('g', 'stop.during', async () => {
      calls++;
      await gate;
    });
    await bus.publish('stop.during', [{ key: 'k', value: 1 }]);
    await until('the handler to start', () => calls === 1, { timeoutMs: 5_000, everyMs: 10 });
    const stopping = consumer.stop();
    release();
    await stopping;

    const again: ConsumedMessage[] = [];
    const next = await bus.consume('g', 'stop.during', async (b) => {
      again.push(...b);
    });
    await bus.publish('stop.during', [{ key: 'k', value: 2 }]);
    await until('the second message', () => again.length >= 1, { timeoutMs: 5_000, everyMs: 10 });
    expect(again.map((m) => m.value)).toEqual([2]);
    await next.stop();
  });

  it('publish resolves once its WAL is fdatasync\'ed (off the event loop; the connection stays NORMAL); without a WAL it commits with FULL', async () => {
    const d = tempDb();
    d.db.pragma('synchronous = NORMAL');
    const probe = await open(d.file, 'r');
    const datasync = jest.spyOn(Object.getPrototypeOf(probe) as { datasync(): Promise<void> }, 'datasync');
    await probe.close();
    const commits = recordCommitLevels(d.db);
    const durable = new InProcessMessageBus(d.db, fast);
    try {
      await durable.publish('durable.topic', [{ key: 'k', value: { n: 1 } }]);
      expect(datasync).toHaveBeenCalledTimes(1);
      expect(commits.levels).toEqual([1]);
      // Overlapping publishes share fsyncs: at most one running and one queued behind it.
      await Promise.all(Array.from({ length: 10 }, (_, n) => durable.publish('durable.topic', [{ key: `k${n}`, value: { n } }])));
      expect(datasync.mock.calls.length).toBeLessThanOrEqual(3);
    } finally {
      commits.restore();
      datasync.mockRestore();
      await durable.close();
      d.remove();
    }

    const rollback = new Database(':memory:');
    const levels = recordCommitLevels(rollback);
    const plain = new InProcessMessageBus(rollback, fast);
    try {
      await plain.publish('durable.topic', [{ key: 'k', value: { n: 1 } }]);
      // Memory has no WAL to sync: the commit itself is FULL.
      expect(levels.levels).toEqual([2]);
    } finally {
      await plain.close();
      rollback.close();
    }
  });

  it('refuses a second consumer of the same group and topic on one bus', async () => {
    const c = await bus.consume('g', 'dup.topic', async () => undefined);
    await expect(bus.consume('g', 'dup.topic', async () => undefined)).rejects.toThrow(/already consumes/);
    await c.stop();
    const again = await bus.consume('g', 'dup.topic', async () => undefined);
    await again.stop();
  });

  it('survives a rolled-back transaction that created a topic', async () => {
    expect(() =>
      t.db.transaction(() => {
        bus.publishInTransaction('rolled.back', [{ key: 'k', value: 1 }]);
        throw new Error('caller fails after publishing (test)');
      })(),
    ).toThrow(/caller fails/);
    await bus.publish('rolled.back', [{ key: 'k', value: 2 }]);
    const got: unknown[] = [];
    const c = await bus.consume('g', 'rolled.back', async (b) => {
      got.push(...b.map((m) => m.value));
    });
    await until('the published message', () => got.length === 1, { timeoutMs: 5_000, everyMs: 10 });
    expect(got).toEqual([2]);
    await c.stop();
  });

  it('waits out the retry delay after a rejection even while messages keep arriving', async () => {
    const slow = new InProcessMessageBus(t.db, { pollIntervalMs: 20, retryDelayMs: 300 });
    const attempts: number[] = [];
    const c = await slow.consume('g', 'backoff.topic', async () => {
      attempts.push(Date.now());
      throw new Error('down (test)');
    });
    await slow.publish('backoff.topic', [{ key: 'k', value: 0 }]);
    await until('the first attempt', () => attempts.length === 1, { timeoutMs: 5_000, everyMs: 10 });
    for (let i = 1; i <= 5; i++) {
      await sleep(20);
      await slow.publish('backoff.topic', [{ key: 'k', value: i }]);
    }
    await until('the retry', () => attempts.length === 2, { timeoutMs: 2_000, everyMs: 10 });
    expect(attempts[1] - attempts[0]).toBeGreaterThanOrEqual(280);
    await c.stop();
    await slow.close();
  });

  it('ends a consumer cleanly when its database is closed under it', async () => {
    const c = await bus.consume('g', 'closed.db', async () => undefined);
    t.db.close();
    await sleep(60);
    await expect(c.stop()).resolves.toBeUndefined();
  });

  it('refuses a value that is not JSON, without writing the rest of the call', async () => {
    await expect(bus.publish('bad.value', [{ key: 'a', value: 1 }, { key: 'b', value: undefined }])).rejects.toThrow(TypeError);
    const c = await bus.consume('g', 'bad.value', async () => undefined);
    expect(await c.lag()).toBe(0);
    await c.stop();
  });
});
