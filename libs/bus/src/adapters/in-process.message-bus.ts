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
 * One consumer per group and topic per bus: a second one would read from the
 * same committed offset and handle everything twice (Kafka would split the
 * partitions between them instead; this bus has one partition).
 */
import type Database from 'better-sqlite3';
import { type BatchHandler, BusError, type ConsumedMessage, type Consumer, type ConsumeOptions, type MessageBus, type OutgoingMessage } from '../message-bus.port.js';

interface Row {
  offset: number;
  key: string;
  value: string;
  headers: string | null;
}

export interface InProcessBusOptions {
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

  constructor(
    private readonly db: Database.Database,
    private readonly options: InProcessBusOptions = {},
  ) {
    db.exec(`CREATE TABLE IF NOT EXISTS bus_offsets (grp TEXT NOT NULL, topic TEXT NOT NULL, committed INTEGER NOT NULL,
      PRIMARY KEY (grp, topic)) WITHOUT ROWID`);
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
    const left = db.prepare<[number], { n: number }>(`SELECT count(*) AS n FROM ${table} WHERE offset > ?`).get(committed)!.n;
    db.exec(`DROP TABLE ${table}`);
    if (offsets) db.prepare('DELETE FROM bus_offsets WHERE topic = ?').run(topic);
    return left;
  }

  /** Whether `db` is this bus's connection: only then can a caller's transaction cover a publish. */
  sharesConnection(db: Database.Database): boolean {
    return db === this.db;
  }

  async publish(topic: string, messages: readonly OutgoingMessage[]): Promise<void> {
    if (this.closed) throw new BusError('closed', 'bus is closed');
    if (messages.length === 0) return;
    this.db.transaction(() => this.insert(topic, messages))();
    this.wake(topic);
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

    let position = committedStmt.get(group, topic)!.committed;
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

    let commits = 0;
    const loop = (async () => {
      while (running && !this.closed) {
        let rows: Row[];
        try {
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
          await sleep(pollMs, true);
          continue;
        }
        try {
          const batch: ConsumedMessage<V>[] = rows.map((r) => ({
            topic,
            key: r.key,
            value: JSON.parse(r.value) as V,
            headers: r.headers ? (JSON.parse(r.headers) as Record<string, string>) : {},
            offset: String(r.offset),
            partition: 0,
          }));
          await handler(batch);
        } catch (error) {
          this.options.onError?.(error, group, topic);
          await sleep(retryMs, false);
          continue;
        }
        // Committed even when stop() came during the handler: its effects are
        // durable, and leaving the batch uncommitted would only replay it.
        try {
          const last = rows[rows.length - 1].offset;
          commit.run(last, group, topic);
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
      lag: async () => Math.max(0, (headStmt.get()?.h ?? 0) - position),
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

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.consumers.values()].map((c) => c.stop()));
  }
}
