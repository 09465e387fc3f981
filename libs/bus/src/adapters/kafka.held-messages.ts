/**
 * The Kafka adapter's messages as fetched (`raw`, then `decode` to the port's
 * shape) and as held aside (see kafka.message-bus.ts for why and held-keys.ts
 * for the decisions): `KafkaHeldStore` keeps held ones in a table of a
 * SQLite file of the consuming process, written with `synchronous = FULL`
 * before the group's offset moves past them, since from then on this table
 * is their only copy; `ConsumerHolds` is one consumer's held keys and the
 * loop that retries them.
 *
 * Messages are kept as they came off the wire (the value's bytes, not its
 * JSON), so a value that is not JSON is held like any other and fails again
 * at each retry until someone looks at it. A key's messages are released in
 * the order they were held (the rowid), which is their partition's order.
 */
import type Database from 'better-sqlite3';
import type { IHeaders, KafkaMessage } from 'kafkajs';
import { commitDurably } from '#eventstore';
import { type Attempt, attempting, HeldKeys, type HoldOptions } from '../held-keys.js';
import { type BatchHandler, BusError, type ConsumedMessage } from '../message-bus.port.js';

/** A message as fetched: its value still bytes (see `decode`), its headers decoded. */
export interface RawMessage {
  partition: number;
  offset: string;
  key: string;
  value: Buffer | null;
  headers: Record<string, string>;
}

function text(value: Buffer | string | (Buffer | string)[] | undefined): string | undefined {
  // Kafka allows a header key more than once; the port has one value per key, and the last one wins as in the Java client's lastHeader().
  const one = Array.isArray(value) ? value[value.length - 1] : value;
  return one === undefined ? undefined : one.toString();
}

export function raw(partition: number, m: KafkaMessage): RawMessage {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries((m.headers ?? {}) as IHeaders)) {
    const s = text(v);
    if (s !== undefined) headers[k] = s;
  }
  return { partition, offset: m.offset, key: m.key?.toString('utf8') ?? '', value: m.value, headers };
}

/**
 * A value that is not JSON fails like a handler: reported, held or retried,
 * never skipped. The relay is these topics' only writer, so it means a
 * foreign producer, and skipping would drop data without a trace.
 */
export function decode<V>(topic: string, m: RawMessage): ConsumedMessage<V> {
  let value: V;
  try {
    value = (m.value === null ? null : JSON.parse(m.value.toString('utf8'))) as V;
  } catch (error) {
    throw new BusError('rejected', `kafka: ${topic}[${m.partition}]@${m.offset} is not JSON`, { cause: error });
  }
  return { topic, partition: m.partition, offset: m.offset, key: m.key, value, headers: m.headers };
}

/** A held message, with its place in the store. */
export interface HeldMessage extends RawMessage {
  seq: number;
}

interface HeldRow {
  seq: number;
  part: number;
  offset: number;
  key: string;
  value: Buffer | null;
  headers: string;
}

export class KafkaHeldStore {
  private readonly insert: Database.Statement<[string, string, number, bigint, string, Buffer | null, string, number]>;
  private readonly pageOf: Database.Statement<[string, string, string, number], HeldRow>;
  private readonly drop: Database.Statement<[string, string, string, number]>;
  private readonly leftOf: Database.Statement<[string, string, string], { n: number }>;
  private readonly keysOf: Database.Statement<[string, string], { key: string }>;
  private readonly countOf: Database.Statement<[string, string], { n: number }>;

  constructor(private readonly db: Database.Database) {
    // Not `bus_held`: that is the embedded bus's table, keyed by its single offset sequence.
    db.exec(`CREATE TABLE IF NOT EXISTS bus_kafka_held (seq INTEGER PRIMARY KEY, grp TEXT NOT NULL, topic TEXT NOT NULL, part INTEGER NOT NULL,
      offset INTEGER NOT NULL, key TEXT NOT NULL, value BLOB, headers TEXT NOT NULL, held_at INTEGER NOT NULL, UNIQUE (grp, topic, part, offset));
      CREATE INDEX IF NOT EXISTS bus_kafka_held_by_key ON bus_kafka_held (grp, topic, key, seq)`);
    // OR IGNORE: a batch redelivered after a crash between this write and the offset commit is held once.
    this.insert = db.prepare('INSERT OR IGNORE INTO bus_kafka_held (grp, topic, part, offset, key, value, headers, held_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    this.pageOf = db.prepare('SELECT seq, part, offset, key, value, headers FROM bus_kafka_held WHERE grp = ? AND topic = ? AND key = ? ORDER BY seq LIMIT ?');
    this.drop = db.prepare('DELETE FROM bus_kafka_held WHERE grp = ? AND topic = ? AND key = ? AND seq <= ?');
    this.leftOf = db.prepare('SELECT count(*) AS n FROM bus_kafka_held WHERE grp = ? AND topic = ? AND key = ?');
    this.keysOf = db.prepare('SELECT DISTINCT key FROM bus_kafka_held WHERE grp = ? AND topic = ?');
    this.countOf = db.prepare('SELECT count(*) AS n FROM bus_kafka_held WHERE grp = ? AND topic = ?');
  }

  /** Returns once `messages` are on disk (FULL for this one transaction, whatever the file's own setting). */
  hold(group: string, topic: string, messages: readonly RawMessage[], now: number): void {
    commitDurably(this.db, () => {
      for (const m of messages) this.insert.run(group, topic, m.partition, BigInt(m.offset), m.key, m.value, JSON.stringify(m.headers), now);
    });
  }

  keys(group: string, topic: string): string[] {
    return this.keysOf.all(group, topic).map((r) => r.key);
  }

  /** The key's oldest held messages, in order. */
  page(group: string, topic: string, key: string, limit: number): HeldMessage[] {
    return this.pageOf.all(group, topic, key, limit).map((r) => ({
      seq: r.seq,
      partition: r.part,
      offset: String(r.offset),
      key: r.key,
      value: r.value,
      headers: JSON.parse(r.headers) as Record<string, string>,
    }));
  }

  /** Drops the key's messages up to `last`; returns how many of the key's are left. */
  release(group: string, topic: string, key: string, last: HeldMessage): number {
    this.drop.run(group, topic, key, last.seq);
    return this.leftOf.get(group, topic, key)!.n;
  }

  count(group: string, topic: string): number {
    return this.countOf.get(group, topic)!.n;
  }
}

export interface ConsumerHoldsOptions extends Pick<HoldOptions, 'onHold'> {
  group: string;
  topic: string;
  /** Largest page of a held key handed over at once. */
  batchSize: number;
  retryMs: number;
  maxHoldRetryMs: number;
  onError?: (error: unknown, group: string, topic: string) => void;
}

/**
 * One consumer's held keys. The retry loop runs beside the partitions'
 * batches, so a held key's retry may call the handler while a batch of other
 * keys is in it, as two partitions do with `partitionsConsumedConcurrently`.
 * Per key it stays in order: a batch decides which of its messages go behind
 * a held key before it awaits the handler, and `hold` writes them and holds
 * their keys again in one synchronous step, so when a retry freed such a key
 * meanwhile, they land after what it released and are retried next.
 */
export class ConsumerHolds<V> {
  private readonly keys: HeldKeys;
  private readonly attempt: Attempt<HeldMessage>;
  private running = true;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly store: KafkaHeldStore,
    handler: BatchHandler<V>,
    decode: (m: RawMessage) => ConsumedMessage<V>,
    private readonly o: ConsumerHoldsOptions,
  ) {
    this.keys = new HeldKeys(o.retryMs, o.maxHoldRetryMs);
    for (const key of store.keys(o.group, o.topic)) this.keys.resume(key);
    this.attempt = attempting(handler, (rows) => rows.map(decode));
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }

  count(): number {
    return this.store.count(this.o.group, this.o.topic);
  }

  /**
   * Writes `messages` durably, then holds their keys: those of `failing` as newly failed (after a
   * backoff), the others (held already, or freed by a retry since the batch looked) as they are.
   */
  hold(messages: readonly RawMessage[], failing: ReadonlyMap<string, unknown>): void {
    const { group, topic } = this.o;
    const now = Date.now();
    this.store.hold(group, topic, messages, now);
    for (const m of messages) if (!failing.has(m.key)) this.keys.resume(m.key);
    for (const [key, error] of failing) {
      this.keys.hold(key, now);
      this.o.onHold?.({ group, topic, key, messages: messages.filter((m) => m.key === key).length, error });
    }
    this.wake?.();
  }

  start(): void {
    this.loop ??= this.retry();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
  }

  private async retry(): Promise<void> {
    const { group, topic, batchSize } = this.o;
    const pages = {
      page: (key: string) => this.store.page(group, topic, key, batchSize),
      release: (key: string, rows: HeldMessage[]) => this.store.release(group, topic, key, rows[rows.length - 1]) === 0,
      attempt: this.attempt,
      onError: (error: unknown) => this.o.onError?.(error, group, topic),
      running: () => this.running,
    };
    while (this.running) {
      let next: number;
      try {
        next = await this.keys.retryDue(pages);
      } catch (error) {
        // The store failed (a full disk, say): the loop must outlive it.
        pages.onError(error);
        next = Date.now() + this.o.retryMs;
      }
      if (!this.running) break;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.wake = undefined;
          resolve();
        };
        // Nothing held: only a new hold or stop() wakes the loop.
        const timer = Number.isFinite(next) ? setTimeout(done, Math.max(0, next - Date.now())) : undefined;
        this.wake = done;
      });
    }
  }
}
