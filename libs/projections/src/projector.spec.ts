import Database from 'better-sqlite3';
import type { EventStore, RecordedEvent } from '#eventstore';
import { readCheckpoint } from './checkpoints.js';
import type { Projection } from './projection.js';
import { Projector } from './projector.js';
import { rebuildProjection } from './rebuild.js';
import { defaultProjections } from './read-models/all.js';
import { getBalance } from './read-models/balances.queries.js';
import { moneyProjection } from './read-models/money.projection.js';
import { dumpTables } from './testing/dump.js';
import { acct, credited, delivered, isoAt, opened, otpStream, receipt, refunded, routed, sent, tempStore, type TempStore } from './testing/events.js';

const T = '2026-03-10T10:00:00.000Z';

/** A small mixed log: 3 accounts, 60 OTPs, deposits; about 300 events. */
async function writeLog(t: TempStore, from = 0, count = 60): Promise<void> {
  for (const id of ['A', 'B', 'C']) if (from === 0) await t.put(acct(id), opened(id, 2), credited(id.charCodeAt(0), 10_000_000n, T));
  for (let i = from; i < from + count; i++) {
    const account = acct(['A', 'B', 'C'][i % 3]);
    const otpId = `o${i}`;
    await t.put(account, sent(otpId, isoAt(T, i), { carrier: i % 2 ? 'viettel' : 'mobifone' }));
    await t.put(otpStream(otpId), routed(otpId, isoAt(T, i + 1)), receipt(otpId, isoAt(T, i + 3)));
    await t.put(account, i % 5 === 0 ? refunded(otpId, isoAt(T, i + 9)) : delivered(otpId, isoAt(T, i + 3 + (i % 7))));
  }
}

function dumpAll(db: Database.Database, projections: Projection[]): Record<string, unknown> {
  return Object.fromEntries(projections.map((p) => [p.name, dumpTables(db, p)]));
}

describe('Projector', () => {
  let t: TempStore;
  beforeEach(() => {
    t = tempStore();
  });
  afterEach(() => t.dispose());

  it('gives the same read models whatever the page size, even with OtpRequested and Charged on two pages', async () => {
    await writeLog(t);
    const projections = defaultProjections();
    const whole = new Projector({ store: t.store, db: t.store.db, projections, catchUpBatchSize: 5_000 });
    await whole.catchUp();
    const memory = new Database(':memory:');
    const onePerPage = new Projector({ store: t.store, db: memory, projections: defaultProjections(), catchUpBatchSize: 1 });
    await onePerPage.catchUp();
    expect(dumpAll(memory, projections)).toEqual(dumpAll(t.store.db, projections));
    expect(onePerPage.position()).toBe(await t.store.headPosition());
  });

  it('is idempotent on replay: a page applied twice counts once', async () => {
    await writeLog(t);
    const p = new Projector({ store: t.store, db: t.store.db, projections: defaultProjections() });
    const page = t.store.readPage(0, 10_000);
    p.applyPage(page);
    const once = dumpAll(t.store.db, defaultProjections());
    expect(p.applyPage(page)).toBe(0);
    expect(p.applyPage(page.slice(100, 200))).toBe(0);
    expect(dumpAll(t.store.db, defaultProjections())).toEqual(once);
  });

  it('resumes from its stored checkpoint after a restart', async () => {
    await writeLog(t, 0, 30);
    await new Projector({ store: t.store, db: t.store.db, projections: defaultProjections() }).catchUp();
    const head = await t.store.headPosition();
    await writeLog(t, 30, 30);
    const restarted = new Projector({ store: t.store, db: t.store.db, projections: defaultProjections() });
    expect(restarted.position()).toBe(head);
    const read = await restarted.catchUp();
    expect(read).toBe(Number((await t.store.headPosition()) - head));
    const fresh = new Database(':memory:');
    await new Projector({ store: t.store, db: fresh, projections: defaultProjections() }).catchUp();
    expect(dumpAll(t.store.db, defaultProjections())).toEqual(dumpAll(fresh, defaultProjections()));
  });

  it('rebuilds a projection from 0 when its version changes', async () => {
    await writeLog(t, 0, 10);
    await new Projector({ store: t.store, db: t.store.db, projections: [moneyProjection] }).catchUp();
    t.store.db.prepare("UPDATE balances SET balance = 1 WHERE account_id = 'A'").run();
    const v2 = { ...moneyProjection, version: moneyProjection.version + 1 };
    const p = new Projector({ store: t.store, db: t.store.db, projections: [v2] });
    expect(p.position()).toBe(0n);
    await p.catchUp();
    expect(getBalance(t.store.db, 'A')?.balance).not.toBe(1n);
    expect(readCheckpoint(t.store.db, 'money')).toEqual({ name: 'money', version: v2.version, position: await t.store.headPosition() });
  });

  it('rolls a failed page back whole: no projection and no checkpoint moves', async () => {
    await writeLog(t, 0, 10);
    const boom: Projection = {
      ...moneyProjection,
      name: 'boom',
      tables: [],
      ddl: () => '',
      writer: () => ({
        apply(e: RecordedEvent) {
          if (e.type === 'Delivered') throw new Error('bug');
        },
        flush() {},
        discard() {},
      }),
    };
    const p = new Projector({ store: t.store, db: t.store.db, projections: [moneyProjection, boom] });
    expect(() => p.applyPage(t.store.readPage(0, 10_000))).toThrow('bug');
    expect(p.position()).toBe(0n);
    expect(readCheckpoint(t.store.db, 'money')?.position).toBe(0n);
    expect(getBalance(t.store.db, 'A')).toBeUndefined();
  });

  it('follows the log live, reports its lag, and waits for read-your-writes', async () => {
    await writeLog(t, 0, 10);
    const p = new Projector({ store: t.store, db: t.store.db, projections: defaultProjections(), lagIntervalMs: 20 });
    const behind = await p.lag();
    expect(behind.events).toBe(Number(await t.store.headPosition()));
    expect(behind.seconds).toBeGreaterThanOrEqual(0);
    expect(await p.caughtUp()).toBe(false);
    p.start();
    try {
      await p.waitUntilCaughtUp(5_000);
      expect(await p.caughtUp()).toBe(true);
      await t.put(acct('A'), sent('live1', T));
      await p.waitUntilCaughtUp(5_000);
      expect(getBalance(t.store.db, 'A')?.pending).toBeGreaterThan(0n);
      expect(await p.lag()).toMatchObject({ events: 0, seconds: 0 });
      await expect(p.waitFor(10_000_000n, 50)).rejects.toThrow(/did not reach/);
    } finally {
      await p.stop();
    }
  });

  it('rebuilds one read model side by side and swaps it in while the live projector keeps going', async () => {
    await writeLog(t, 0, 60);
    const live = new Projector({ store: t.store, db: t.store.db, projections: defaultProjections(), batchSize: 7 });
    live.start();
    try {
      // Drift the live table, as a bug would: the rebuilt one must not carry it.
      await live.waitUntilCaughtUp(5_000);
      t.store.db.prepare("UPDATE balances SET balance = balance + 1 WHERE account_id = 'B'").run();
      const writing = writeLog(t, 60, 40);
      const result = await rebuildProjection({ store: t.store, db: t.store.db, projection: moneyProjection, batchSize: 13 });
      await writing;
      expect(result.events).toBeGreaterThan(0);
      await live.waitUntilCaughtUp(5_000);
    } finally {
      await live.stop();
    }
    const fresh = new Database(':memory:');
    await new Projector({ store: t.store, db: fresh, projections: defaultProjections() }).catchUp();
    expect(dumpAll(t.store.db, defaultProjections())).toEqual(dumpAll(fresh, defaultProjections()));
    const leftovers = t.store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%__rb%'").all();
    expect(leftovers).toEqual([]);
  });

  it("works the same through the port alone (EventStoreDB's shape: no synchronous page read)", async () => {
    await writeLog(t, 0, 40);
    const s = t.store;
    const portOnly: EventStore = {
      append: (id, events, expected) => s.append(id, events, expected),
      readStream: (id, o) => s.readStream(id, o),
      streamRevision: (id) => s.streamRevision(id),
      lastEvent: (id) => s.lastEvent(id),
      readAll: (o) => s.readAll(o),
      headPosition: () => s.headPosition(),
      subscribe: (o) => s.subscribe(o),
      close: async () => undefined,
    };
    const viaPort = new Database(':memory:');
    const p = new Projector({ store: portOnly, db: viaPort, projections: defaultProjections(), catchUpBatchSize: 50, batchSize: 30 });
    await p.catchUp((await s.headPosition()) / 2n);
    p.start();
    try {
      await writeLog(t, 40, 20);
      await p.waitUntilCaughtUp(5_000);
    } finally {
      await p.stop();
    }
    await rebuildProjection({ store: portOnly, db: viaPort, projection: moneyProjection, batchSize: 64 });
    const direct = new Database(':memory:');
    await new Projector({ store: s, db: direct, projections: defaultProjections() }).catchUp();
    expect(dumpAll(viaPort, defaultProjections())).toEqual(dumpAll(direct, defaultProjections()));
  });
});
