/**
 * The embedded EventStore: one SQLite file in WAL mode.
 *
 * Durability: `synchronous = FULL`. In WAL mode FULL fsyncs the WAL at every
 * commit, so an append that was acknowledged survives a process crash and a
 * power loss; NORMAL would survive only the former, and an acknowledged charge
 * or deposit must survive both. The cost of that fsync is shared by group
 * commit: appends that arrive in the same turn of the event loop are written
 * in one transaction, each still checked against its own expected revision in
 * arrival order, so every caller gets the result it would have got alone.
 */
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import {
  type AppendResult,
  ConcurrencyError,
  type EventData,
  type EventStore,
  type ExpectedRevision,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  revisionMatches,
  StoreUnavailableError,
  type SubscribeOptions,
  type Subscription,
} from '../event-store.port.js';

export interface SqliteEventStoreOptions {
  /** Open read-only (the ledger CLI against a running service's file). */
  readonly?: boolean;
  /** Most appends committed in one transaction. */
  maxBatch?: number;
  /** Shortest time between two group commits (ms): appends arriving sooner wait and share the next fsync. */
  coalesceMs?: number;
  /** How often a subscription looks for events written by another process. */
  pollIntervalMs?: number;
  /** Called after every group commit: appends and events in it, and the time it took. */
  onCommit?: (stats: { appends: number; events: number; seconds: number }) => void;
}

interface PendingAppend {
  streamId: string;
  events: readonly SerializedEvent[];
  expected: ExpectedRevision;
  resolve(result: AppendResult): void;
  reject(error: unknown): void;
}

interface SerializedEvent {
  id: string;
  type: string;
  data: string;
  metadata: string | null;
}

interface EventRow {
  position: number;
  stream_id: string;
  revision: number;
  id: string;
  type: string;
  data: string;
  metadata: string | null;
  created: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  position  INTEGER PRIMARY KEY,
  stream_id TEXT    NOT NULL,
  revision  INTEGER NOT NULL,
  id        TEXT    NOT NULL,
  type      TEXT    NOT NULL,
  data      TEXT    NOT NULL,
  metadata  TEXT,
  created   INTEGER NOT NULL,
  UNIQUE (stream_id, revision)
);`;

const PAGE = 2_000;

/**
 * Serializes one append's events before it joins a batch: data that is not
 * JSON (a bigint that leaked out of the money module, say) must fail that
 * append alone, not abort the transaction that carries everyone else's.
 */
function serialize(events: readonly EventData[]): SerializedEvent[] {
  return events.map((e) => {
    const data = JSON.stringify(e.data);
    if (data === undefined) throw new TypeError(`event ${e.type}: data is not JSON-serializable`);
    return {
      id: e.id ?? randomUUID(),
      type: e.type,
      data,
      metadata: e.metadata === undefined ? null : JSON.stringify(e.metadata),
    };
  });
}

function toRecorded(row: EventRow): RecordedEvent {
  return {
    streamId: row.stream_id,
    revision: BigInt(row.revision),
    position: BigInt(row.position),
    id: row.id,
    type: row.type,
    data: JSON.parse(row.data),
    metadata: row.metadata === null ? undefined : JSON.parse(row.metadata),
    created: new Date(row.created).toISOString(),
  };
}

export class SqliteEventStore implements EventStore {
  /** The connection, shared with read models that live in the same file. */
  readonly db: Database.Database;
  private readonly queue: PendingAppend[] = [];
  private flushScheduled = false;
  private closed = false;
  private readonly waiters = new Set<() => void>();
  private readonly maxBatch: number;
  private readonly coalesceMs: number;
  private lastCommitEnd = 0;
  private lastBatchAppends = 0;
  private readonly pollIntervalMs: number;
  private readonly onCommit: SqliteEventStoreOptions['onCommit'];
  private readonly stmt: {
    revision: Database.Statement<[string], { r: number | null }>;
    head: Database.Statement<[], { p: number | null }>;
    insert: Database.Statement<[number, string, number, string, string, string, string | null, number]>;
    readStream: Database.Statement<[string, number, number], EventRow>;
    readAll: Database.Statement<[number, number], EventRow>;
  };

  static open(file: string, options: SqliteEventStoreOptions = {}): SqliteEventStore {
    return new SqliteEventStore(new Database(file, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false }), options);
  }

  constructor(db: Database.Database, options: SqliteEventStoreOptions = {}) {
    this.db = db;
    this.maxBatch = options.maxBatch ?? 5_000;
    this.coalesceMs = options.coalesceMs ?? 2;
    this.pollIntervalMs = options.pollIntervalMs ?? 200;
    this.onCommit = options.onCommit;
    if (!db.readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.exec(SCHEMA);
    }
    db.pragma('busy_timeout = 5000');
    // Stream-keyed index pages are scattered across hot streams; keeping them cached saves re-reads per commit.
    db.pragma('cache_size = -32768');
    this.stmt = {
      revision: db.prepare('SELECT max(revision) AS r FROM events WHERE stream_id = ?'),
      head: db.prepare('SELECT max(position) AS p FROM events'),
      insert: db.prepare('INSERT INTO events (position, stream_id, revision, id, type, data, metadata, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      readStream: db.prepare('SELECT * FROM events WHERE stream_id = ? AND revision >= ? ORDER BY revision LIMIT ?'),
      readAll: db.prepare('SELECT * FROM events WHERE position > ? ORDER BY position LIMIT ?'),
    };
  }

  append(streamId: string, events: readonly EventData[], expected: ExpectedRevision): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new StoreUnavailableError('event store is closed'));
    if (this.db.readonly) return Promise.reject(new StoreUnavailableError('event store is open read-only'));
    let serialized: SerializedEvent[];
    try {
      serialized = serialize(events);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ streamId, events: serialized, expected, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // When appends trickle in (the last commit carried few), let them gather for a moment after
        // it: one fsync then covers many writers. A burst, or a lone append after a quiet spell,
        // commits on the next turn.
        const trickle = this.lastBatchAppends > 0 && this.lastBatchAppends < 32;
        const wait = trickle ? this.lastCommitEnd + this.coalesceMs - performance.now() : 0;
        if (wait > 0) setTimeout(() => this.flush(), wait);
        else setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    this.lastBatchAppends = this.queue.length;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.commitBatch(batch);
    }
    this.lastCommitEnd = performance.now();
    for (const wake of this.waiters) wake();
  }

  private commitBatch(batch: PendingAppend[]): void {
    const started = performance.now();
    const outcomes: (AppendResult | ConcurrencyError)[] = [];
    let written = 0;
    const now = Date.now();
    try {
      this.db.transaction(() => {
        let position = this.stmt.head.get()?.p ?? 0;
        // Revisions decided earlier in this batch, so later appends see them.
        const overlay = new Map<string, number>();
        for (const a of batch) {
          const known = overlay.get(a.streamId) ?? this.stmt.revision.get(a.streamId)?.r ?? undefined;
          const actual = known === undefined || known === null ? undefined : BigInt(known);
          if (!revisionMatches(a.expected, actual)) {
            outcomes.push(new ConcurrencyError(a.streamId, a.expected, actual));
            continue;
          }
          if (a.events.length === 0) {
            outcomes.push({ nextExpectedRevision: actual ?? -1n, position: BigInt(position) });
            continue;
          }
          let revision = known ?? -1;
          for (const e of a.events) {
            revision += 1;
            position += 1;
            this.stmt.insert.run(position, a.streamId, revision, e.id, e.type, e.data, e.metadata, now);
          }
          written += a.events.length;
          overlay.set(a.streamId, revision);
          outcomes.push({ nextExpectedRevision: BigInt(revision), position: BigInt(position) });
        }
      }).immediate();
    } catch (error) {
      const failure = new StoreUnavailableError('append failed; nothing in this batch was written', { cause: error });
      for (const a of batch) a.reject(failure);
      return;
    }
    batch.forEach((a, i) => {
      const o = outcomes[i];
      if (o instanceof ConcurrencyError) a.reject(o);
      else a.resolve(o);
    });
    // The batch is committed and answered: an observer that throws must not
    // escape this setImmediate callback (an uncaught exception) or leave
    // later batches of this flush unwritten.
    try {
      this.onCommit?.({ appends: batch.length, events: written, seconds: (performance.now() - started) / 1000 });
    } catch {
      /* an observer's failure is not the append's */
    }
  }

  async *readStream(streamId: string, options: ReadStreamOptions = {}): AsyncIterable<RecordedEvent> {
    let from = Number(options.fromRevision ?? 0n);
    let left = options.maxCount ?? Number.POSITIVE_INFINITY;
    while (left > 0) {
      this.assertOpen();
      const rows = this.stmt.readStream.all(streamId, from, Math.min(PAGE, left));
      for (const row of rows) yield toRecorded(row);
      if (rows.length < PAGE) return;
      left -= rows.length;
      from = rows[rows.length - 1].revision + 1;
    }
  }

  async streamRevision(streamId: string): Promise<bigint | undefined> {
    this.assertOpen();
    const r = this.stmt.revision.get(streamId)?.r;
    return r === null || r === undefined ? undefined : BigInt(r);
  }

  async *readAll(options: ReadAllOptions = {}): AsyncIterable<RecordedEvent> {
    let from = Number(options.fromPosition ?? 0n);
    let left = options.maxCount ?? Number.POSITIVE_INFINITY;
    while (left > 0) {
      const rows = this.readPage(from, Math.min(PAGE, left));
      for (const e of rows) yield e;
      if (rows.length < PAGE) return;
      left -= rows.length;
      from = Number(rows[rows.length - 1].position);
    }
  }

  /** One page of the log after `fromPosition`; the fast path for projections and replays. */
  readPage(fromPosition: number, limit: number): RecordedEvent[] {
    this.assertOpen();
    return this.stmt.readAll.all(fromPosition, limit).map(toRecorded);
  }

  async headPosition(): Promise<bigint> {
    this.assertOpen();
    return BigInt(this.stmt.head.get()?.p ?? 0);
  }

  subscribe(options: SubscribeOptions = {}): Subscription {
    // A page of 0 would never advance: the subscription would poll forever.
    const batchSize = Math.max(1, options.batchSize ?? 1_000);
    let position = Number(options.fromPosition ?? 0n);
    let open = true;
    let wake: (() => void) | undefined;
    const store = this;
    const sleep = () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(done, store.pollIntervalMs);
        function done() {
          clearTimeout(timer);
          store.waiters.delete(done);
          wake = undefined;
          resolve();
        }
        wake = done;
        store.waiters.add(done);
      });
    return {
      async *[Symbol.asyncIterator]() {
        while (open && !store.closed) {
          const page = store.readPage(position, batchSize);
          if (page.length > 0) {
            position = Number(page[page.length - 1].position);
            yield page;
          } else {
            await sleep();
          }
        }
      },
      async close() {
        open = false;
        wake?.();
      },
    };
  }

  /** Reads on a closed store get the port's error, not better-sqlite3's TypeError. */
  private assertOpen(): void {
    if (this.closed) throw new StoreUnavailableError('event store is closed');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.queue.length > 0) this.flush();
    this.closed = true;
    for (const wake of this.waiters) wake();
    if (!this.db.readonly) this.db.pragma('wal_checkpoint(TRUNCATE)');
    this.db.close();
  }
}
