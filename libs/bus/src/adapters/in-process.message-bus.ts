/**
 * The embedded bus: topics as append-only tables in the service's SQLite file,
 * group offsets beside them. It gives the embedded default Kafka's guarantees
 * (durable publish, per-key order, commit after effect, redelivery after a
 * crash) without a broker, so the relay and every consumer run the same code
 * in both modes.
 *
 * Per-key order holds because a group reads its topic in offset order and
 * hands batches to one handler at a time. Messages are pruned once every group
 * that ever consumed the topic has committed past them.
 *
 * A poison message: retried in place, a message whose handler keeps failing
 * would stop every key behind it (this bus has one partition), so it parks
 * keys instead, as the Kafka adapter does. A batch that fails `holdAfter` times in
 * a row is handed over again key by key; if some keys go through and others
 * still fail, the failing keys' messages are *held*: copied to `bus_held` in
 * the transaction that commits the batch, with every later message of those
 * keys, and retried on their own backoff, in offset order, until they go
 * through. Nothing is dropped and each key keeps its order; the other keys
 * are no longer blocked. When every key fails, or one fails with an outage
 * error (`isOutage`), it is an outage, not a poison message: nothing is held and the whole batch waits, as before. Held
 * messages count in `lag()` and are reported by `held()` and `onHold`. The
 * decisions are shared with the Kafka adapter (held-keys.ts).
 *
 * Durable publish. The service's state file runs `synchronous = NORMAL` (what
 * the relay writes there is derived from the log and rolls back together with
 * its checkpoint), which survives a process crash but may lose the last
 * transactions to a power loss. `publish` is how input that exists nowhere
 * else enters the bus (carrier receipts, acknowledged to the carrier once it
 * resolves), so it resolves only once its messages are on disk, as Kafka's
 * acks=all would have them replicated: the WAL is fdatasync'ed on libuv's
 * thread pool (`WalSync`), so the event loop never waits on the disk, and
 * publishes that overlap share one fsync. Consumers may take the messages
 * before that fsync ends; only the publisher's answer waits for it. (A
 * connection without a WAL file commits with FULL instead.)
 *
 * One consumer per group and topic per bus: a second one would read from the
 * same committed offset and handle everything twice (Kafka would split the
 * partitions between them instead; this bus has one partition).
 */
import type Database from 'better-sqlite3';
import { commitDurably, WalSync } from '#eventstore';
import { attempting, HeldKeys, type HeldPages, type HoldOptions, isolateFailingKeys } from '../held-keys.js';
import { type BatchHandler, BusError, type BusHealth, type ConsumedMessage, type Consumer, type ConsumeOptions, embeddedBusHealth, type MessageBus, type OutgoingMessage } from '../message-bus.port.js';

interface Row {
  offset: number;
  key: string;
  value: string;
  headers: string | null;
}

/** `holdAfter`, `maxHoldRetryMs`, `onHold`: see the header. */
export interface InProcessBusOptions extends HoldOptions {
  /** Poll interval when idle, for messages published by another process on the same file. */
  pollIntervalMs?: number;
  /** Delay before a failed batch is retried. */
  retryDelayMs?: number;
  onError?: (error: unknown, group: string, topic: string) => void;
}

const safeName = (topic: string) => {
  if (!/^[a-z0-9._-]{1,100}$/.test(topic)) throw new Error(`bad topic name: ${topic}`);
  return `bus_${topic.replace(/[.-]/g, '_')}`;
};

export class InProcessMessageBus implements MessageBus {
  private readonly created = new Set<string>();
  /** Insert statements of topics whose table exists for sure (prepared once, not per publish). */
  private readonly inserts = new Map<string, Database.Statement<[string, string, string | null]>>();
  private readonly wakers = new Map<string, Set<() => void>>();
  private readonly consumers = new Map<string, Consumer>();
  private closed = false;
  /** Syncs the connection's WAL after a publish; undefined without a WAL file. */
  private readonly walSync: WalSync | undefined;

  constructor(
    private readonly db: Database.Database,
    private readonly options: InProcessBusOptions = {},
  ) {
    this.walSync = WalSync.forConnection(db);
    db.exec(`CREATE TABLE IF NOT EXISTS bus_offsets (grp TEXT NOT NULL, topic TEXT NOT NULL, committed INTEGER NOT NULL,
      PRIMARY KEY (grp, topic)) WITHOUT ROWID`);
    db.exec(`CREATE TABLE IF NOT EXISTS bus_held (grp TEXT NOT NULL, topic TEXT NOT NULL, offset INTEGER NOT NULL, key TEXT NOT NULL,
      value TEXT NOT NULL, headers TEXT, held_at INTEGER NOT NULL, PRIMARY KEY (grp, topic, offset));
      CREATE INDEX IF NOT EXISTS bus_held_by_key ON bus_held (grp, topic, key, offset)`);
  }

  private table(topic: string): string {
    const t = safeName(topic);
    if (!this.created.has(topic)) {
      this.db.exec(`CREATE TABLE IF NOT EXISTS ${t} (offset INTEGER PRIMARY KEY, key TEXT NOT NULL, value TEXT NOT NULL, headers TEXT)`);
      // Inside a caller's transaction the CREATE can still be rolled back:
      // remembering it then would send every later insert to a missing table.
      if (!this.db.inTransaction) this.created.add(topic);
    }
    return t;
  }

  /**
   * Drops a topic's table and its offsets from a file that no longer uses this bus for it (in the
   * caller's transaction, if any). Returns how many messages `group` had not committed, or
   * undefined when the file has no such table.
   */
  static retireTopic(db: Database.Database, topic: string, group: string): number | undefined {
    const table = safeName(topic);
    const exists = (name: string) => db.prepare<[string], { n: number }>("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?").get(name)!.n > 0;
    if (!exists(table)) return undefined;
    const offsets = exists('bus_offsets');
    const committed = offsets ? (db.prepare<[string, string], { c: number }>('SELECT committed AS c FROM bus_offsets WHERE grp = ? AND topic = ?').get(group, topic)?.c ?? 0) : 0;
    let left = db.prepare<[number], { n: number }>(`SELECT count(*) AS n FROM ${table} WHERE offset > ?`).get(committed)!.n;
    db.exec(`DROP TABLE ${table}`);
    if (offsets) db.prepare('DELETE FROM bus_offsets WHERE topic = ?').run(topic);
    if (exists('bus_held')) {
      left += db.prepare<[string, string], { n: number }>('SELECT count(*) AS n FROM bus_held WHERE grp = ? AND topic = ?').get(group, topic)!.n;
      db.prepare('DELETE FROM bus_held WHERE topic = ?').run(topic);
    }
    return left;
  }

  /** Whether `db` is this bus's connection: only then can a caller's transaction cover a publish. */
  sharesConnection(db: Database.Database): boolean {
    return db === this.db;
  }

  async publish(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    if (this.closed) throw new BusError('closed', 'bus is closed');
    if (messages.length === 0) return;
    if (!this.walSync) {
      commitDurably(this.db, () => this.insert(topic, messages));
      this.wake(topic);
      return;
    }
    this.db.transaction(() => this.insert(topic, messages))();
    // Consumers may start on the messages before the fsync ends: what they do is durable in its
    // own right, and after a power loss that took these rows the publisher, never answered, sends
    // them again (consumers are idempotent). Only the answer to the publisher waits for the disk.
    this.wake(topic);
    await this.walSync.sync();
  }

  /**
   * Publishes inside a transaction the caller already holds on this bus's
   * connection (see `sharesConnection`), so a relay can write messages and
   * advance its checkpoint atomically.
   */
  publishInTransaction(topic: string, messages: readonly OutgoingMessage[]): void {
    if (this.closed) throw new BusError('closed', 'bus is closed');
    if (!this.db.inTransaction) throw new Error('publishInTransaction needs an open transaction on the bus connection');
    this.insert(topic, messages);
    // Consumers wake after the caller's transaction, when the rows are visible.
    queueMicrotask(() => this.wake(topic));
  }

  private insert(topic: string, messages: readonly OutgoingMessage[]): void {
    let insert = this.inserts.get(topic);
    if (!insert) {
      insert = this.db.prepare<[string, string, string | null]>(`INSERT INTO ${this.table(topic)} (key, value, headers) VALUES (?, ?, ?)`);
      if (this.created.has(topic)) this.inserts.set(topic, insert);
    }
    for (const m of messages) {
      const value = JSON.stringify(m.value);
      if (value === undefined) throw new TypeError(`message for ${topic} (key ${m.key}): value is not JSON-serializable`);
      insert.run(m.key, value, m.headers ? JSON.stringify(m.headers) : null);
    }
  }

  private wake(topic: string): void {
    for (const wake of this.wakers.get(topic) ?? []) wake();
  }

  async consume<V>(group: string, topic: string, handler: BatchHandler<V>, options: ConsumeOptions = {}): Promise<Consumer> {
    if (this.closed) throw new BusError('closed', 'bus is closed');
    const id = JSON.stringify([group, topic]);
    if (this.consumers.has(id)) throw new Error(`group ${group} already consumes ${topic} on this bus`);
    const table = this.table(topic);
    const batchSize = options.batchSize ?? 500;
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
    const pollMs = this.options.pollIntervalMs ?? 250;
    const retryMs = this.options.retryDelayMs ?? 500;
    const holdAfter = this.options.holdAfter ?? 3;
    const maxHoldRetryMs = this.options.maxHoldRetryMs ?? 60_000;
    this.db.prepare('INSERT OR IGNORE INTO bus_offsets (grp, topic, committed) VALUES (?, ?, 0)').run(group, topic);
    // The batch size written into the SQL: a bound LIMIT makes SQLite prepare the statement again at every read.
    const read = this.db.prepare<[number], Row>(`SELECT * FROM ${table} WHERE offset > ? ORDER BY offset LIMIT ${batchSize}`);
    const commit = this.db.prepare('UPDATE bus_offsets SET committed = max(committed, ?) WHERE grp = ? AND topic = ?');
    const committedStmt = this.db.prepare<[string, string], { committed: number }>('SELECT committed FROM bus_offsets WHERE grp = ? AND topic = ?');
    const headStmt = this.db.prepare<[], { h: number | null }>(`SELECT max(offset) AS h FROM ${table}`);
    // Keeps the row at the lowest committed offset: offsets are rowids, and
    // SQLite hands out max(rowid)+1, so emptying the table would restart the
    // numbering at 1, below every group's committed offset, and those groups
    // would skip every message published afterwards.
    const prune = this.db.prepare(`DELETE FROM ${table} WHERE offset < (SELECT min(committed) FROM bus_offsets WHERE topic = ?)`);
    const holdRow = this.db.prepare<[string, string, number, string, string, string | null, number]>(
      'INSERT OR IGNORE INTO bus_held (grp, topic, offset, key, value, headers, held_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    const readHeld = this.db.prepare<[string, string, string], Row>(
      `SELECT offset, key, value, headers FROM bus_held WHERE grp = ? AND topic = ? AND key = ? ORDER BY offset LIMIT ${batchSize}`,
    );
    const releaseHeld = this.db.prepare<[string, string, string, number]>('DELETE FROM bus_held WHERE grp = ? AND topic = ? AND key = ? AND offset <= ?');
    const heldKeys = this.db.prepare<[string, string], { key: string; n: number }>('SELECT key, count(*) AS n FROM bus_held WHERE grp = ? AND topic = ? GROUP BY key');

    let position = committedStmt.get(group, topic)!.committed;
    /** Keys with messages in `bus_held`: every later message of theirs is held too, to keep their order. */
    const held = new HeldKeys(retryMs, maxHoldRetryMs);
    let heldCount = 0;
    for (const { key, n } of heldKeys.all(group, topic)) {
      held.resume(key);
      heldCount += n;
    }
    let running = true;
    let wake: (() => void) | undefined;
    const wakers = this.wakers.get(topic) ?? new Set();
    this.wakers.set(topic, wakers);
    /**
     * Waits `ms`; stop() always cuts it short, a publish to the topic only
     * when `onPublish` (idle polling, not the backoff after a failure).
     */
    const sleep = (ms: number, onPublish: boolean) =>
      new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          wakers.delete(done);
          wake = undefined;
          resolve();
        };
        const timer = setTimeout(done, ms);
        wake = done;
        if (onPublish) wakers.add(done);
      });
    const toBatch = (rows: Row[]): ConsumedMessage<V>[] =>
      rows.map((r) => ({
        topic,
        key: r.key,
        value: JSON.parse(r.value) as V,
        headers: r.headers ? (JSON.parse(r.headers) as Record<string, string>) : {},
        offset: String(r.offset),
        partition: 0,
      }));
    const attempt = attempting(handler, toBatch);
    const heldPages: HeldPages<Row> = {
      page: (key) => readHeld.all(group, topic, key),
      release: (key, rows) => {
        releaseHeld.run(group, topic, key, rows[rows.length - 1].offset);
        heldCount -= rows.length;
        // A full page may have more behind it; a short one was the key's last (this loop alone holds).
        return rows.length < batchSize;
      },
      attempt,
      onError: (error) => this.options.onError?.(error, group, topic),
      running: () => running && !this.closed,
    };

    let commits = 0;
    let failures = 0;
    const loop = (async () => {
      let heldDueAt = held.size > 0 ? 0 : Infinity;
      while (running && !this.closed) {
        let rows: Row[];
        try {
          if (heldDueAt <= Date.now()) heldDueAt = await held.retryDue(heldPages);
          rows = read.all(position);
        } catch (error) {
          if (!this.db.open) break;
          // SQLITE_BUSY from another process on the file, say: the loop must
          // outlive it, and an escaped rejection would kill the process.
          this.options.onError?.(error, group, topic);
          await sleep(retryMs, false);
          continue;
        }
        if (rows.length === 0) {
          await sleep(Math.max(0, Math.min(pollMs, heldDueAt - Date.now())), true);
          continue;
        }
        const toHold = new Map<string, unknown>();
        const fresh = held.size === 0 ? rows : rows.filter((r) => !held.has(r.key));
        if (fresh.length > 0) {
          // The handler awaited here directly, not through attempt(): the
          // commit follows its resolution as closely as before holding existed.
          let failed = false;
          try {
            await handler(toBatch(fresh));
          } catch (error) {
            this.options.onError?.(error, group, topic);
            failed = true;
          }
          if (failed) {
            const keys = ++failures >= holdAfter && running ? await isolateFailingKeys(fresh, attempt, () => running) : undefined;
            if (!keys) {
              await sleep(retryMs, false);
              continue;
            }
            for (const [key, error] of keys) toHold.set(key, error);
          }
        }
        failures = 0;
        // Committed even when stop() came during the handler: its effects are
        // durable, and leaving the batch uncommitted would only replay it.
        try {
          const last = rows[rows.length - 1].offset;
          const now = Date.now();
          if (held.size === 0 && toHold.size === 0) commit.run(last, group, topic);
          else {
            const holding = rows.filter((r) => held.has(r.key) || toHold.has(r.key));
            this.db.transaction(() => {
              for (const r of holding) holdRow.run(group, topic, r.offset, r.key, r.value, r.headers, now);
              commit.run(last, group, topic);
            })();
            heldCount += holding.length;
          }
          for (const [key, error] of toHold) {
            heldDueAt = Math.min(heldDueAt, held.hold(key, now));
            this.options.onHold?.({ group, topic, key, messages: rows.filter((r) => r.key === key).length, error });
          }
          position = last;
          if (++commits % 100 === 0) prune.run(topic);
        } catch (error) {
          if (!this.db.open) break;
          this.options.onError?.(error, group, topic);
          await sleep(retryMs, false);
        }
      }
    })();

    const consumer: Consumer = {
      lag: async () => Math.max(0, (headStmt.get()?.h ?? 0) - position) + heldCount,
      held: async () => heldCount,
      stop: async () => {
        running = false;
        wake?.();
        await loop;
        if (this.consumers.get(id) === consumer) this.consumers.delete(id);
      },
    };
    this.consumers.set(id, consumer);
    return consumer;
  }

  async health(): Promise<BusHealth> {
    return embeddedBusHealth(this.closed);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.consumers.values()].map((c) => c.stop()));
    await this.walSync?.close();
  }
}
