import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteEventStore, type RecordedEvent } from '#eventstore';
import { until } from '#testing';
import { DirectMessageBus } from './adapters/direct.message-bus.js';
import { InProcessMessageBus } from './adapters/in-process.message-bus.js';
import type { ConsumedMessage, MessageBus, OutgoingMessage } from './message-bus.port.js';
import { Relay, type RelayRoute } from './relay.js';

/** What each test message carries: where its event sits in the log. */
interface Routed {
  position: string;
  type: string;
  streamId: string;
}

// The routing the service uses, reduced to its shape: OTP requests to
// dispatch by phone, status changes to webhooks by account, the rest nowhere.
const route: RelayRoute = (e: RecordedEvent) => {
  const value: Routed = { position: String(e.position), type: e.type, streamId: e.streamId };
  const data = e.data as { phoneHash?: string; accountId?: string };
  if (e.type === 'OtpRequested') {
    return [
      { topic: 'nexo.otp.dispatch', message: { key: data.phoneHash!, value } },
      { topic: 'nexo.webhooks', message: { key: data.accountId!, value } },
    ];
  }
  if (e.type === 'Delivered') return [{ topic: 'nexo.webhooks', message: { key: data.accountId!, value } }];
  return [];
};

describe('Relay: event log → bus', () => {
  let dir: string;
  let file: string;
  let store: SqliteEventStore;
  const opened: Database.Database[] = [];
  const relays: Relay[] = [];

  const open = () => {
    const db = new Database(file);
    db.pragma('busy_timeout = 5000');
    opened.push(db);
    return db;
  };
  const relay = (...args: ConstructorParameters<typeof Relay>) => {
    const r = new Relay(...args);
    relays.push(r);
    return r;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nexo-relay-'));
    file = join(dir, 'service.db');
    store = SqliteEventStore.open(file, { pollIntervalMs: 20 });
  });

  afterEach(async () => {
    await Promise.all(relays.splice(0).map((r) => r.stop()));
    for (const db of opened.splice(0)) if (db.open) db.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** `n` OTPs over a few accounts and phones, each `[OtpRequested, Charged]`, every third one then Delivered. */
  async function appendOtps(n: number, from = 0): Promise<bigint> {
    let head = 0n;
    for (let i = from; i < from + n; i++) {
      const accountId = `acc-${i % 3}`;
      const otp = { otpId: `otp-${i}`, phoneHash: `ph-${i % 7}`, accountId };
      head = (await store.append(`account-${accountId}`, [{ type: 'OtpRequested', data: otp }, { type: 'Charged', data: otp }], 'any')).position;
      if (i % 3 === 0) head = (await store.append(`account-${accountId}`, [{ type: 'Delivered', data: otp }], 'any')).position;
    }
    return head;
  }

  /** Every message of a topic, in topic order, read by a fresh group on its own bus. */
  async function readTopic(topic: string): Promise<ConsumedMessage<Routed>[]> {
    const reader = new InProcessMessageBus(open(), { pollIntervalMs: 10 });
    const got: ConsumedMessage<Routed>[] = [];
    const c = await reader.consume<Routed>(`reader-${Math.random()}`, topic, async (b) => {
      got.push(...b);
    });
    await until(
      () => `reader of ${topic} to catch up`,
      async () => (await c.lag()) === 0,
      { timeoutMs: 5_000, everyMs: 10 },
    );
    await reader.close();
    return got;
  }

  /** Positions of the log's events that `route` sends to `topic`, in log order. */
  async function expected(topic: string, upTo: bigint): Promise<string[]> {
    const out: string[] = [];
    for await (const e of store.readAll()) {
      if (e.position > upTo) break;
      if (route(e).some((p) => p.topic === topic)) out.push(String(e.position));
    }
    return out;
  }

  it('publishes each routed event to its topics, in log order, with its key', async () => {
    const bus = new InProcessMessageBus(store.db, { pollIntervalMs: 20 });
    const head = await appendOtps(20);
    const r = relay(store, bus, store.db, route, { batchSize: 7 });
    r.start();
    await until(
      () => `checkpoint ${head}, at ${r.checkpoint}`,
      () => r.checkpoint === head,
      { timeoutMs: 5_000, everyMs: 10 },
    );

    const dispatch = await readTopic('nexo.otp.dispatch');
    const webhooks = await readTopic('nexo.webhooks');
    expect(dispatch.map((m) => m.value.position)).toEqual(await expected('nexo.otp.dispatch', head));
    expect(webhooks.map((m) => m.value.position)).toEqual(await expected('nexo.webhooks', head));
    expect(dispatch.every((m) => m.value.type === 'OtpRequested')).toBe(true);
    expect(dispatch[0].key).toBe('ph-0');
    expect(webhooks.map((m) => m.value.type)).toContain('Delivered');
    await bus.close();
  });

  it('with gatherMs, commits made during the pause after a short page go out as one page, and nothing is lost', async () => {
    const bus = new InProcessMessageBus(store.db, { pollIntervalMs: 20 });
    const pages: bigint[] = [];
    const r = relay(store, bus, store.db, route, { gatherMs: 1_000, onProgress: (p) => pages.push(p) });
    r.start();
    const first = await appendOtps(1);
    await until(
      () => `checkpoint ${first}, at ${r.checkpoint}`,
      () => r.checkpoint === first,
      { timeoutMs: 5_000, everyMs: 10 },
    );
    const before = pages.length;
    // Ten OTPs (fourteen commits) while the relay pauses after its last short page.
    const head = await appendOtps(10, 1);
    await until(
      () => `checkpoint ${head}, at ${r.checkpoint}`,
      () => r.checkpoint === head,
      { timeoutMs: 5_000, everyMs: 10 },
    );
    expect(pages.slice(before)).toEqual([head]);
    expect((await readTopic('nexo.webhooks')).map((m) => m.value.position)).toEqual(await expected('nexo.webhooks', head));
    await bus.close();
  });

  it('resumes from its checkpoint after a restart: nothing lost, nothing twice', async () => {
    const bus = new InProcessMessageBus(store.db, { pollIntervalMs: 20 });
    const firstHead = await appendOtps(15);
    const first = relay(store, bus, store.db, route, { batchSize: 4 });
    first.start();
    await until(
      () => `checkpoint ${firstHead}`,
      () => first.checkpoint === firstHead,
      { timeoutMs: 5_000, everyMs: 10 },
    );
    await first.stop();

    const head = await appendOtps(10, 15);
    const second = relay(store, bus, store.db, route, { batchSize: 4 });
    second.start();
    await until(
      () => `checkpoint ${head}, at ${second.checkpoint}`,
      () => second.checkpoint === head,
      { timeoutMs: 5_000, everyMs: 10 },
    );
    expect((await readTopic('nexo.otp.dispatch')).map((m) => m.value.position)).toEqual(await expected('nexo.otp.dispatch', head));
    expect((await readTopic('nexo.webhooks')).map((m) => m.value.position)).toEqual(await expected('nexo.webhooks', head));
    await bus.close();
  });

  it('republishes at most the page in flight after dying between publish and checkpoint, and loses nothing', async () => {
    // The bus has a connection of its own here, as Kafka would be: the relay
    // cannot make messages and checkpoint one transaction, which is the case
    // this test is about.
    const inner = new InProcessMessageBus(open(), { pollIntervalMs: 20 });
    const head = await appendOtps(30);
    const pageSize = 5;
    const checkpointDb = open();
    let pages = 0;
    // Publishes, then the process "dies" before the checkpoint: its
    // connection goes away, so the checkpoint write of this page never lands.
    const dying: MessageBus = {
      publish: async (topic: string, messages: readonly OutgoingMessage[]) => {
        await inner.publish(topic, messages);
        if (topic === 'nexo.otp.dispatch' && ++pages === 3) checkpointDb.close();
      },
      consume: (...args) => inner.consume(...args),
      health: () => inner.health(),
      close: async () => undefined,
    };
    const errors: unknown[] = [];
    const first = relay(store, dying, checkpointDb, route, { batchSize: pageSize, retryDelayMs: 60_000, onError: (e) => errors.push(e) });
    first.start();
    await until(
      () => 'the relay to die at its checkpoint',
      () => errors.length > 0,
      { timeoutMs: 5_000, everyMs: 10 },
    );
    const died = first.checkpoint;
    await first.stop();
    expect(died).toBeLessThan(head);

    const second = relay(store, inner, open(), route, { batchSize: pageSize });
    second.start();
    await until(
      () => `checkpoint ${head}, at ${second.checkpoint}`,
      () => second.checkpoint === head,
      { timeoutMs: 5_000, everyMs: 10 },
    );

    const got = (await readTopic('nexo.otp.dispatch')).map((m) => m.value.position);
    const all = await expected('nexo.otp.dispatch', head);
    // The log up to the page that died, then again from the checkpoint it left.
    const cut = all.findIndex((p) => BigInt(p) > died);
    const lastPage = all.filter((p) => BigInt(p) > died && BigInt(p) <= died + BigInt(pageSize));
    expect(lastPage.length).toBeGreaterThan(0);
    expect(got).toEqual([...all.slice(0, cut), ...lastPage, ...all.slice(cut)]);
    await inner.close();
  });

  it('commits messages and checkpoint together on the in-process bus: a failed checkpoint publishes nothing', async () => {
    const bus = new InProcessMessageBus(store.db, { pollIntervalMs: 20 });
    store.db.exec('CREATE TABLE IF NOT EXISTS relay_checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID');
    store.db.exec(`CREATE TRIGGER no_checkpoint BEFORE INSERT ON relay_checkpoints BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END`);
    const head = await appendOtps(6);
    const errors: unknown[] = [];
    const r = relay(store, bus, store.db, route, { batchSize: 4, retryDelayMs: 30, onError: (e) => errors.push(e) });
    r.start();
    await until(
      () => 'two refused checkpoints',
      () => errors.length >= 2,
      { timeoutMs: 5_000, everyMs: 10 },
    );
    expect(String(errors[0])).toMatch(/disk full/);
    expect(r.checkpoint).toBe(0n);
    const table = (t: string) => store.db.prepare<[string], { n: number }>("SELECT count(*) AS n FROM sqlite_master WHERE name = ?").get(t)!.n;
    const rows = (t: string) => (table(t) ? store.db.prepare<[], { n: number }>(`SELECT count(*) AS n FROM ${t}`).get()!.n : 0);
    expect(rows('bus_nexo_otp_dispatch')).toBe(0);
    expect(rows('bus_nexo_webhooks')).toBe(0);

    store.db.exec('DROP TRIGGER no_checkpoint');
    await until(
      () => `checkpoint ${head} once checkpoints are accepted again`,
      () => r.checkpoint === head,
      { timeoutMs: 5_000, everyMs: 10 },
    );
    expect((await readTopic('nexo.otp.dispatch')).map((m) => m.value.position)).toEqual(await expected('nexo.otp.dispatch', head));
    await bus.close();
  });

  it('on the direct bus, moves its checkpoint only after the consumer handled the page; a failed page comes again whole', async () => {
    const bus = new DirectMessageBus();
    const got: string[] = [];
    let failures = 1;
    await bus.consume<Routed>('g', 'nexo.webhooks', async (batch) => {
      if (failures-- > 0) throw new Error('consumer down (test)');
      got.push(...batch.map((m) => m.value.position));
    });
    const head = await appendOtps(12);
    const errors: unknown[] = [];
    const r = relay(store, bus, open(), (e) => route(e).filter((p) => p.topic === 'nexo.webhooks'), { retryDelayMs: 20, onError: (e) => errors.push(e) });
    r.start();
    await until(
      () => `checkpoint ${head}, at ${r.checkpoint}`,
      () => r.checkpoint === head,
      { timeoutMs: 5_000, everyMs: 10 },
    );
    expect(errors).toHaveLength(1);
    expect(got).toEqual(await expected('nexo.webhooks', head));
  });

  it('with heldFrom, saves its checkpoint below the first event a consumer still holds, and past it once released (saveCheckpoint)', async () => {
    const bus = new DirectMessageBus();
    // The consumer keeps the first Delivered it sees "in flight" (as a post-first webhook sender does).
    let held: bigint | undefined;
    const got: string[] = [];
    await bus.consume<Routed>('g', 'nexo.webhooks', async (batch) => {
      for (const m of batch) {
        got.push(m.value.position);
        if (m.value.type === 'Delivered' && held === undefined) held = BigInt(m.value.position);
      }
    });
    const db = open();
    const load = () => BigInt(db.prepare<[], { position: number }>("SELECT position FROM relay_checkpoints WHERE name = 'held'").get()?.position ?? 0);
    const only = (e: RecordedEvent) => route(e).filter((p) => p.topic === 'nexo.webhooks');
    const r = relay(store, bus, db, only, { name: 'held', batchSize: 4, heldFrom: () => held });
    r.start();
    const head = await appendOtps(9);
    await until(
      () => `checkpoint ${head}, at ${r.checkpoint}`,
      () => r.checkpoint === head,
      { timeoutMs: 5_000, everyMs: 10 },
    );
    // Published to the head, but saved only up to the event before the held one: a restart relays it again.
    expect(held).toBeDefined();
    expect(r.savedCheckpoint).toBe(held! - 1n);
    expect(load()).toBe(held! - 1n);
    held = undefined;
    r.saveCheckpoint();
    expect(load()).toBe(head);
    expect(r.savedCheckpoint).toBe(head);

    // What a restart from the held-back checkpoint relays: the held event and everything after it.
    await r.stop();
    db.prepare("UPDATE relay_checkpoints SET position = ? WHERE name = 'held'").run(head - 3n);
    got.length = 0;
    held = undefined;
    const again = relay(store, bus, db, only, { name: 'held' });
    again.start();
    await until(
      () => `restarted relay at ${head}, at ${again.checkpoint}`,
      () => again.checkpoint === head,
      { timeoutMs: 5_000, everyMs: 10 },
    );
    expect(got).toEqual((await expected('nexo.webhooks', head)).filter((p) => BigInt(p) > head - 3n));
  });

  it('gives the event loop a turn between pages while catching up', async () => {
    const bus = new DirectMessageBus();
    await bus.consume('g', 'nexo.webhooks', async () => undefined);
    const head = await appendOtps(30);
    const r = relay(store, bus, open(), (e) => route(e).filter((p) => p.topic === 'nexo.webhooks'), { batchSize: 5 });
    r.start();
    // A macrotask queued now runs before the relay has read every page.
    const seen = await new Promise<bigint>((resolve) => setImmediate(() => resolve(r.checkpoint)));
    expect(seen).toBeLessThan(head);
    await until(
      () => `checkpoint ${head}, at ${r.checkpoint}`,
      () => r.checkpoint === head,
      { timeoutMs: 5_000, everyMs: 10 },
    );
  });

  it('stops promptly while the bus keeps refusing a page', async () => {
    const errors: unknown[] = [];
    const down: MessageBus = {
      publish: async () => {
        throw new Error('broker down (test)');
      },
      consume: async () => {
        throw new Error('unused');
      },
      health: async () => ({ ok: false, reason: 'broker down (test)' }),
      close: async () => undefined,
    };
    await appendOtps(2);
    const r = relay(store, down, open(), route, { retryDelayMs: 60_000, onError: (e) => errors.push(e) });
    r.start();
    await until(
      () => 'a refused publish',
      () => errors.length > 0,
      { timeoutMs: 5_000, everyMs: 10 },
    );
    const started = Date.now();
    await r.stop();
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(r.checkpoint).toBe(0n);
  });
});
