/**
 * Runs projections over the log from their checkpoints.
 *
 * Each page of events is applied in one SQLite transaction that also moves
 * every projection's checkpoint, so a crash keeps the page and its checkpoint
 * or neither: nothing is lost or counted twice after a restart. Inside that
 * transaction the checkpoint is read again and events at or below it are
 * skipped, which makes a replayed page a no-op and lets `rebuild` (possibly
 * another process) swap in a table set with a later checkpoint while this
 * projector runs.
 *
 * Pages of a few thousand events per transaction amortize the commit; the
 * projector yields to the event loop between pages so a long catch-up does
 * not starve the API sharing the process.
 */
import type { EventStore, RecordedEvent, Subscription } from '#eventstore';
import { advanceCheckpoint, createCheckpointTable, readCheckpoint, writeCheckpoint } from './checkpoints.js';
import { pageReader, type ReadPage } from './log-reader.js';
import { createTables, type Db, dropTables, type Projection, type ProjectionWriter } from './projection.js';

export interface ProjectorOptions {
  /** Where events come from. */
  store: EventStore;
  /** Where the read models live: the store's own connection in the embedded default, a local file with EventStoreDB. */
  db: Db;
  projections: readonly Projection[];
  /** Most events per transaction. */
  batchSize?: number;
  /** How often `lastLag()` is refreshed while running. */
  lagIntervalMs?: number;
  /** After each committed page: for metrics. */
  onPage?: (page: { events: number; applied: number; position: bigint; seconds: number }) => void;
  /** The loop stopped on an error (a bug or an unreadable event); the lag then grows and readiness fails. */
  onError?: (error: unknown) => void;
}

export interface Lag {
  /** Head position minus the lowest checkpoint: events in SQLite, log positions with EventStoreDB. */
  events: number;
  /** Age of the oldest event not yet applied; 0 when caught up. */
  seconds: number;
  head: bigint;
  position: bigint;
}

interface Slot {
  projection: Projection;
  writer: ProjectionWriter;
  handles: ReadonlySet<string>;
  position: bigint;
}

interface Waiter {
  position: bigint;
  resolve(): void;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export class Projector {
  private readonly store: EventStore;
  private readonly db: Db;
  private readonly slots: Slot[];
  private readonly batchSize: number;
  private readonly read: ReadPage;
  private readonly options: ProjectorOptions;
  private readonly applyTx: (events: RecordedEvent[]) => number;
  private waiters: Waiter[] = [];
  private subscription: Subscription | undefined;
  private loop: Promise<void> | undefined;
  private lagTimer: NodeJS.Timeout | undefined;
  private latestLag: Lag = { events: 0, seconds: 0, head: 0n, position: 0n };
  private failure: unknown;
  private running = false;
  /** Last position applied, for a projector with no projections (a pure reader in benches). */
  private applied = 0n;
  private retryWake: (() => void) | undefined;

  constructor(options: ProjectorOptions) {
    this.options = options;
    this.store = options.store;
    this.db = options.db;
    this.batchSize = options.batchSize ?? 2_000;
    this.read = pageReader(options.store);
    const names = new Set(options.projections.map((p) => p.name));
    if (names.size !== options.projections.length) throw new Error('projection names must be unique');
    this.slots = this.init(options.projections);
    this.applyTx = this.db.transaction((events: RecordedEvent[]) => this.applyInTransaction(events)).immediate as (
      events: RecordedEvent[],
    ) => number;
    this.latestLag = { events: 0, seconds: 0, head: this.position(), position: this.position() };
  }

  /** Creates missing tables; a projection stored with another version (or without a checkpoint) starts over from 0. */
  private init(projections: readonly Projection[]): Slot[] {
    return this.db.transaction(() => {
      createCheckpointTable(this.db);
      return projections.map((projection) => {
        const stored = readCheckpoint(this.db, projection.name);
        if (stored === undefined || stored.version !== projection.version) {
          dropTables(this.db, projection);
          writeCheckpoint(this.db, projection.name, projection.version, 0n);
        }
        createTables(this.db, projection);
        const position = stored !== undefined && stored.version === projection.version ? stored.position : 0n;
        return { projection, writer: projection.writer(this.db, ''), handles: new Set(projection.handles), position };
      });
    }).immediate();
  }

  /** The lowest checkpoint: everything up to it is in every read model. */
  position(): bigint {
    let min: bigint | undefined;
    for (const s of this.slots) if (min === undefined || s.position < min) min = s.position;
    return min ?? this.applied;
  }

  checkpoints(): Record<string, bigint> {
    return Object.fromEntries(this.slots.map((s) => [s.projection.name, s.position]));
  }

  private applyInTransaction(events: RecordedEvent[]): number {
    const last = events[events.length - 1].position;
    let applied = 0;
    for (const slot of this.slots) {
      const name = slot.projection.name;
      // Re-read inside the write lock: a rebuild may have moved it past what this process last wrote.
      const stored = readCheckpoint(this.db, name)?.position ?? 0n;
      if (stored >= last) {
        slot.position = stored;
        continue;
      }
      const { writer, handles } = slot;
      for (const e of events) {
        if (e.position > stored && handles.has(e.type)) {
          writer.apply(e);
          applied++;
        }
      }
      writer.flush();
      advanceCheckpoint(this.db, name, last);
    }
    return applied;
  }

  /** Applies one page (events in log order) in one transaction; returns how many events the projections took. */
  applyPage(events: RecordedEvent[]): number {
    if (events.length === 0) return 0;
    const started = performance.now();
    let applied: number;
    try {
      applied = this.applyTx(events);
    } catch (error) {
      for (const s of this.slots) s.writer.discard();
      throw error;
    }
    const last = events[events.length - 1].position;
    for (const s of this.slots) if (s.position < last) s.position = last;
    if (this.applied < last) this.applied = last;
    this.options.onPage?.({ events: events.length, applied, position: last, seconds: (performance.now() - started) / 1000 });
    this.wake();
    return applied;
  }

  /**
   * Applies the log up to `until` (default: the head when called) and returns
   * the number of events read. For the CLI, benches and tests; not while `start()` runs.
   */
  async catchUp(until?: bigint): Promise<number> {
    if (this.loop !== undefined) throw new Error('catchUp() while the projector is running');
    const target = until ?? (await this.store.headPosition());
    let read = 0;
    while (this.position() < target) {
      let page = await this.read(this.position(), this.batchSize);
      if (page.length === 0) break;
      if (page[page.length - 1].position > target) page = page.filter((e) => e.position <= target);
      this.applyPage(page);
      read += page.length;
      await yieldToEventLoop();
    }
    return read;
  }

  /**
   * Follows the log live from the checkpoints until `stop()`. A failed page or
   * a broken subscription is reported to `onError` and retried from the
   * checkpoint after `retryMs`; meanwhile the lag grows, which readiness shows.
   */
  start(retryMs = 1_000): void {
    if (this.loop !== undefined) return;
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const subscription = this.store.subscribe({ fromPosition: this.position(), batchSize: this.batchSize });
        this.subscription = subscription;
        try {
          for await (const page of subscription) {
            if (!this.running) break;
            this.applyPage(page);
            await yieldToEventLoop();
          }
        } catch (error) {
          this.failure = error;
          this.options.onError?.(error);
          await subscription.close().catch(() => undefined);
          if (this.running) await this.pause(retryMs);
          continue;
        }
        // The subscription ended without an error: stop() closed it, or the store was closed.
        break;
      }
    })();
    const interval = this.options.lagIntervalMs ?? 500;
    this.lagTimer = setInterval(() => {
      this.lag().catch(() => undefined);
    }, interval);
    this.lagTimer.unref();
  }

  async stop(): Promise<void> {
    const { subscription, loop } = this;
    this.running = false;
    this.subscription = undefined;
    if (this.lagTimer !== undefined) clearInterval(this.lagTimer);
    this.lagTimer = undefined;
    this.retryWake?.();
    await subscription?.close();
    await loop;
    this.loop = undefined;
  }

  /** The last error of the live loop, if any. */
  error(): unknown {
    return this.failure;
  }

  /** Measures the lag now: one head read and, when behind, one event read. */
  async lag(): Promise<Lag> {
    const head = await this.store.headPosition();
    const position = this.position();
    let seconds = 0;
    if (head > position) {
      const [next] = await this.read(position, 1);
      if (next !== undefined) seconds = Math.max(0, (Date.now() - Date.parse(next.created)) / 1000);
    }
    this.latestLag = { events: head > position ? Number(head - position) : 0, seconds, head, position };
    return this.latestLag;
  }

  /** The lag as last measured (refreshed every `lagIntervalMs` while running): for synchronous metrics and readiness. */
  lastLag(): Lag {
    return this.latestLag;
  }

  async caughtUp(): Promise<boolean> {
    return (await this.lag()).events === 0;
  }

  /** Resolves once every projection has applied the log up to `position`; rejects after `timeoutMs`. */
  waitFor(position: bigint, timeoutMs = 5_000): Promise<void> {
    if (this.position() >= position) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        position,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`projections did not reach position ${position} within ${timeoutMs} ms (at ${this.position()})`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Read-your-writes: resolves once the read models reflect everything appended before this call. */
  async waitUntilCaughtUp(timeoutMs = 5_000): Promise<void> {
    await this.waitFor(await this.store.headPosition(), timeoutMs);
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.retryWake = done;
    });
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const position = this.position();
    const ready = this.waiters.filter((w) => w.position <= position);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.position > position);
    for (const w of ready) w.resolve();
  }
}
