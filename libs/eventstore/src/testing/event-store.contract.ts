/**
 * The behaviour every EventStore adapter owes the rest of the code base.
 * An adapter's spec calls `describeEventStoreContract` with a factory; the
 * suite registers the tests.
 *
 * Written to also hold against a shared, long-lived log (EventStoreDB keeps
 * its data between tests and runs): every test uses streams of its own, reads
 * $all only from the head it saw before writing, and looks only at its own
 * streams there. Positions are compared, never computed: they are counters in
 * SQLite and byte offsets in EventStoreDB.
 */
import { randomUUID } from 'node:crypto';
import {
  ConcurrencyError,
  type EventData,
  type EventStore,
  type ExpectedRevision,
  type RecordedEvent,
  StoreUnavailableError,
  type Subscription,
} from '../event-store.port.js';

export interface EventStoreFixture {
  store: EventStore;
  /** Releases whatever the factory made; must tolerate a store the test already closed. */
  cleanup(): Promise<void>;
}

export type EventStoreFactory = () => Promise<EventStoreFixture>;

/** How long a test waits for events it expects before failing with a message that says what is missing. */
const WAIT_MS = 10_000;

const run = randomUUID().slice(0, 8);
let streamCount = 0;
/** A stream name no other test, run or process uses. */
function newStream(label: string): string {
  return `contract_${label}-${run}-${++streamCount}-${randomUUID().slice(0, 8)}`;
}

function ev(type: string, data: unknown = { n: 0 }, extra: Partial<EventData> = {}): EventData {
  return { type, data, ...extra };
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

async function readStreamAll(store: EventStore, streamId: string, options?: Parameters<EventStore['readStream']>[1]): Promise<RecordedEvent[]> {
  return collect(store.readStream(streamId, options));
}

/** The events of `streams` in $all after `from`, in log order. */
async function readAllOf(store: EventStore, from: bigint, streams: readonly string[]): Promise<RecordedEvent[]> {
  const wanted = new Set(streams);
  const out: RecordedEvent[] = [];
  for await (const e of store.readAll({ fromPosition: from })) if (wanted.has(e.streamId)) out.push(e);
  return out;
}

function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected the promise to reject, it resolved');
    },
    (error: unknown) => error,
  );
}

async function expectConflict(
  promise: Promise<unknown>,
  streamId: string,
  expected: ExpectedRevision,
  actual: bigint | undefined,
): Promise<void> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(ConcurrencyError);
  const c = error as ConcurrencyError;
  expect(c.streamId).toBe(streamId);
  expect(c.expected).toBe(expected);
  expect(c.actual).toBe(actual);
}

function expectStrictlyIncreasing(values: readonly bigint[]): void {
  for (let i = 1; i < values.length; i++) {
    if (values[i] <= values[i - 1]) throw new Error(`not strictly increasing at ${i}: ${values[i - 1]} then ${values[i]}`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Reads a subscription page by page, keeping only the events of some streams
 * (a shared log has other writers), and remembers the page sizes it saw.
 */
class SubscriptionReader {
  private readonly it: AsyncIterator<RecordedEvent[]>;
  private readonly buffered: RecordedEvent[] = [];
  readonly pageSizes: number[] = [];

  constructor(
    readonly sub: Subscription,
    private readonly streams: ReadonlySet<string>,
  ) {
    this.it = sub[Symbol.asyncIterator]();
  }

  /** The next `n` events of the watched streams. */
  async take(n: number, pause?: () => Promise<void>): Promise<RecordedEvent[]> {
    const deadline = Date.now() + WAIT_MS;
    while (this.buffered.length < n) {
      const left = deadline - Date.now();
      const r = await withTimeout(this.it.next(), Math.max(left, 1), `${n - this.buffered.length} more subscribed events`);
      if (r.done) throw new Error(`subscription ended with ${this.buffered.length} of ${n} events`);
      this.pageSizes.push(r.value.length);
      this.buffered.push(...r.value.filter((e) => this.streams.has(e.streamId)));
      if (pause) await pause();
    }
    return this.buffered.splice(0, n);
  }

  next(): Promise<IteratorResult<RecordedEvent[]>> {
    return this.it.next();
  }
}

export function describeEventStoreContract(name: string, factory: EventStoreFactory): void {
  describe(`EventStore contract: ${name}`, () => {
    let fixture: EventStoreFixture;
    let store: EventStore;
    const subscriptions: Subscription[] = [];

    beforeEach(async () => {
      fixture = await factory();
      store = fixture.store;
    });

    afterEach(async () => {
      await Promise.all(subscriptions.splice(0).map((s) => s.close()));
      await fixture.cleanup();
    });

    function subscribe(streams: readonly string[], options?: Parameters<EventStore['subscribe']>[0]): SubscriptionReader {
      const sub = store.subscribe(options);
      subscriptions.push(sub);
      return new SubscriptionReader(sub, new Set(streams));
    }

    describe('append with an expected revision (0-based)', () => {
      it('no_stream creates the stream at revision 0, then refuses it with the actual revision', async () => {
        const s = newStream('nostream');
        const r = await store.append(s, [ev('A')], 'no_stream');
        expect(r.nextExpectedRevision).toBe(0n);
        await expectConflict(store.append(s, [ev('B')], 'no_stream'), s, 'no_stream', 0n);
        expect((await readStreamAll(store, s)).map((e) => e.type)).toEqual(['A']);
      });

      it('any appends to a missing stream and to an existing one', async () => {
        const s = newStream('any');
        expect((await store.append(s, [ev('A')], 'any')).nextExpectedRevision).toBe(0n);
        expect((await store.append(s, [ev('B'), ev('C')], 'any')).nextExpectedRevision).toBe(2n);
        expect((await readStreamAll(store, s)).map((e) => [e.type, e.revision])).toEqual([
          ['A', 0n],
          ['B', 1n],
          ['C', 2n],
        ]);
      });

      it('stream_exists refuses a missing stream (actual: none) and accepts an existing one', async () => {
        const s = newStream('exists');
        await expectConflict(store.append(s, [ev('A')], 'stream_exists'), s, 'stream_exists', undefined);
        expect(await store.streamRevision(s)).toBeUndefined();
        await store.append(s, [ev('A')], 'no_stream');
        expect((await store.append(s, [ev('B')], 'stream_exists')).nextExpectedRevision).toBe(1n);
      });

      it('an exact revision must be the last one: stale, future and missing-stream revisions are refused with the actual one', async () => {
        const s = newStream('exact');
        await expectConflict(store.append(s, [ev('A')], 0n), s, 0n, undefined);
        await store.append(s, [ev('A'), ev('B')], 'no_stream');
        expect((await store.append(s, [ev('C')], 1n)).nextExpectedRevision).toBe(2n);
        await expectConflict(store.append(s, [ev('D')], 1n), s, 1n, 2n);
        await expectConflict(store.append(s, [ev('D')], 7n), s, 7n, 2n);
        expect((await store.append(s, [ev('D')], 2n)).nextExpectedRevision).toBe(3n);
        expect((await readStreamAll(store, s)).map((e) => e.type)).toEqual(['A', 'B', 'C', 'D']);
      });

      it('a multi-event append is contiguous in its stream and in the log, and reports its last event', async () => {
        const s = newStream('multi');
        const head = await store.headPosition();
        const r = await store.append(s, [ev('A'), ev('B'), ev('C')], 'no_stream');
        const events = await readStreamAll(store, s);
        expect(events.map((e) => e.revision)).toEqual([0n, 1n, 2n]);
        expect(r.nextExpectedRevision).toBe(2n);
        expect(r.position).toBe(events[2].position);
        expectStrictlyIncreasing(events.map((e) => e.position));

        // Nothing from any other writer lands between them in $all.
        const log = await collect(store.readAll({ fromPosition: head }));
        const at = log.findIndex((e) => e.streamId === s);
        expect(log.slice(at, at + 3).map((e) => [e.streamId, e.type])).toEqual([
          [s, 'A'],
          [s, 'B'],
          [s, 'C'],
        ]);
      });

      it('a refused multi-event append writes none of its events', async () => {
        const s = newStream('atomic');
        const head = await store.headPosition();
        await store.append(s, [ev('A')], 'no_stream');
        await expectConflict(store.append(s, [ev('X'), ev('Y'), ev('Z')], 'no_stream'), s, 'no_stream', 0n);
        expect((await readStreamAll(store, s)).map((e) => e.type)).toEqual(['A']);
        expect((await readAllOf(store, head, [s])).map((e) => e.type)).toEqual(['A']);
        expect(await store.streamRevision(s)).toBe(0n);
      });
    });

    describe('readStream, streamRevision and lastEvent', () => {
      it('reads from a revision (inclusive), at most maxCount, in revision order', async () => {
        const s = newStream('read');
        await store.append(s, ['E0', 'E1', 'E2', 'E3', 'E4'].map((t) => ev(t)), 'no_stream');
        const types = async (o: Parameters<EventStore['readStream']>[1]) => (await readStreamAll(store, s, o)).map((e) => e.type);
        expect(await types(undefined)).toEqual(['E0', 'E1', 'E2', 'E3', 'E4']);
        expect(await types({ fromRevision: 2n })).toEqual(['E2', 'E3', 'E4']);
        expect(await types({ maxCount: 2 })).toEqual(['E0', 'E1']);
        expect(await types({ fromRevision: 1n, maxCount: 3 })).toEqual(['E1', 'E2', 'E3']);
        expect(await types({ fromRevision: 4n, maxCount: 10 })).toEqual(['E4']);
        expect(await types({ fromRevision: 5n })).toEqual([]);
      });

      it('a missing stream reads empty and has no revision', async () => {
        const s = newStream('missing');
        expect(await readStreamAll(store, s)).toEqual([]);
        expect(await readStreamAll(store, s, { fromRevision: 3n, maxCount: 2 })).toEqual([]);
        expect(await store.streamRevision(s)).toBeUndefined();
      });

      it('streamRevision is the revision of the last event', async () => {
        const s = newStream('rev');
        await store.append(s, [ev('A'), ev('B')], 'no_stream');
        expect(await store.streamRevision(s)).toBe(1n);
        await store.append(s, [ev('C')], 1n);
        expect(await store.streamRevision(s)).toBe(2n);
      });

      it("lastEvent is the stream's last event, recorded as readStream records it, and moves with each append", async () => {
        const s = newStream('last');
        await store.append(s, [ev('A', { n: 1 }), ev('B', { n: 2 }, { metadata: { why: 'test' } }), ev('C', { n: 3 })], 'no_stream');
        const events = await readStreamAll(store, s);
        expect(await store.lastEvent(s)).toEqual(events[2]);
        await store.append(s, [ev('D', { n: 4 }), ev('E', { n: 5 })], 2n);
        expect(await store.lastEvent(s)).toMatchObject({ streamId: s, revision: 4n, type: 'E', data: { n: 5 } });
        await store.append(s, [ev('F', { n: 6 })], 4n);
        expect(await store.lastEvent(s)).toEqual((await readStreamAll(store, s, { fromRevision: 5n }))[0]);
      });

      it('a missing stream has no last event', async () => {
        expect(await store.lastEvent(newStream('nolast'))).toBeUndefined();
      });

      it('recorded events carry their stream, revision, id, type and creation time', async () => {
        const s = newStream('fields');
        const id = randomUUID();
        const before = Date.now();
        await store.append(s, [ev('WithId', { a: 1 }, { id }), ev('WithoutId', { a: 2 })], 'no_stream');
        const [a, b] = await readStreamAll(store, s);
        expect(a).toMatchObject({ streamId: s, revision: 0n, id, type: 'WithId', data: { a: 1 } });
        expect(b).toMatchObject({ streamId: s, revision: 1n, type: 'WithoutId', data: { a: 2 } });
        expect(b.id).toMatch(/\S/);
        expect(b.id).not.toBe(a.id);
        for (const e of [a, b]) {
          expect(new Date(e.created).toISOString()).toBe(e.created);
          // Server clocks may differ from ours; a minute catches unit mix-ups (seconds, ticks) without flaking.
          expect(Math.abs(Date.parse(e.created) - before)).toBeLessThan(60_000);
        }
      });
    });

    describe('readAll and headPosition', () => {
      it('reads the log in order across streams, from a position exclusive, at most maxCount', async () => {
        const s1 = newStream('all1');
        const s2 = newStream('all2');
        const head = await store.headPosition();
        await store.append(s1, [ev('a1')], 'no_stream');
        await store.append(s2, [ev('b1')], 'no_stream');
        await store.append(s1, [ev('a2')], 0n);
        const ours = await readAllOf(store, head, [s1, s2]);
        expect(ours.map((e) => e.type)).toEqual(['a1', 'b1', 'a2']);
        expectStrictlyIncreasing(ours.map((e) => e.position));

        expect((await readAllOf(store, ours[0].position, [s1, s2])).map((e) => e.type)).toEqual(['b1', 'a2']);
        expect((await readAllOf(store, ours[2].position, [s1, s2])).map((e) => e.type)).toEqual([]);
        const one = await collect(store.readAll({ fromPosition: ours[0].position, maxCount: 1 }));
        expect(one.map((e) => [e.streamId, e.type])).toEqual([[s2, 'b1']]);
      });

      it('headPosition is the position of the last event written', async () => {
        const s = newStream('head');
        const before = await store.headPosition();
        const r = await store.append(s, [ev('A'), ev('B')], 'no_stream');
        expect(r.position).toBeGreaterThan(before);
        expect(await store.headPosition()).toBe(r.position);
        const ours = await readAllOf(store, before, [s]);
        expect(ours[ours.length - 1].position).toBe(r.position);
      });

      it('positions strictly increase across streams, also under concurrent appends', async () => {
        const streams = Array.from({ length: 20 }, (_, i) => newStream(`pos${i}`));
        const head = await store.headPosition();
        const results = await Promise.all(streams.map((s) => store.append(s, [ev('A'), ev('B')], 'no_stream')));
        const ours = await readAllOf(store, head, streams);
        expect(ours).toHaveLength(40);
        expectStrictlyIncreasing(ours.map((e) => e.position));
        const lastOf = new Map(ours.map((e) => [e.streamId, e.position]));
        streams.forEach((s, i) => expect(results[i].position).toBe(lastOf.get(s)));
      });
    });

    describe('subscribe', () => {
      it('catches up on the backlog, then delivers live events, in order and once', async () => {
        const s = newStream('sub');
        const head = await store.headPosition();
        await store.append(s, [ev('E0'), ev('E1'), ev('E2')], 'no_stream');
        const reader = subscribe([s], { fromPosition: head });
        expect((await reader.take(3)).map((e) => e.revision)).toEqual([0n, 1n, 2n]);
        await store.append(s, [ev('E3')], 2n);
        await store.append(s, [ev('E4')], 3n);
        const live = await reader.take(2);
        expect(live.map((e) => [e.revision, e.type])).toEqual([
          [3n, 'E3'],
          [4n, 'E4'],
        ]);
        const positions = (await readStreamAll(store, s)).map((e) => e.position);
        expect(live.map((e) => e.position)).toEqual(positions.slice(3));
      });

      it('resumes after a position, exclusive', async () => {
        const s = newStream('resume');
        await store.append(s, [ev('E0'), ev('E1'), ev('E2')], 'no_stream');
        const events = await readStreamAll(store, s);
        const reader = subscribe([s], { fromPosition: events[1].position });
        const [first] = await reader.take(1);
        expect(first).toMatchObject({ type: 'E2', revision: 2n, position: events[2].position });
      });

      it('close() ends the iteration, also while it waits for live events', async () => {
        const s = newStream('close');
        await store.append(s, [ev('E0')], 'no_stream');
        const reader = subscribe([s], { fromPosition: await store.headPosition() });
        const pending = reader.next();
        await sleep(50);
        await reader.sub.close();
        // A page already on its way may still arrive; nothing after it.
        const r = await withTimeout(pending, WAIT_MS, 'the pending page after close');
        const after = r.done ? r : await withTimeout(reader.next(), WAIT_MS, 'the end after close');
        expect(after.done).toBe(true);
        expect((await reader.next()).done).toBe(true);
      });

      it('closing the store ends its subscriptions', async () => {
        const reader = subscribe([], { fromPosition: await store.headPosition() });
        const pending = reader.next();
        await sleep(50);
        await store.close();
        const r = await withTimeout(pending, WAIT_MS, 'the pending page after store close');
        const after = r.done ? r : await withTimeout(reader.next(), WAIT_MS, 'the end after store close');
        expect(after.done).toBe(true);
      });

      // How far ahead an adapter reads is not visible through the port; each
      // adapter's own spec measures it (SQLite: reads per pull; EventStoreDB:
      // events the server got to send while the consumer stalled).
      it('hands out pages of at most batchSize, and a slow consumer loses and reorders nothing', async () => {
        const s = newStream('slow');
        const head = await store.headPosition();
        await store.append(s, Array.from({ length: 30 }, (_, i) => ev('Backlog', { i })), 'no_stream');
        const reader = subscribe([s], { fromPosition: head, batchSize: 4 });
        const first = await reader.take(10, () => sleep(15));
        await store.append(s, Array.from({ length: 10 }, (_, i) => ev('Live', { i })), 29n);
        const rest = await reader.take(30, () => sleep(15));
        expect([...first, ...rest].map((e) => e.revision)).toEqual(Array.from({ length: 40 }, (_, i) => BigInt(i)));
        expect(Math.max(...reader.pageSizes)).toBeLessThanOrEqual(4);
      });
    });

    describe('concurrent appends', () => {
      it('appends racing with the same exact revision: exactly one wins, the others get the actual revision', async () => {
        const s = newStream('race');
        await store.append(s, [ev('Opened')], 'no_stream');
        const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => store.append(s, [ev('Racer', { i })], 0n)));
        const won = results.filter((r) => r.status === 'fulfilled');
        const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(7);
        for (const r of lost) {
          expect(r.reason).toBeInstanceOf(ConcurrencyError);
          expect(r.reason).toMatchObject({ streamId: s, expected: 0n, actual: 1n });
        }
        expect((await readStreamAll(store, s)).map((e) => e.type)).toEqual(['Opened', 'Racer']);
      });

      it('appends racing to create a stream: exactly one creates it', async () => {
        const s = newStream('create');
        const results = await Promise.allSettled(Array.from({ length: 5 }, () => store.append(s, [ev('Created')], 'no_stream')));
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ streamId: s, expected: 'no_stream', actual: 0n });
        expect(await store.streamRevision(s)).toBe(0n);
      });

      it('many concurrent appends to different streams all succeed', async () => {
        const streams = Array.from({ length: 100 }, (_, i) => newStream(`many${i}`));
        const results = await Promise.all(streams.map((s, i) => store.append(s, [ev('Opened', { i })], 'no_stream')));
        expect(results.every((r) => r.nextExpectedRevision === 0n)).toBe(true);
        expect(new Set(results.map((r) => r.position)).size).toBe(100);
        const revisions = await Promise.all(streams.map((s) => store.streamRevision(s)));
        expect(revisions.every((r) => r === 0n)).toBe(true);
      });

      it('an append that conflicts among concurrent ones fails alone; the others get what they would get alone', async () => {
        const existing = newStream('existing');
        await store.append(existing, [ev('A')], 'no_stream');
        const fresh = newStream('fresh');
        const missing = newStream('missing');
        const other = newStream('other');
        const [ok1, bad1, ok2, bad2, ok3, bad3] = await Promise.allSettled([
          store.append(fresh, [ev('A')], 'no_stream'),
          store.append(existing, [ev('B')], 'no_stream'),
          store.append(existing, [ev('B')], 0n),
          store.append(missing, [ev('A')], 3n),
          store.append(other, [ev('A'), ev('B')], 'any'),
          store.append(missing, [ev('A')], 'stream_exists'),
        ]);
        expect(ok1).toMatchObject({ status: 'fulfilled', value: { nextExpectedRevision: 0n } });
        expect(ok2).toMatchObject({ status: 'fulfilled', value: { nextExpectedRevision: 1n } });
        expect(ok3).toMatchObject({ status: 'fulfilled', value: { nextExpectedRevision: 1n } });
        expect(bad1).toMatchObject({ status: 'rejected', reason: { streamId: existing, expected: 'no_stream', actual: 0n } });
        expect(bad2).toMatchObject({ status: 'rejected', reason: { streamId: missing, expected: 3n } });
        expect(bad3).toMatchObject({ status: 'rejected', reason: { streamId: missing, expected: 'stream_exists' } });
        for (const r of [bad1, bad2, bad3]) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(ConcurrencyError);
        expect(((bad2 as PromiseRejectedResult).reason as ConcurrencyError).actual).toBeUndefined();
        expect(await store.streamRevision(missing)).toBeUndefined();
        expect((await readStreamAll(store, existing)).map((e) => e.type)).toEqual(['A', 'B']);
      });

      it('an append whose data is not JSON is refused alone', async () => {
        const bad = newStream('bigint');
        const good = newStream('good');
        const [b, g] = await Promise.allSettled([
          store.append(bad, [ev('Charged', { amount: 22_000n })], 'no_stream'),
          store.append(good, [ev('Charged', { amount: '22000' })], 'no_stream'),
        ]);
        expect(b.status).toBe('rejected');
        expect((b as PromiseRejectedResult).reason).toBeInstanceOf(TypeError);
        expect(g).toMatchObject({ status: 'fulfilled', value: { nextExpectedRevision: 0n } });
        expect(await store.streamRevision(bad)).toBeUndefined();
      });
    });

    describe('data and metadata', () => {
      it('round-trip unchanged, unicode included, through readStream, readAll and subscribe', async () => {
        const s = newStream('unicode');
        const data = {
          text: 'Mã OTP của bạn là 482913. Không chia sẻ mã này.',
          emoji: '🔐✅🇻🇳',
          cjk: '確認コード',
          rtl: 'رمز التحقق',
          escapes: 'quote " backslash \\ newline \n tab \t',
          nested: { list: [1, 'hai', null, true, { deep: 'đ' }], amount: '22000' },
          numbers: { zero: 0, negative: -12.5, big: 9_007_199_254_740_991 },
          empty: '',
        };
        const metadata = { correlationId: randomUUID(), note: 'Tiếng Việt 🇻🇳', nested: { ok: true } };
        const head = await store.headPosition();
        await store.append(s, [ev('Unicode', data, { metadata }), ev('NoMetadata', { x: 'ư' })], 'no_stream');

        const [viaStream, bare] = await readStreamAll(store, s);
        expect(viaStream.data).toEqual(data);
        expect(viaStream.metadata).toEqual(metadata);
        expect(bare.metadata).toBeUndefined();
        const [viaAll] = await readAllOf(store, head, [s]);
        expect(viaAll).toMatchObject({ data, metadata });
        const [viaSub] = await subscribe([s], { fromPosition: head }).take(1);
        expect(viaSub).toMatchObject({ data, metadata });
      });
    });

    describe('close', () => {
      it('close() settles appends already accepted, then refuses appends and reads; closing twice is fine', async () => {
        const s = newStream('closing');
        const accepted = store.append(s, [ev('A')], 'no_stream');
        await store.close();
        await expect(accepted).resolves.toMatchObject({ nextExpectedRevision: 0n });
        expect(await rejection(store.append(s, [ev('B')], 0n))).toBeInstanceOf(StoreUnavailableError);
        expect(await rejection(store.streamRevision(s))).toBeInstanceOf(StoreUnavailableError);
        expect(await rejection(store.lastEvent(s))).toBeInstanceOf(StoreUnavailableError);
        expect(await rejection(collect(store.readStream(s)))).toBeInstanceOf(StoreUnavailableError);
        expect(await rejection(store.headPosition())).toBeInstanceOf(StoreUnavailableError);
        await store.close();
      });
    });
  });
}
