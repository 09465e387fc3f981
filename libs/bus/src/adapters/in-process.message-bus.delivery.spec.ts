/**
 * The embedded bus's delivery promises beyond the shared contract suite:
 * large pages and values, a key whose handler keeps failing, an outage.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { until } from '#testing';
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
    await until(
      () => `5,001 messages, got ${batches.flat().length}`,
      () => batches.flat().length >= 5_001,
      { timeoutMs: 10_000, everyMs: 20 },
    );
    expect(Math.max(...batches.map((b) => b.length))).toBe(700);
    const got = batches.flat();
    expect(got.map((m) => m.value.n)).toEqual(Array.from({ length: 5_001 }, (_, n) => n));
    expect(got[5_000].value.big).toBe(big);
    await until(
      () => 'lag 0',
      async () => (await c.lag()) === 0,
      { timeoutMs: 15_000, everyMs: 20 },
    );
  });

  // One partition: without holding, a key whose handler keeps failing (a poison
  // message) would stop every key behind it for as long as it fails (on Kafka
  // only the keys sharing its partition wait; see the Kafka delivery spec).
  it('holds a failing key aside and lets the other keys through, then delivers the held key in order once it recovers', async () => {
    const handled: string[] = [];
    const holds: { key: string; messages: number }[] = [];
    let poisonFixed = false;
    await bus.close();
    bus = new InProcessMessageBus(db, { pollIntervalMs: 20, retryDelayMs: 10, maxHoldRetryMs: 40, onHold: (e) => holds.push({ key: e.key, messages: e.messages }) });
    const c = await bus.consume<{ n: number }>(
      'g',
      'poison.key',
      async (batch) => {
        if (!poisonFixed && batch.some((m) => m.key === 'poison')) throw new Error('poison cannot be handled (test)');
        for (const m of batch) handled.push(`${m.key}#${m.value.n}`);
      },
      { batchSize: 10 },
    );
    await bus.publish('poison.key', [{ key: 'poison', value: { n: 0 } }, ...Array.from({ length: 50 }, (_, n) => ({ key: `k${n % 5}`, value: { n } }))]);
    await bus.publish('poison.key', [{ key: 'poison', value: { n: 1 } }, { key: 'k0', value: { n: 50 } }]);
    try {
      await until(
        () => `the 51 messages of other keys handled, got ${handled.length}`,
        () => handled.length === 51,
        { timeoutMs: 3_000, everyMs: 20 },
      );
      expect(holds).toEqual([{ key: 'poison', messages: 1 }]);
      expect(await c.held!()).toBe(2);
      expect(await c.lag()).toBe(2);
      expect(db.prepare('SELECT count(*) AS n FROM bus_held').get()).toEqual({ n: 2 });
      for (let k = 0; k < 5; k++) {
        const own = handled.filter((h) => h.startsWith(`k${k}#`)).map((h) => Number(h.split('#')[1]));
        expect(own).toEqual([...own].sort((a, b) => a - b));
      }

      poisonFixed = true;
      await until(
        () => `the held key delivered, got ${handled.filter((h) => h.startsWith('poison')).join(', ')}`,
        () => handled.includes('poison#1'),
        { timeoutMs: 3_000, everyMs: 20 },
      );
      expect(handled.filter((h) => h.startsWith('poison'))).toEqual(['poison#0', 'poison#1']);
      await until(
        () => 'lag 0 and nothing held',
        async () => (await c.lag()) === 0 && (await c.held!()) === 0,
        { timeoutMs: 15_000, everyMs: 20 },
      );
      expect(db.prepare('SELECT count(*) AS n FROM bus_held').get()).toEqual({ n: 0 });

      await bus.publish('poison.key', [{ key: 'poison', value: { n: 2 } }]);
      await until(
        () => 'a later message of the released key handled',
        () => handled.includes('poison#2'),
        { timeoutMs: 15_000, everyMs: 20 },
      );
    } finally {
      await c.stop();
    }
  });

  it('tries a failed batch\'s keys many at a time, so a slow handler (a carrier call) does not make the isolation last a call per key', async () => {
    const handled = new Set<string>();
    const c = await bus.consume<{ n: number }>(
      'g',
      'slow.isolation',
      async (batch) => {
        await new Promise((r) => setTimeout(r, 50));
        if (batch.some((m) => m.key === 'poison')) throw new Error('poison (test)');
        for (const m of batch) handled.add(m.key);
      },
      { batchSize: 500 },
    );
    // 300 keys one call each, 50 ms a call: 15 s if tried one at a time.
    await bus.publish('slow.isolation', [{ key: 'poison', value: { n: 0 } }, ...Array.from({ length: 300 }, (_, n) => ({ key: `k${n}`, value: { n } }))]);
    try {
      await until(() => `300 other keys handled, got ${handled.size}`, () => handled.size === 300, { timeoutMs: 3_000 });
      expect(await c.held!()).toBe(1);
    } finally {
      await c.stop();
    }
  });

  it('keeps a held key held across a restart, its later messages behind it', async () => {
    const handled: string[] = [];
    let poisonFixed = false;
    const handler = async (batch: ConsumedMessage<{ n: number }>[]) => {
      if (!poisonFixed && batch.some((m) => m.key === 'poison')) throw new Error('poison (test)');
      for (const m of batch) handled.push(`${m.key}#${m.value.n}`);
    };
    const first = await bus.consume<{ n: number }>('g', 'restart.held', handler, { batchSize: 10 });
    await bus.publish('restart.held', [{ key: 'poison', value: { n: 0 } }, { key: 'a', value: { n: 0 } }]);
    await until(
      () => 'the other key handled',
      () => handled.includes('a#0'),
      { timeoutMs: 15_000, everyMs: 20 },
    );
    await first.stop();
    await bus.publish('restart.held', [{ key: 'poison', value: { n: 1 } }, { key: 'a', value: { n: 1 } }]);

    poisonFixed = true;
    const second = await bus.consume<{ n: number }>('g', 'restart.held', handler, { batchSize: 10 });
    try {
      await until(
        () => `everything handled after the restart, got ${handled.join(', ')}`,
        () => handled.includes('poison#1') && handled.includes('a#1'),
        { timeoutMs: 15_000, everyMs: 20 },
      );
      expect(handled.filter((h) => h.startsWith('poison'))).toEqual(['poison#0', 'poison#1']);
      await until(
        () => 'lag 0',
        async () => (await second.lag()) === 0,
        { timeoutMs: 15_000, everyMs: 20 },
      );
    } finally {
      await second.stop();
    }
  });

  it('holds nothing when every key fails (an outage, not a poison message): the batch waits and comes back whole', async () => {
    let down = true;
    const batches: string[][] = [];
    const c = await bus.consume<{ n: number }>(
      'g',
      'outage',
      async (batch) => {
        if (down) throw new Error('store unavailable (test)');
        batches.push(batch.map((m) => `${m.key}#${m.value.n}`));
      },
      { batchSize: 10 },
    );
    await bus.publish('outage', Array.from({ length: 6 }, (_, n) => ({ key: `k${n % 3}`, value: { n } })));
    await new Promise((r) => setTimeout(r, 300));
    expect(await c.held!()).toBe(0);
    expect(db.prepare('SELECT count(*) AS n FROM bus_held').get()).toEqual({ n: 0 });
    down = false;
    try {
      await until(
        () => 'the batch handled after the outage',
        () => batches.length > 0,
        { timeoutMs: 15_000, everyMs: 20 },
      );
      expect(batches[0]).toEqual(['k0#0', 'k1#1', 'k2#2', 'k0#3', 'k1#4', 'k2#5']);
    } finally {
      await c.stop();
    }
  });
});
