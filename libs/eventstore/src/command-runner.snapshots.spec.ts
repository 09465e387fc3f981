/**
 * The command path's snapshots of long streams: written every so often after an append, used by the
 * next load (which then folds only the events after them), ignored whenever they are not of the
 * stream as it is now; and a long fold, with or without one, lets the event loop run.
 */
import { jest } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { accountDecider, accountStream, type AccountCommand, fold, type AccountEvent } from '#domain';
import { CommandRunner, type StateLoad } from './command-runner.js';
import { SqliteEventStore } from './adapters/sqlite.event-store.js';
import { SqliteSnapshotStore } from './adapters/sqlite.snapshot-store.js';
import type { SnapshotStore, StoredSnapshot } from './snapshot-store.port.js';
import { testDeposit } from './testing/seed-accounts.js';

const AT = '2026-11-25T10:00:00.000Z';
const hash = (n: number) => n.toString(16).padStart(64, '0');
const sealed = 'k1:AAAA';
const STREAM = accountStream('acc1');

const open: AccountCommand = { type: 'OpenAccount', accountId: 'acc1', name: 'x', testCredits: 0, at: AT };
const deposit = testDeposit(1_000_000_000n, AT);
const send = (i: number): AccountCommand => ({
  type: 'SendOtp',
  price: 22_000n,
  otp: { otpId: `otp${i}`, phone: sealed, phoneHash: hash(i), phoneMasked: '+8491****678', carrier: 'vinaphone', channel: 'sms', code: sealed, at: AT },
});
const deliver = (i: number): AccountCommand => ({ type: 'MarkDelivered', otpId: `otp${i}`, via: 'receipt', at: AT });

async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 1_000 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 2));
}

/** Records what the runner loads and saves. */
class Recording implements SnapshotStore {
  saved: { streamId: string; snapshot: StoredSnapshot }[] = [];
  constructor(readonly inner: SnapshotStore) {}
  load(streamId: string) {
    return this.inner.load(streamId);
  }
  async save(streamId: string, snapshot: StoredSnapshot) {
    this.saved.push({ streamId, snapshot });
    await this.inner.save(streamId, snapshot);
  }
}

describe('command path snapshots', () => {
  let dir: string;
  let store: SqliteEventStore;
  let db: Database.Database;
  let snapshots: Recording;
  let loads: StateLoad[];
  const runner = (extra: Partial<ConstructorParameters<typeof CommandRunner>[1]> = {}) =>
    new CommandRunner(store, { snapshots, snapshotEvery: 100, onLoad: (l) => loads.push(l), ...extra });
  const allEvents = async (): Promise<AccountEvent[]> => {
    const out: AccountEvent[] = [];
    for await (const e of store.readStream(STREAM)) out.push({ type: e.type, data: e.data } as AccountEvent);
    return out;
  };
  /** `n` sends, each delivered: three events an OTP. */
  const traffic = async (r: CommandRunner, from: number, n: number) => {
    for (let i = from; i < from + n; i++) {
      await r.handle(STREAM, accountDecider, send(i));
      await r.handle(STREAM, accountDecider, deliver(i));
    }
  };
  /** The account opened and funded, then `n` OTPs from `from`: 2 + 3n events. */
  const history = async (r: CommandRunner, n: number, from = 0) => {
    await r.handle(STREAM, accountDecider, open);
    await r.handle(STREAM, accountDecider, deposit);
    await traffic(r, from, n);
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nexo-snap-'));
    store = SqliteEventStore.open(join(dir, 'events.db'));
    db = new Database(join(dir, 'state.db'));
    snapshots = new Recording(new SqliteSnapshotStore(db));
    loads = [];
  });
  afterEach(async () => {
    await store.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('are written after an append once snapshotEvery events have gone by, at the revision of the last event written', async () => {
    const r = runner();
    await history(r, 60);
    // 182 events (revisions 0-181): one snapshot past revision 99, none yet for the next hundred.
    expect(snapshots.saved).toHaveLength(1);
    const [{ streamId, snapshot }] = snapshots.saved;
    expect(streamId).toBe(STREAM);
    expect(snapshot.revision).toBeGreaterThanOrEqual(99n);
    expect(snapshot.version).toBe(accountDecider.snapshot!.version);
    const events: { revision: bigint; id: string }[] = [];
    for await (const e of store.readStream(STREAM)) events.push(e);
    expect(events.find((e) => e.revision === snapshot.revision)?.id).toBe(snapshot.eventId);
    // What it holds is the fold of the stream up to that revision.
    const upTo = (await allEvents()).slice(0, Number(snapshot.revision) + 1);
    expect(accountDecider.snapshot!.decode(snapshot.state)).toEqual(fold(accountDecider, upTo));
  });

  it('serve the next load, which folds only the events after them and gives the same state as a full fold', async () => {
    const first = runner();
    await history(first, 60);
    const taken = snapshots.saved[0].snapshot.revision;
    loads = [];
    const second = runner();
    const result = await second.handle(STREAM, accountDecider, send(1000));
    expect(loads).toEqual([{ snapshot: 'used', events: Number(181n - taken), seconds: expect.any(Number) }]);
    expect(result.state).toEqual(fold(accountDecider, await allEvents()));
    // I2 across the snapshot: an OTP charged before it cannot be charged again, a settled one not settled again.
    await expect(second.handle(STREAM, accountDecider, send(3))).rejects.toMatchObject({ code: 'already_exists' });
    expect((await second.handle(STREAM, accountDecider, deliver(3))).events).toEqual([]);
  });

  it('are ignored when they are not of this stream: another history under the same name is folded whole', async () => {
    const first = runner();
    await history(first, 40);
    expect(snapshots.saved).toHaveLength(1);
    // A new log beside the old state file (a data directory restored in part, say): same stream, other events.
    await store.close();
    rmSync(join(dir, 'events.db'));
    store = SqliteEventStore.open(join(dir, 'events.db'));
    const again = runner({ snapshotEvery: 1_000 });
    await history(again, 45, 500);
    loads = [];
    const fresh = runner({ snapshotEvery: 1_000 });
    const result = await fresh.handle(STREAM, accountDecider, send(2000));
    expect(loads.map((l) => [l.snapshot, l.events])).toEqual([['stale', 137]]);
    expect(result.state).toEqual(fold(accountDecider, await allEvents()));
    expect(result.state.settled.has('otp3')).toBe(false);
  });

  it('are ignored when the stream is shorter than their revision, in another format, or unreadable', async () => {
    const first = runner();
    await history(first, 40);
    const good = snapshots.saved[0].snapshot;
    const variants: StoredSnapshot[] = [
      { ...good, revision: 10_000n },
      { ...good, version: good.version + 1 },
      { ...good, state: { nonsense: true } },
      { ...good, state: 'not a state' },
    ];
    for (const variant of variants) {
      await snapshots.inner.save(STREAM, variant);
      loads = [];
      const result = await runner({ snapshotEvery: 1_000_000 }).handle(STREAM, accountDecider, deliver(0));
      expect(loads.map((l) => [l.snapshot, l.events])).toEqual([['stale', 122]]);
      expect(result.state).toEqual(fold(accountDecider, await allEvents()));
    }
    // Text that is not JSON at all, as a damaged file might hold.
    db.prepare('UPDATE stream_snapshots SET state = ? WHERE stream_id = ?').run('{"opened": tru', STREAM);
    loads = [];
    await runner({ snapshotEvery: 1_000_000 }).handle(STREAM, accountDecider, deliver(0));
    expect(loads.map((l) => l.snapshot)).toEqual(['stale']);
  });

  it('a load that folded many events writes one at once; a failing snapshot store costs commands nothing', async () => {
    const plain = new CommandRunner(store);
    await history(plain, 40);
    expect(snapshots.saved).toHaveLength(0);
    await runner().handle(STREAM, accountDecider, deliver(0));
    expect(snapshots.saved.map((s) => s.snapshot.revision)).toEqual([121n]);

    const failures: unknown[] = [];
    const broken: SnapshotStore = {
      load: async () => {
        throw new Error('disk gone');
      },
      save: async () => {
        throw new Error('disk full');
      },
    };
    loads = [];
    const r = new CommandRunner(store, { snapshots: broken, snapshotEvery: 10, onLoad: (l) => loads.push(l), onSnapshot: (s) => s.error && failures.push(s.error) });
    await traffic(r, 100, 20);
    expect(loads.map((l) => l.snapshot)).toEqual(['stale']);
    // One failure, then a minute before the stream's next attempt.
    expect(failures).toEqual([new Error('disk full')]);
    expect(fold(accountDecider, await allEvents())).toEqual(r.cached(STREAM, accountDecider));
  });

  it('commands that join a waiting append never slip into a snapshot: each names the event at its revision and holds the fold up to it', async () => {
    const r = runner({ snapshotEvery: 10 });
    await r.handle(STREAM, accountDecider, open);
    await r.handle(STREAM, accountDecider, deposit);
    const appendOpen = jest.spyOn(store, 'appendOpen');
    const append = jest.spyOn(store, 'append');
    // Bursts issued in one tick: the first of each is decided at once and the rest join its append,
    // unless a snapshot is due at it, when they queue for the next batch instead.
    for (let burst = 0; burst < 8; burst++) {
      await Promise.all(Array.from({ length: 7 }, (_, i) => r.handle(STREAM, accountDecider, send(burst * 7 + i))));
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(appendOpen).toHaveBeenCalled();
    expect(append).toHaveBeenCalled();
    const events: { revision: bigint; id: string }[] = [];
    for await (const e of store.readStream(STREAM)) events.push(e);
    const domain = await allEvents();
    expect(snapshots.saved.length).toBeGreaterThan(0);
    for (const { snapshot } of snapshots.saved) {
      expect(events[Number(snapshot.revision)]?.id).toBe(snapshot.eventId);
      expect(accountDecider.snapshot!.decode(snapshot.state)).toEqual(fold(accountDecider, domain.slice(0, Number(snapshot.revision) + 1)));
    }
  });

  it('a snapshot never holds events another writer kept out of the log (a refused append)', async () => {
    const a = runner({ snapshotEvery: 10 });
    const b = runner({ snapshotEvery: 10 });
    await a.handle(STREAM, accountDecider, open);
    await a.handle(STREAM, accountDecider, deposit);
    // Interleaved writers: each one's cached revision goes stale, its appends are refused and retried.
    for (let i = 0; i < 30; i++) {
      await Promise.all([a.handle(STREAM, accountDecider, send(i)), b.handle(STREAM, accountDecider, send(100 + i))]);
    }
    const events = await allEvents();
    expect(snapshots.saved.length).toBeGreaterThan(0);
    for (const { snapshot } of snapshots.saved) {
      expect(accountDecider.snapshot!.decode(snapshot.state)).toEqual(fold(accountDecider, events.slice(0, Number(snapshot.revision) + 1)));
    }
  });

  it('one snapshot per turn of the event loop, after the answers: streams that cross the threshold in one commit do not stall it together', async () => {
    const streams = Array.from({ length: 6 }, (_, i) => accountStream(`acc${i}`));
    const r = runner({ snapshotEvery: 50 });
    for (const [i, stream] of streams.entries()) {
      await r.handle(stream, accountDecider, { ...open, accountId: `acc${i}` } as AccountCommand);
      await r.handle(stream, accountDecider, deposit);
      for (let j = 0; j < 23; j++) await r.handle(stream, accountDecider, send(j));
    }
    // Each stream is at 48 events; one more send each (two events), all in the same commit, reaches 50.
    let turn = 0;
    let ticking = true;
    const tick = () => {
      turn++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const turns: number[] = [];
    const inner = snapshots.save.bind(snapshots);
    snapshots.save = async (streamId, snapshot) => {
      turns.push(turn);
      await inner(streamId, snapshot);
    };
    const answeredAt: number[] = [];
    await Promise.all(streams.map((stream) => r.handle(stream, accountDecider, send(99)).then(() => answeredAt.push(turn))));
    await until(() => turns.length === streams.length);
    ticking = false;
    expect(new Set(turns).size).toBe(streams.length);
    expect(Math.max(...answeredAt)).toBeLessThanOrEqual(Math.min(...turns));
  });

  it('a long fold gives the event loop turns: timers run while a busy stream loads', async () => {
    const plain = new CommandRunner(store);
    await plain.handle(STREAM, accountDecider, open);
    await plain.handle(STREAM, accountDecider, deposit);
    // 6,000 events in large batches.
    for (let i = 0; i < 3_000; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => plain.handle(STREAM, accountDecider, send(i + j))));
    }
    let turns = 0;
    const tick = setInterval(() => turns++, 0);
    try {
      await new CommandRunner(store).handle(STREAM, accountDecider, deliver(0));
    } finally {
      clearInterval(tick);
    }
    expect(turns).toBeGreaterThan(0);
  });
});
