/**
 * The EventStoreDB adapter without an EventStoreDB: the real client against
 * an in-memory stand-in of the server's gRPC Streams service (see
 * test/fake-eventstoredb.server.ts for what it copies and why). The same
 * contract runs against a real server in esdb.event-store.int.spec.ts.
 */
import {
  AccessDeniedError,
  DeadlineExceededError,
  UnavailableError,
  WrongExpectedVersionError,
} from '@eventstore/db-client';
import { describeEventStoreContract } from '../testing/event-store.contract.js';
import { ConcurrencyError, type EventData, type RecordedEvent, StoreUnavailableError } from '../event-store.port.js';
import { FakeEventStoreDb } from '../../test/fake-eventstoredb.server.js';
import { EsdbEventStore } from './esdb.event-store.js';
import { toActualRevision, toExpectedRevision, translateError } from './esdb.mapping.js';

const ev = (type: string, data: unknown = {}): EventData => ({ type, data });

let fake: Promise<FakeEventStoreDb> | undefined;
const server = () => (fake ??= FakeEventStoreDb.start());
afterAll(async () => {
  if (fake) await (await fake).stop();
});

describeEventStoreContract('esdb adapter against a stand-in server', async () => {
  const store = EsdbEventStore.connect((await server()).url);
  return { store, cleanup: () => store.close() };
});

describe('EventStoreDB adapter only', () => {
  const stores: EsdbEventStore[] = [];
  const connect = async (url?: string) => {
    const s = EsdbEventStore.connect(url ?? (await server()).url, { pageSize: 7 });
    stores.push(s);
    return s;
  };
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });

  it('system events are not part of the log: readAll, subscribe and headPosition skip them', async () => {
    const fakeServer = await server();
    const store = await connect();
    const head = await store.headPosition();
    const r = await store.append('sys-a', [ev('A'), ev('B')], 'any');
    fakeServer.writeSystemEvent();
    fakeServer.writeSystemEvent();
    expect(await store.headPosition()).toBe(r.position);

    const all: RecordedEvent[] = [];
    for await (const e of store.readAll({ fromPosition: head })) all.push(e);
    expect(all.length).toBeGreaterThan(0);
    expect(all.filter((e) => e.type.startsWith('$') || e.streamId.startsWith('$'))).toEqual([]);

    const sub = store.subscribe({ fromPosition: head });
    const it = sub[Symbol.asyncIterator]();
    const page: RecordedEvent[] = (await it.next()).value ?? [];
    expect(page.filter((e) => e.type.startsWith('$'))).toEqual([]);
    expect(page.map((e) => e.streamId)).toContain('sys-a');
    await sub.close();
  });

  it('readAll pages through the log (page size 7 here) without losing or repeating events', async () => {
    const store = await connect();
    const head = await store.headPosition();
    const stream = `paged-${Date.now()}`;
    await store.append(stream, Array.from({ length: 30 }, (_, i) => ev('E', { i })), 'no_stream');
    for (let i = 0; i < 5; i++) await store.append(stream, [ev('F', { i })], 'any');
    const revisions = [];
    for await (const e of store.readAll({ fromPosition: head })) if (e.streamId === stream) revisions.push(e.revision);
    expect(revisions).toEqual(Array.from({ length: 35 }, (_, i) => BigInt(i)));
  });

  it('a consumer that stops pulling holds the server back (flow control), then gets everything', async () => {
    const fakeServer = await server();
    const store = await connect();
    const head = await store.headPosition();
    const stream = `flow-${Date.now()}`;
    const total = 2_000;
    for (let i = 0; i < total; i += 500) {
      await store.append(stream, Array.from({ length: 500 }, (_, j) => ev('E', { i: i + j, pad: 'x'.repeat(200) })), 'any');
    }
    const sub = store.subscribe({ fromPosition: head, batchSize: 10 });
    const it = sub[Symbol.asyncIterator]();
    const first: RecordedEvent[] = (await it.next()).value ?? [];
    expect(first.length).toBeGreaterThan(0);
    expect(first.length).toBeLessThanOrEqual(10);
    const stats = fakeServer.subscriptions[fakeServer.subscriptions.length - 1];
    // Wait until the server stops sending: socket and HTTP/2 windows hold a
    // couple of hundred of these, a subscription that reads ahead takes them all.
    for (let last = -1, still = 0; still < 3; ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      still = stats.sent === last ? still + 1 : 0;
      last = stats.sent;
    }
    expect(stats.sent).toBeLessThan(total / 4);

    let received = first.filter((e) => e.streamId === stream).length;
    while (received < total) {
      const r = await it.next();
      if (r.done) break;
      received += r.value.filter((e) => e.streamId === stream).length;
    }
    expect(received).toBe(total);
    await sub.close();
  });

  it('a server that goes away: operations fail with StoreUnavailableError, and so does a subscription', async () => {
    const doomed = await FakeEventStoreDb.start();
    const store = await connect(doomed.url);
    await store.append('before', [ev('A')], 'no_stream');
    const sub = store.subscribe({ fromPosition: await store.headPosition() });
    const it = sub[Symbol.asyncIterator]();
    const pending = it.next();
    await doomed.stop();
    await expect(pending).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.append('after', [ev('B')], 'any')).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.streamRevision('before')).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.lastEvent('before')).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.headPosition()).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it('the older Append call (servers before 21.10) maps results and conflicts the same way', async () => {
    const legacy = await FakeEventStoreDb.start({ batchAppend: false });
    try {
      const store = await connect(legacy.url);
      const r = await store.append('legacy', [ev('A'), ev('B')], 'no_stream');
      const events: RecordedEvent[] = [];
      for await (const e of store.readStream('legacy')) events.push(e);
      expect(r).toEqual({ nextExpectedRevision: 1n, position: events[1].position });
      const conflict = await store.append('legacy', [ev('C')], 0n).catch((e: unknown) => e);
      expect(conflict).toBeInstanceOf(ConcurrencyError);
      expect(conflict).toMatchObject({ streamId: 'legacy', expected: 0n, actual: 1n });
      const missing = await store.append('nothing', [ev('C')], 'stream_exists').catch((e: unknown) => e);
      expect(missing).toMatchObject({ streamId: 'nothing', expected: 'stream_exists', actual: undefined });
    } finally {
      await legacy.stop();
    }
  });

  it('refuses event ids EventStoreDB cannot store, before sending anything', async () => {
    const store = await connect();
    await expect(store.append('ids', [{ type: 'A', data: {}, id: 'otp-1:charged' }], 'any')).rejects.toThrow(/UUID/);
    expect(await store.streamRevision('ids')).toBeUndefined();
  });
});

describe('EventStoreDB vendor values and errors in port terms', () => {
  it('expected revisions map one to one', () => {
    expect([toExpectedRevision('no_stream'), toExpectedRevision('any'), toExpectedRevision('stream_exists'), toExpectedRevision(4n)]).toEqual([
      'no_stream',
      'any',
      'stream_exists',
      4n,
    ]);
  });

  it('an actual revision of "no stream", -1 or garbage is no stream; a revision is itself', () => {
    expect(toActualRevision('no_stream')).toBeUndefined();
    expect(toActualRevision(-1n)).toBeUndefined();
    expect(toActualRevision('-1')).toBeUndefined();
    expect(toActualRevision(undefined)).toBeUndefined();
    expect(toActualRevision(7n)).toBe(7n);
    expect(toActualRevision('7')).toBe(7n);
  });

  it('WrongExpectedVersionError becomes a ConcurrencyError with our stream, expectation and the actual revision', () => {
    const append = { streamId: 'account-1', expected: 3n } as const;
    const stale = translateError(new WrongExpectedVersionError(undefined, { streamName: 'account-1', expected: 3n, current: 5n }), append);
    expect(stale).toBeInstanceOf(ConcurrencyError);
    expect(stale).toMatchObject({ streamId: 'account-1', expected: 3n, actual: 5n });
    const missing = translateError(new WrongExpectedVersionError(undefined, { streamName: 'account-1', expected: 3n, current: 'no_stream' }), append);
    expect((missing as ConcurrencyError).actual).toBeUndefined();
  });

  it('connection failures become StoreUnavailableError with the vendor error as cause; other errors pass through', () => {
    for (const vendor of [new UnavailableError(), new DeadlineExceededError(), Object.assign(new Error('14 UNAVAILABLE: No connection established'), { code: 14 })]) {
      const ours = translateError(vendor);
      expect(ours).toBeInstanceOf(StoreUnavailableError);
      expect((ours as StoreUnavailableError).cause).toBe(vendor);
    }
    // Of an append: written "no" when it never went out, "unknown" when the node may have taken it without answering.
    const append = { streamId: 'account-1', expected: 3n } as const;
    const notSent = Object.assign(new Error('14 UNAVAILABLE: No connection established. Last error: null.'), { code: 14 });
    expect(translateError(notSent, append)).toMatchObject({ name: 'StoreUnavailableError', written: 'no' });
    expect(translateError(new DeadlineExceededError(), append)).toMatchObject({ name: 'StoreUnavailableError', written: 'unknown' });
    expect(translateError(new UnavailableError(), append)).toMatchObject({ name: 'StoreUnavailableError', written: 'unknown' });
    expect(translateError(new DeadlineExceededError())).toMatchObject({ written: 'no' });
    const denied = new AccessDeniedError();
    expect(translateError(denied)).toBe(denied);
    const bug = new TypeError('bug');
    expect(translateError(bug)).toBe(bug);
  });
});
