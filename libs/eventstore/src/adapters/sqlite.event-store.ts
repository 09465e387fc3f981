/**
 * The embedded EventStore: one SQLite file in WAL mode.
 *
 * Durability: `synchronous = FULL` (see `prepareLogConnection`). The cost of
 * that fsync is shared by group commit: appends that arrive while the previous
 * commit is being written (or in the same turn of the event loop) are written
 * in one transaction, each still checked against its own expected revision in
 * arrival order, so every caller gets the result it would have got alone.
 *
 * Writes run on a writer thread with its own connection (`writer: 'thread'`,
 * the default for a file): page writes, fsync and WAL checkpoints then overlap
 * the caller's work instead of blocking its event loop. Reads stay on this
 * thread's connection, which sees every commit the writer acknowledged.
 * Every store opened on the same file in this process (any thread: a
 * projector thread, say) hears of each commit on a BroadcastChannel, so its
 * subscriptions wake at once instead of at their next poll.
 */
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { BroadcastChannel, Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import {
  type AppendResult,
  ConcurrencyError,
  type EventData,
  type EventStore,
  type ExpectedRevision,
  type ReadAllOptions,
  type ReadStreamOptions,
  type OpenAppend,
  type RecordedEvent,
  StoreUnavailableError,
  type SubscribeOptions,
  type Subscription,
} from '../event-store.port.js';
import { prepareLogConnection, type SerializedEvent, SqliteLogWriter, WRITER_CACHE_KIB, type WriteRequest, type WriteResult } from './sqlite.log-writer.js';
import type { WriterMessage, WriterReply } from './sqlite.writer-thread.js';
import { threadScriptUrl } from '../thread-script.js';
import { isoTime } from './iso-time.js';

export interface SqliteEventStoreOptions {
  /** Open read-only (the ledger CLI against a running service's file). */
  readonly?: boolean;
  /**
   * Where group commits run: on a writer thread with its own connection (the default when
   * opened from a file), or inline on the caller's thread (the default for a given connection).
   */
  writer?: 'thread' | 'inline';
  /** Most appends committed in one transaction. */
  maxBatch?: number;
  /** Inline writer: shortest time between two group commits (ms); appends arriving sooner wait and share the next fsync. */
  coalesceMs?: number;
  /** Page cache of this thread's connection (KiB); a reader that only follows the log's tail needs little. */
  cacheKib?: number;
  /** How often a subscription looks for events written by another process. */
  pollIntervalMs?: number;
  /** Called after every group commit: appends and events in it, and the time it took. */
  onCommit?: (stats: { appends: number; events: number; seconds: number }) => void;
  /** Called when a writer thread that died is started again, with why it died. */
  onWriterRestart?: (death: Error) => void;
}

interface PendingAppend extends WriteRequest {
  events: SerializedEvent[];
  /** Gone into a batch for the writer: `extend` no longer takes events. */
  taken: boolean;
  resolve(result: AppendResult): void;
  reject(error: unknown): void;
}

/**
 * An event as the reads fetch it: a row in raw mode (an array in `EVENT_COLUMNS` order), since
 * better-sqlite3 builds an object with named properties per row at ~1 µs more per event (2.2-2.4
 * against 1.3-1.4 µs per row of the log, measured), on every event every reader reads.
 */
type EventRow = [position: number, streamId: string, revision: number, id: string, type: string, data: string, metadata: string | null, created: number];
const EVENT_COLUMNS = 'position, stream_id, revision, id, type, data, metadata, created';

const PAGE = 2_000;
/** Commit notices to other threads: at most one per this many ms. */
const NOTICE_MS = 5;
/** Most events sent to the writer thread in one message (a single larger append still goes alone). */
const MAX_EVENTS_PER_MESSAGE = 10_000;

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

/** An append in the store's queue, which takes more events until a flush takes it for the writer. */
class QueuedAppend implements OpenAppend {
  constructor(
    readonly result: Promise<AppendResult>,
    /** Undefined when it was refused before it was queued. */
    private readonly pending: PendingAppend | undefined,
  ) {}

  get open(): boolean {
    return this.pending !== undefined && !this.pending.taken;
  }

  extend(events: readonly EventData[]): void {
    if (!this.open) throw new StoreUnavailableError('this append has gone to the writer, or was refused; it takes no more events');
    // Serialized first: events that cannot be stored fail here, and the append keeps what it had.
    for (const e of serialize(events)) this.pending!.events.push(e);
  }
}

function toRecorded(row: EventRow): RecordedEvent {
  const [position, streamId, revision, id, type, data, metadata, created] = row;
  try {
    return {
      streamId,
      revision: BigInt(revision),
      position: BigInt(position),
      id,
      type,
      data: JSON.parse(data),
      metadata: metadata === null ? undefined : JSON.parse(metadata),
      // Every reader pays for this on every event: see iso-time.ts.
      created: isoTime(created),
    };
  } catch (error) {
    // Only a file changed outside the store gets here: say which event, for whoever has to look.
    throw new Error(`event at position ${position} (${streamId}@${revision}) cannot be read: ${(error as Error).message}`, { cause: error });
  }
}


/** A writer thread that died is started again on the next write, at most this often. */
const WRITER_RESPAWN_MS = 1_000;

/**
 * Group commits on a worker thread: one batch in flight; what arrives meanwhile forms the next.
 * A thread that dies (its heap limit, a bug) fails the batch in hand as possibly written (it may
 * have committed before it could answer) and is started again on the next write.
 */
class ThreadWriter {
  private worker: Worker | undefined;
  private nextId = 1;
  private inFlight: { id: number; resolve(r: WriteResult): void; reject(e: unknown): void } | undefined;
  private closing = false;
  private death: Error | undefined;
  private spawnedAt = Number.NEGATIVE_INFINITY;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    private readonly file: string,
    private readonly onRestart?: (death: Error) => void,
  ) {
    this.spawn();
  }

  private spawn(): Worker {
    // The thread holds nothing between batches, so its heap stays small; the limit only stops a
    // runaway (messages carry at most MAX_EVENTS_PER_MESSAGE events, unless one append has more).
    const worker = new Worker(threadScriptUrl(import.meta.url, './sqlite.writer-thread.js'), {
      workerData: { file: this.file },
      resourceLimits: { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 8 },
    });
    this.worker = worker;
    this.spawnedAt = performance.now();
    worker.unref();
    worker.on('message', (reply: WriterReply) => {
      if (reply.kind === 'closed') return;
      const pending = this.inFlight;
      if (!pending || pending.id !== reply.id) return;
      this.inFlight = undefined;
      worker.unref();
      if (reply.kind === 'written') pending.resolve(reply.result);
      else pending.reject(Object.assign(new Error(reply.message), reply.code ? { code: reply.code } : {}));
    });
    let error: Error | undefined;
    worker.on('error', (e) => (error = e));
    this.exited = new Promise((resolve) =>
      worker.once('exit', (code) => {
        const why = error ?? new Error(`the writer thread exited (code ${code})`);
        if (this.worker === worker) this.worker = undefined;
        if (!this.closing) this.death = why;
        const pending = this.inFlight;
        this.inFlight = undefined;
        pending?.reject(
          new StoreUnavailableError(`the log writer thread stopped (${why.message}) with a batch in hand, which may have been written`, { cause: why, written: 'unknown' }),
        );
        resolve();
      }),
    );
    return worker;
  }

  private respawn(): Worker {
    const worker = this.spawn();
    try {
      this.onRestart?.(this.death ?? new Error('the writer thread exited'));
    } catch {
      /* an observer's failure is not the write's */
    }
    return worker;
  }

  get busy(): boolean {
    return this.inFlight !== undefined;
  }

  write(batch: WriteRequest[]): Promise<WriteResult> {
    if (this.closing) return Promise.reject(new StoreUnavailableError('event store is closed'));
    // One that died is started again, though not more than once a second (one that cannot start must not spin).
    const worker = this.worker ?? (performance.now() - this.spawnedAt >= WRITER_RESPAWN_MS ? this.respawn() : undefined);
    if (!worker) {
      return Promise.reject(new StoreUnavailableError(`the log writer thread stopped (${this.death?.message}); it is started again within a second`, { cause: this.death }));
    }
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.inFlight = { id, resolve, reject };
      // Held referenced only while a commit is in flight: an idle store never keeps a process alive.
      worker.ref();
      worker.postMessage({ kind: 'write', id, batch: batch.map(({ streamId, events, expected }) => ({ streamId, events, expected })) } satisfies WriterMessage);
    });
  }

  /** Ends the thread at once, as a crash would; the next write starts another. For tests. */
  async crash(): Promise<void> {
    await this.worker?.terminate();
    await this.exited;
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.worker) {
      this.worker.ref();
      this.worker.postMessage({ kind: 'close' } satisfies WriterMessage);
    }
    await this.exited;
  }
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
  private readonly inline: SqliteLogWriter | undefined;
  private readonly thread: ThreadWriter | undefined;
  private drained: (() => void)[] = [];
  /** Commit notices between the stores on this file in this process's threads. */
  private readonly commits: BroadcastChannel | undefined;
  private lastNotice = Number.NEGATIVE_INFINITY;
  private noticeTimer: NodeJS.Timeout | undefined;
  private readonly stmt: {
    revision: Database.Statement<[string], { r: number | null }>;
    last: Database.Statement<[string], EventRow>;
    head: Database.Statement<[], { p: number | null }>;
  };
  /**
   * Page reads by page size, the size written into the SQL: SQLite prepares a statement again at
   * every run when its LIMIT is a bound parameter (the planner takes the bound value into
   * account), which made a one-row stream read cost ~7 µs instead of ~2.5 (measured here).
   */
  private readonly pageReads = new Map<string, Database.Statement<unknown[], EventRow>>();

  static open(file: string, options: SqliteEventStoreOptions = {}): SqliteEventStore {
    const readonly = options.readonly ?? false;
    const db = new Database(file, { readonly, fileMustExist: readonly });
    const onDisk = file !== ':memory:' && file !== '';
    const threaded = !readonly && (options.writer ?? 'thread') === 'thread' && onDisk;
    return new SqliteEventStore(db, options, threaded ? file : undefined, onDisk ? resolve(file) : undefined);
  }

  /**
   * `writerFile`: run group commits on a writer thread with its own connection to that file.
   * `file`: the file's path, to hear of (and announce) commits made by other threads of this process.
   */
  constructor(db: Database.Database, options: SqliteEventStoreOptions = {}, writerFile?: string, file?: string) {
    this.db = db;
    this.maxBatch = options.maxBatch ?? 5_000;
    this.coalesceMs = options.coalesceMs ?? 2;
    this.pollIntervalMs = options.pollIntervalMs ?? 200;
    this.onCommit = options.onCommit;
    // The inline writer keeps the writer's cache; a reader beside a writer thread needs little.
    prepareLogConnection(db, options.cacheKib ?? (writerFile === undefined && !db.readonly ? WRITER_CACHE_KIB : undefined));
    if (!db.readonly) {
      if (writerFile !== undefined) this.thread = new ThreadWriter(writerFile, options.onWriterRestart);
      else this.inline = new SqliteLogWriter(db);
    }
    if (file !== undefined) {
      this.commits = new BroadcastChannel(`nexo-sqlite-log:${file}`);
      this.commits.unref();
      this.commits.onmessage = () => {
        for (const wake of this.waiters) wake();
      };
    }
    this.stmt = {
      revision: db.prepare('SELECT max(revision) AS r FROM events WHERE stream_id = ?'),
      // Walks the UNIQUE(stream_id, revision) index from its top: one row, whatever the stream's length.
      last: db.prepare<[string], EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = ? ORDER BY revision DESC LIMIT 1`).raw(true),
      head: db.prepare('SELECT max(position) AS p FROM events'),
    };
  }

  append(streamId: string, events: readonly EventData[], expected: ExpectedRevision): Promise<AppendResult> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    let serialized: SerializedEvent[];
    try {
      serialized = serialize(events);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => this.enqueue({ streamId, events: serialized, expected, taken: false, resolve, reject }));
  }

  /** See the port: open until the batch that carries it is taken for the writer (the next flush). */
  appendOpen(streamId: string, events: readonly EventData[], expected: ExpectedRevision): OpenAppend {
    const refused = this.refusal();
    if (refused) return new QueuedAppend(Promise.reject(refused), undefined);
    let serialized: SerializedEvent[];
    try {
      serialized = serialize(events);
    } catch (error) {
      return new QueuedAppend(Promise.reject(error), undefined);
    }
    let pending: PendingAppend | undefined;
    const result = new Promise<AppendResult>((resolve, reject) => {
      pending = { streamId, events: serialized, expected, taken: false, resolve, reject };
    });
    this.enqueue(pending!);
    return new QueuedAppend(result, pending);
  }

  private refusal(): StoreUnavailableError | undefined {
    if (this.closed) return new StoreUnavailableError('event store is closed');
    if (this.db.readonly) return new StoreUnavailableError('event store is open read-only');
    return undefined;
  }

  private enqueue(pending: PendingAppend): void {
    this.queue.push(pending);
    this.schedule();
  }

  private schedule(): void {
    if (this.flushScheduled) return;
    if (this.thread) {
      // While a commit is in flight, appends gather for the next one; its reply flushes them.
      if (this.thread.busy) return;
      this.flushScheduled = true;
      setImmediate(() => this.flushToThread());
      return;
    }
    this.flushScheduled = true;
    // When appends trickle in (the last commit carried few), let them gather for a moment after
    // it: one fsync then covers many writers. A burst, or a lone append after a quiet spell,
    // commits on the next turn.
    const trickle = this.lastBatchAppends > 0 && this.lastBatchAppends < 32;
    const wait = trickle ? this.lastCommitEnd + this.coalesceMs - performance.now() : 0;
    if (wait > 0) setTimeout(() => this.flushInline(), wait);
    else setImmediate(() => this.flushInline());
  }

  private flushInline(): void {
    this.flushScheduled = false;
    this.lastBatchAppends = this.queue.length;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      for (const a of batch) a.taken = true;
      let result: WriteResult;
      try {
        result = this.inline!.write(batch);
      } catch (error) {
        this.failBatch(batch, error);
        continue;
      }
      this.settle(batch, result);
    }
    this.lastCommitEnd = performance.now();
    this.afterCommits();
  }

  private flushToThread(): void {
    this.flushScheduled = false;
    const thread = this.thread!;
    if (thread.busy || this.queue.length === 0) return;
    // Bounded in events too, so one message never needs more than a modest heap on either side.
    let take = 0;
    for (let events = 0; take < this.queue.length && take < this.maxBatch && (take === 0 || events < MAX_EVENTS_PER_MESSAGE); take++) {
      events += this.queue[take].events.length;
    }
    const batch = this.queue.splice(0, take);
    for (const a of batch) a.taken = true;
    thread
      .write(batch)
      .then(
        (result) => this.settle(batch, result),
        (error) => this.failBatch(batch, error),
      )
      .finally(() => {
        // The next group goes once the answers just given have run their course (every promise
        // continuation of this turn of the event loop, no I/O in between): a command that waited for
        // this commit is decided in them and goes with that group, not the one after.
        process.nextTick(() => this.flushToThread());
        this.afterCommits();
      });
  }

  private failBatch(batch: PendingAppend[], error: unknown): void {
    // The writer's own unavailability says what it knows (a thread that died may have written the batch).
    const failure = error instanceof StoreUnavailableError ? error : new StoreUnavailableError('append failed; nothing in this batch was written', { cause: error });
    for (const a of batch) a.reject(failure);
  }

  private settle(batch: PendingAppend[], result: WriteResult): void {
    batch.forEach((a, i) => {
      const o = result.outcomes[i];
      if (o.ok) a.resolve({ nextExpectedRevision: o.nextExpectedRevision, position: o.position });
      else a.reject(new ConcurrencyError(o.streamId, o.expected, o.actual));
    });
    // The batch is committed and answered: an observer that throws must not
    // escape this callback (an uncaught exception) or leave later batches unwritten.
    try {
      this.onCommit?.({ appends: batch.length, events: result.events, seconds: result.seconds });
    } catch {
      /* an observer's failure is not the append's */
    }
  }

  /** Wakes subscriptions and, once nothing is queued or in flight, whoever waits to close. */
  private afterCommits(): void {
    for (const wake of this.waiters) wake();
    this.announce();
    if (this.queue.length === 0 && !this.thread?.busy) for (const done of this.drained.splice(0)) done();
  }

  /**
   * Tells the other threads' stores on this file that the log grew: at once after a quiet spell,
   * else once at the end of a NOTICE_MS stretch for every commit in it. Their readers gather
   * commits for longer than that anyway, and each notice costs a wake-up of every listening thread.
   */
  private announce(): void {
    if (!this.commits || this.closed || this.noticeTimer) return;
    const wait = this.lastNotice + NOTICE_MS - performance.now();
    if (wait <= 0) {
      this.lastNotice = performance.now();
      this.commits.postMessage(0);
      return;
    }
    this.noticeTimer = setTimeout(() => {
      this.noticeTimer = undefined;
      if (this.closed) return;
      this.lastNotice = performance.now();
      this.commits?.postMessage(0);
    }, wait);
  }

  private pageRead(kind: 'stream' | 'all', size: number): Database.Statement<unknown[], EventRow> {
    const limit = Math.trunc(size);
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`page size must be a positive integer, got ${size}`);
    const key = `${kind}:${limit}`;
    let stmt = this.pageReads.get(key);
    if (!stmt) {
      stmt =
        kind === 'stream'
          ? this.db.prepare<unknown[], EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = ? AND revision >= ? ORDER BY revision LIMIT ${limit}`).raw(true)
          : this.db.prepare<unknown[], EventRow>(`SELECT ${EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ${limit}`).raw(true);
      // Callers use a few page sizes; a caller with ever-new ones must not grow this without bound.
      if (this.pageReads.size >= 64) this.pageReads.clear();
      this.pageReads.set(key, stmt);
    }
    return stmt;
  }

  async *readStream(streamId: string, options: ReadStreamOptions = {}): AsyncIterable<RecordedEvent> {
    let from = Number(options.fromRevision ?? 0n);
    let left = options.maxCount ?? Number.POSITIVE_INFINITY;
    while (left > 0) {
      this.assertOpen();
      const rows = this.pageRead('stream', Math.min(PAGE, left)).all(streamId, from);
      for (const row of rows) yield toRecorded(row);
      if (rows.length < PAGE) return;
      left -= rows.length;
      from = rows[rows.length - 1][2] + 1;
    }
  }

  async streamRevision(streamId: string): Promise<bigint | undefined> {
    this.assertOpen();
    const r = this.stmt.revision.get(streamId)?.r;
    return r === null || r === undefined ? undefined : BigInt(r);
  }

  async lastEvent(streamId: string): Promise<RecordedEvent | undefined> {
    this.assertOpen();
    const row = this.stmt.last.get(streamId);
    return row === undefined ? undefined : toRecorded(row);
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
    return this.pageRead('all', limit).all(fromPosition).map(toRecorded);
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

  /** Ends the log writer thread at once, as a crash would (it is started again on the next write). For tests. */
  async crashWriterThread(): Promise<void> {
    await this.thread?.crash();
  }

  /** Reads on a closed store get the port's error, not better-sqlite3's TypeError. */
  private assertOpen(): void {
    if (this.closed) throw new StoreUnavailableError('event store is closed');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Everything accepted before close is written before the connection goes.
    if (this.thread) {
      if (this.queue.length > 0 || this.thread.busy) {
        const drained = new Promise<void>((resolve) => this.drained.push(resolve));
        this.schedule();
        await drained;
      }
    } else if (this.queue.length > 0) this.flushInline();
    this.closed = true;
    if (this.noticeTimer) {
      clearTimeout(this.noticeTimer);
      this.noticeTimer = undefined;
      this.commits?.postMessage(0);
    }
    this.commits?.close();
    for (const wake of this.waiters) wake();
    await this.thread?.close();
    if (!this.db.readonly) this.db.pragma('wal_checkpoint(TRUNCATE)');
    this.db.close();
  }
}
