/**
 * The relay lease: of several instances started with a relay on one event log
 * (each with its own checkpoint file, as separate workers have), one relays;
 * when it dies another takes over from where the lease says it got to, not
 * from its own empty checkpoint; a graceful stop hands over at the next look.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteEventStore, type RecordedEvent } from '#eventstore';
import { until } from '#testing';
import type { MessageBus, OutgoingMessage } from './message-bus.port.js';
import { Relay, type RelayRoute } from './relay.js';
import { RelayLease, relayLeaseStream } from './relay-lease.js';

const TTL = 600;
const RENEW = 150;
const route: RelayRoute = (e: RecordedEvent) => (e.streamId.startsWith('otp-') ? [{ topic: 'nexo.otp.dispatch', message: { key: e.streamId, value: e.streamId } }] : []);

/** A bus that remembers which instance published what. */
function recordingBus(name: string, published: { by: string; key: string }[]): MessageBus {
  return {
    publish: async (_topic: string, messages: readonly OutgoingMessage[]) => void published.push(...messages.map((m) => ({ by: name, key: m.key }))),
    consume: () => Promise.reject(new Error('not consumed here')),
    health: async () => ({ ok: true }),
    close: async () => undefined,
  } as MessageBus;
}

describe('RelayLease: one relay per log, and a takeover when it dies', () => {
  let dir: string;
  let store: SqliteEventStore;
  const published: { by: string; key: string }[] = [];
  const leases: RelayLease[] = [];
  const dbs: Database.Database[] = [];

  const instance = (name: string) => {
    const db = new Database(':memory:');
    dbs.push(db);
    const relay = new Relay(store, recordingBus(name, published), db, route, { retryDelayMs: 20 });
    const lease = new RelayLease(store, relay, { holder: name, ttlMs: TTL, renewMs: RENEW });
    leases.push(lease);
    return { relay, lease };
  };
  const appendOtps = async (from: number, n: number) => {
    for (let i = from; i < from + n; i++) await store.append(`otp-${i}`, [{ type: 'OtpRequested', data: {} }], 'no_stream');
  };
  const keysBy = (name: string) => published.filter((p) => p.by === name).map((p) => p.key);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nexo-relay-lease-'));
    store = SqliteEventStore.open(join(dir, 'log.db'), { pollIntervalMs: 10 });
    published.length = 0;
  });

  afterEach(async () => {
    await Promise.all(leases.splice(0).map((l) => l.stop()));
    await store.close();
    for (const db of dbs.splice(0)) db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lets exactly one of three instances relay, and each event go out once', async () => {
    const all = ['a', 'b', 'c'].map(instance);
    for (const { lease } of all) lease.start();
    await appendOtps(0, 50);
    await until('all relayed', async () => (published.length >= 50 ? true : undefined));
    await new Promise((r) => setTimeout(r, RENEW * 3));
    expect(all.filter(({ lease }) => lease.leading)).toHaveLength(1);
    expect(published).toHaveLength(50);
    expect(new Set(published.map((p) => p.by)).size).toBe(1);
  });

  it('takes over after the holder stops renewing, from the position in the lease, not from zero', async () => {
    const a = instance('a');
    a.lease.start();
    await until('a leads', async () => (a.lease.leading ? true : undefined));
    await appendOtps(0, 20);
    await until('a relayed 20', async () => (keysBy('a').length >= 20 ? true : undefined));
    // Let a renewal carry the position, then let a die without a word (a crash): its relay stops, its lease stays.
    await new Promise((r) => setTimeout(r, RENEW * 2));
    (a.lease as unknown as { stopped: boolean }).stopped = true;
    await a.relay.stop();

    const b = instance('b');
    const started = Date.now();
    b.lease.start();
    await appendOtps(20, 10);
    await until('b relayed the new 10', async () => (keysBy('b').length >= 10 ? true : undefined), { timeoutMs: 5_000 });
    // Not before the lease ran out; and b's empty checkpoint did not make it publish the first 20 again.
    expect(Date.now() - started).toBeGreaterThanOrEqual(TTL - RENEW * 2);
    expect(keysBy('b')).toEqual(Array.from({ length: 10 }, (_, i) => `otp-${20 + i}`));
  });

  it('hands over at the next look after a graceful stop, and the old holder relays nothing more', async () => {
    const a = instance('a');
    const b = instance('b');
    a.lease.start();
    await until('a leads', async () => (a.lease.leading ? true : undefined));
    b.lease.start();
    await appendOtps(0, 5);
    await until('a relayed', async () => (keysBy('a').length >= 5 ? true : undefined));
    const stopped = Date.now();
    await a.lease.stop();
    await until('b leads', async () => (b.lease.leading ? true : undefined));
    expect(Date.now() - stopped).toBeLessThan(TTL);
    await appendOtps(5, 5);
    await until('b relayed', async () => (keysBy('b').length >= 5 ? true : undefined));
    expect(keysBy('a')).toHaveLength(5);
    expect(keysBy('b')).toEqual(['otp-5', 'otp-6', 'otp-7', 'otp-8', 'otp-9']);
    const types: string[] = [];
    for await (const e of store.readStream(relayLeaseStream('relay'))) types.push(`${e.type} ${(e.data as { holder: string }).holder}`);
    expect(types[0]).toBe('RelayLeaseTaken a');
    expect(types).toContain('RelayLeaseReleased a');
    expect(types.at(-1)).toMatch(/^RelayLease(Taken|Renewed) b$/);
  });

  it('steps down when another instance took the lease (its renewal is refused)', async () => {
    const a = instance('a');
    a.lease.start();
    await until('a leads', async () => (a.lease.leading ? true : undefined));
    const revision = await store.streamRevision(relayLeaseStream('relay'));
    await store.append(relayLeaseStream('relay'), [{ type: 'RelayLeaseTaken', data: { holder: 'z', at: new Date().toISOString(), position: '0' } }], revision!);
    await until('a stands by', async () => (a.lease.leading ? undefined : true), { timeoutMs: 2_000 });
    await appendOtps(0, 3);
    await new Promise((r) => setTimeout(r, 200));
    expect(keysBy('a')).toEqual([]);
  });
});
