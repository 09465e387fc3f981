import { jest } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BroadcastChannel } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { describeEventStoreContract } from '../testing/event-store.contract.js';
import { until } from '#testing';
import type { EventData, RecordedEvent, StoreUnavailableError } from '../event-store.port.js';
import { SqliteEventStore, type SqliteEventStoreOptions } from './sqlite.event-store.js';

const ev = (type: string, data: unknown = {}): EventData => ({ type, data });

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

function tempFile(): { file: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'nexo-sqlite-store-'));
  return { file: join(dir, 'events.db'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

describeEventStoreContract('sqlite', async () => {
  const { file, remove } = tempFile();
  // A short poll keeps the read-only and cross-process paths honest without slowing the suite.
  const store = SqliteEventStore.open(file, { pollIntervalMs: 20 });
  return {
    store,
    async cleanup() {
      await store.close();
      remove();
    },
  };
});

// The same contract with group commits on the caller's thread (no writer thread).
describeEventStoreContract('sqlite (inline writer)', async () => {
  const { file, remove } = tempFile();
  const store = SqliteEventStore.open(file, { pollIntervalMs: 20, writer: 'inline' });
  return {
    store,
    async cleanup() {
      await store.close();
      remove();
    },
  };
});

describe('SQLite event store only', () => {
  let tmp: ReturnType<typeof tempFile>;
  const opened: SqliteEventStore[] = [];
  const open = (options?: SqliteEventStoreOptions) => {
    const s = SqliteEventStore.open(tmp.file, options);
    opened.push(s);
    return s;
  };

  beforeEach(() => {
    tmp = tempFile();
  });
  afterEach(async () => {
    for (const s of opened.splice(0).reverse()) await s.close();
    tmp.remove();
  });

  it('an empty log has head position 0 and positions count from 1', async () => {
    const store = open();
    expect(await store.headPosition()).toBe(0n);
    const r = await store.append('s', [ev('A'), ev('B')], 'no_stream');
    expect(r.position).toBe(2n);
    expect((await collect(store.readAll())).map((e) => e.position)).toEqual([1n, 2n]);
  });

  it('reopening the file keeps every event, revision and position', async () => {
    const first = open();
    await first.append('a', [ev('A0', { v: 'đ' }), ev('A1')], 'no_stream');
    await first.append('b', [ev('B0')], 'no_stream');
    const before = await collect(first.readAll());
    await first.close();

    const second = open();
    expect(await collect(second.readAll())).toEqual(before);
    expect(await second.streamRevision('a')).toBe(1n);
    expect(await second.headPosition()).toBe(3n);
    const r = await second.append('a', [ev('A2')], 1n);
    expect(r).toEqual({ nextExpectedRevision: 2n, position: 4n });
  });

  it("a writer thread's cached stream revisions give way to another connection's commits (optimistic concurrency holds across writers)", async () => {
    const a = open(); // the writer thread, which keeps the revisions it wrote
    const b = open({ writer: 'inline' }); // another writer on the same file (another process, say)
    await a.append('s', [ev('A0')], 'no_stream');
    await b.append('s', [ev('B1')], 0n);
    // a's cache says revision 0; the file says 1.
    await expect(a.append('s', [ev('A-stale')], 0n)).rejects.toMatchObject({ name: 'ConcurrencyError' });
    expect(await a.append('s', [ev('A2')], 1n)).toMatchObject({ nextExpectedRevision: 2n });
    await b.append('t', [ev('B-t0')], 'no_stream');
    await expect(a.append('t', [ev('A-t')], 'no_stream')).rejects.toMatchObject({ name: 'ConcurrencyError' });
    expect((await collect(b.readStream('s'))).map((e) => e.type)).toEqual(['A0', 'B1', 'A2']);
  });

  it('a read-only second connection sees what the writer appends, also through a polling subscription', async () => {
    const writer = open();
    await writer.append('s', [ev('E0')], 'no_stream');
    const reader = open({ readonly: true, pollIntervalMs: 10 });
    expect((await collect(reader.readStream('s'))).map((e) => e.type)).toEqual(['E0']);

    const sub = reader.subscribe({ fromPosition: 0n });
    const it = sub[Symbol.asyncIterator]();
    expect((await it.next()).value?.map((e: RecordedEvent) => e.type)).toEqual(['E0']);
    // The writer is another connection: nothing wakes the reader but its poll.
    const next = it.next();
    await writer.append('s', [ev('E1'), ev('E2')], 0n);
    expect((await next).value?.map((e: RecordedEvent) => [e.type, e.revision])).toEqual([
      ['E1', 1n],
      ['E2', 2n],
    ]);
    expect(await reader.headPosition()).toBe(3n);
    await sub.close();
    expect((await it.next()).done).toBe(true);

    await expect(reader.append('s', [ev('X')], 'any')).rejects.toThrow(/read-only/);
  });

  it('announces commits to the other stores on the file at most every few ms, and always after the last one', async () => {
    const writer = open();
    // Only a notice can wake this reader quickly: its own poll is a minute away.
    const reader = open({ readonly: true, pollIntervalMs: 60_000 });
    const listener = new BroadcastChannel(`nexo-sqlite-log:${resolve(tmp.file)}`);
    let notices = 0;
    listener.onmessage = () => notices++;
    const sub = reader.subscribe({ fromPosition: 0n });
    const it = sub[Symbol.asyncIterator]();
    const started = performance.now();
    for (let i = 0; i < 40; i++) await writer.append('s', [ev(`E${i}`)], 'any');
    const elapsed = performance.now() - started;
    let seen = 0;
    while (seen < 40) seen += ((await it.next()).value as RecordedEvent[]).length;
    await new Promise((r) => setTimeout(r, 20));
    listener.close();
    await sub.close();
    expect(notices).toBeGreaterThanOrEqual(1);
    expect(notices).toBeLessThanOrEqual(Math.ceil(elapsed / 5) + 1);
  });

  it('group commit: appends made in one tick are written in one transaction', async () => {
    const commits: { appends: number; events: number }[] = [];
    const store = open({ onCommit: ({ appends, events }) => commits.push({ appends, events }) });
    const results = await Promise.all(Array.from({ length: 25 }, (_, i) => store.append(`g${i}`, [ev('A'), ev('B')], 'no_stream')));
    expect(commits).toEqual([{ appends: 25, events: 50 }]);
    expect(results.map((r) => r.position)).toEqual(Array.from({ length: 25 }, (_, i) => BigInt(2 * i + 2)));

    await store.append('later', [ev('A')], 'no_stream');
    expect(commits).toHaveLength(2);
  });

  it("every event carries its own commit's time, whatever was read just before it (commits share one; reads remember the last)", async () => {
    const store = open();
    for (let i = 0; i < 4; i++) {
      await store.append(`t${i}`, [ev('A'), ev('B')], 'no_stream');
      await new Promise((r) => setTimeout(r, 3));
    }
    const raw = new Database(tmp.file, { readonly: true });
    const times = new Map(raw.prepare<[], { position: number; created: number }>('SELECT position, created FROM events').all().map((r) => [BigInt(r.position), new Date(r.created).toISOString()]));
    raw.close();
    expect(new Set(times.values()).size).toBe(4);
    // The whole log, then one commit's events at a time out of order: each event has its own time.
    const reads = [store.readPage(0, 100), ...[3, 1, 2, 0].map((i) => store.readPage(2 * i, 2))];
    for (const page of reads) for (const e of page) expect(e.created).toBe(times.get(e.position));
  });

  it('group commit: later appends in a batch see the revisions of earlier ones, in arrival order', async () => {
    const commits: number[] = [];
    const store = open({ onCommit: ({ appends }) => commits.push(appends) });
    const [a, b, c] = await Promise.allSettled([
      store.append('s', [ev('A')], 'no_stream'),
      store.append('s', [ev('B')], 0n),
      store.append('s', [ev('C')], 0n),
    ]);
    expect(commits).toEqual([3]);
    expect(a).toMatchObject({ status: 'fulfilled', value: { nextExpectedRevision: 0n } });
    expect(b).toMatchObject({ status: 'fulfilled', value: { nextExpectedRevision: 1n } });
    expect(c).toMatchObject({ status: 'rejected', reason: { expected: 0n, actual: 1n } });
  });

  it('writer thread: an append made in the continuations of a commit\'s answers, however deep, goes with the next group, not the one after', async () => {
    const commits: number[] = [];
    const store = open({ onCommit: ({ appends }) => commits.push(appends) });
    const first = store.append('a', [ev('A')], 'no_stream');
    await new Promise((r) => setImmediate(r));
    // `a` is with the writer; `b` waits for the next group. `c` is appended three promise hops after
    // `a` is answered, as a command runner's next batch would be.
    const waiting = store.append('b', [ev('B')], 'no_stream');
    const later = first
      .then(() => Promise.resolve())
      .then(() => Promise.resolve())
      .then(() => store.append('c', [ev('C')], 'no_stream'));
    await Promise.all([waiting, later]);
    expect(commits).toEqual([1, 2]);
  });

  describe('appendOpen: an append that takes more events until its group commit', () => {
    it.each(['thread', 'inline'] as const)('%s writer: events added while it waits commit with it, in order, under its one expected revision', async (writer) => {
      const commits: { appends: number; events: number }[] = [];
      const store = open({ writer, onCommit: ({ appends, events }) => commits.push({ appends, events }) });
      const first = store.appendOpen('s', [ev('A')], 'no_stream');
      expect(first.open).toBe(true);
      first.extend([ev('B'), ev('C')]);
      first.extend([ev('D')]);
      expect(await first.result).toEqual({ nextExpectedRevision: 3n, position: 4n });
      expect(commits).toEqual([{ appends: 1, events: 4 }]);
      expect((await collect(store.readStream('s'))).map((e) => [e.type, e.revision])).toEqual([
        ['A', 0n],
        ['B', 1n],
        ['C', 2n],
        ['D', 3n],
      ]);
      // Once taken for the writer it is closed, and says so.
      expect(first.open).toBe(false);
      expect(() => first.extend([ev('E')])).toThrow(/takes no more events/);
      expect(await store.appendOpen('s', [ev('E')], 3n).result).toEqual({ nextExpectedRevision: 4n, position: 5n });
    });

    it('events that cannot be stored are refused alone: the append keeps what it had', async () => {
      const store = open();
      const a = store.appendOpen('s', [ev('A')], 'no_stream');
      expect(() => a.extend([ev('Bad', { n: 1n })])).toThrow(TypeError);
      a.extend([ev('B')]);
      expect(await a.result).toEqual({ nextExpectedRevision: 1n, position: 2n });
      expect((await collect(store.readStream('s'))).map((e) => e.type)).toEqual(['A', 'B']);
    });

    it('a revision that does not match fails the append with everything added to it, and nothing is written', async () => {
      const store = open();
      await store.append('s', [ev('A')], 'no_stream');
      const stale = store.appendOpen('s', [ev('B')], 'no_stream');
      stale.extend([ev('C')]);
      await expect(stale.result).rejects.toMatchObject({ name: 'ConcurrencyError', expected: 'no_stream', actual: 0n });
      expect((await collect(store.readStream('s'))).map((e) => e.type)).toEqual(['A']);
    });

    it('refused at once on a closed store, and takes nothing', async () => {
      const store = open();
      await store.close();
      const a = store.appendOpen('s', [ev('A')], 'no_stream');
      expect(a.open).toBe(false);
      await expect(a.result).rejects.toMatchObject({ name: 'StoreUnavailableError' });
      expect(() => a.extend([ev('B')])).toThrow(/takes no more events/);
    });
  });

  it('writer thread: a failed transaction fails its whole batch with StoreUnavailableError; the next batch is written', async () => {
    const store = open();
    store.db.exec(`CREATE TRIGGER no_boom BEFORE INSERT ON events WHEN NEW.type = 'Boom' BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END`);
    const [a, b] = await Promise.allSettled([store.append('a', [ev('Fine')], 'no_stream'), store.append('b', [ev('Boom')], 'no_stream')]);
    expect(a).toMatchObject({ status: 'rejected', reason: { name: 'StoreUnavailableError' } });
    expect(b).toMatchObject({ status: 'rejected', reason: { name: 'StoreUnavailableError' } });
    expect(await store.headPosition()).toBe(0n);
    expect(await store.append('a', [ev('Fine')], 'no_stream')).toEqual({ nextExpectedRevision: 0n, position: 1n });
  });

  it('writer thread that dies: the batch in hand fails as possibly written, and a new thread takes the next appends', async () => {
    const deaths: Error[] = [];
    const store = open({ onWriterRestart: (death) => deaths.push(death) });
    expect(await store.append('a', [ev('First')], 'no_stream')).toEqual({ nextExpectedRevision: 0n, position: 1n });
    // Dies with a batch in hand: committed or not, the caller is told it may have been.
    const inHand = store.append('b', [ev('InHand')], 'no_stream');
    await store.crashWriterThread();
    const outcome = await inHand.then(
      () => 'written',
      (error: StoreUnavailableError) => error.written,
    );
    expect(['written', 'unknown']).toContain(outcome);
    // A new thread within a second: appends before it are refused as not written.
    const next = await until(
      'an append through a new writer thread',
      () =>
        store.append('a', [ev('Second')], 0n).catch((error: unknown) => {
          expect(error).toMatchObject({ name: 'StoreUnavailableError', written: 'no' });
          return undefined;
        }),
      { timeoutMs: 5_000, everyMs: 100 },
    );
    expect(next.nextExpectedRevision).toBe(1n);
    expect(deaths.map((d) => d.message)).toEqual([expect.stringMatching(/^the writer thread exited \(code 1\)$/)]);
    const types: string[] = [];
    for await (const e of store.readAll()) types.push(e.type);
    expect(types.filter((t) => t !== 'InHand')).toEqual(['First', 'Second']);
  });

  it('close writes every append accepted before it, then releases the file', async () => {
    const store = open();
    const pending = Array.from({ length: 200 }, (_, i) => store.append(`c${i % 7}`, [ev('E', { i })], 'any'));
    await store.close();
    await Promise.all(pending);
    const reader = open({ readonly: true });
    expect(await reader.headPosition()).toBe(200n);
  });

  it('group commit: an unserializable append and a throwing onCommit observer change no one else’s result', async () => {
    let calls = 0;
    const store = open({
      onCommit: () => {
        calls++;
        throw new Error('observer broke');
      },
    });
    const [bad, good] = await Promise.allSettled([
      store.append('bad', [ev('Charged', { amount: 1n })], 'no_stream'),
      store.append('good', [ev('Charged', { amount: '1' })], 'no_stream'),
    ]);
    expect(bad.status).toBe('rejected');
    expect(good).toMatchObject({ status: 'fulfilled', value: { nextExpectedRevision: 0n, position: 1n } });
    expect(calls).toBe(1);
    expect(await store.append('good', [ev('Again')], 0n)).toEqual({ nextExpectedRevision: 1n, position: 2n });
  });

  it('a subscription reads one page per pull: a consumer that stops pulling stops the reads', async () => {
    const store = open();
    await store.append('s', Array.from({ length: 50 }, (_, i) => ev('E', { i })), 'no_stream');
    const reads = jest.spyOn(store, 'readPage');
    const sub = store.subscribe({ batchSize: 5 });
    const it = sub[Symbol.asyncIterator]();
    expect((await it.next()).value).toHaveLength(5);
    expect(reads).toHaveBeenCalledTimes(1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await store.append('s', [ev('Live')], 49n);
    expect(reads).toHaveBeenCalledTimes(1);
    expect((await it.next()).value?.[0].revision).toBe(5n);
    expect(reads).toHaveBeenCalledTimes(2);
    await sub.close();
  });
});
