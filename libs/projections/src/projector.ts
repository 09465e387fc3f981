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
 * Following the log live, each subscription page (up to `batchSize`) is one
 * transaction, so the lag stays at one small page. Catching up, a transaction
 * takes up to `catchUpBatchSize` events: the read models' randomly placed
 * index pages (random OTP ids, per-account rows) are then written once per
 * 20,000 events instead of once per page, which halves the replay's cost.
 * With the SQLite store the events are read inside that transaction in small
 * synchronous pages, so each page can be collected as soon as it is applied.
 * Between transactions the projector yields to the event loop, so a long
 * catch-up does not starve the API sharing the process.
 */
import type { EventStore, RecordedEvent, Subscription } from '#eventstore';
import { advanceCheckpoint, createCheckpointTable, readCheckpoint, writeCheckpoint } from './checkpoints.js';
import { pageReader, type ReadPage, syncPageReader } from './log-reader.js';
import { createTables, type Db, dropTables, type Projection, type ProjectionWriter } from './projection.js';
import { type Lag, lagSince, measureLag, PositionWaiters } from './progress.js';

export interface ProjectorOptions {
  /** Where events come from. */
  store: EventStore;
  /** Where the read models live: the store's own connection in the embedded default, a local file with EventStoreDB. */
  db: Db;
  projections: readonly Projection[];
  /** Most events per transaction while following the log live. */
  batchSize?: number;
  /**
   * Most events per transaction while catching up (`catchUp()`, and `start()`
   * before it subscribes). One such transaction blocks the event loop for
   * about 0.2 s at 20,000 events.
   */
  catchUpBatchSize?: number;
  /**
   * Raise the connection's page cache to 64 MiB and its WAL auto-checkpoint to
   * 10,000 pages when they are lower (default: on). Read models write B-tree
   * pages all over (random OTP ids, per-account indexes); with SQLite's
   * defaults (2 MiB cache, checkpoint every 1,000 pages) each page's commit
   * re-reads and re-checkpoints the same index pages, which on replay costs
   * as much as the projections' own work. Both settings are per connection
   * and harmless to the event store sharing it.
   */
  tuneConnection?: boolean;
  /** The page cache `tuneConnection` raises the connection to (KiB; default 64 MiB, for catching up fast). */
  cacheKib?: number;
  /** How often `lastLag()` is refreshed while running. */
  lagIntervalMs?: number;
  /**
   * While following live, how long a short page waits for more events before the next transaction
   * (ms; default 100). Readers that need their own write cut the wait short (`waitFor`), so it only
   * delays what nobody waits for; every transaction rewrites the per-account index pages it touches,
   * so fewer, larger ones cost less per event.
   */
  coalesceMs?: number;
  /** After each committed page: for metrics. */
  onPage?: (page: { events: number; applied: number; position: bigint; seconds: number }) => void;
  /** The loop stopped on an error (a bug or an unreadable event); the lag then grows and readiness fails. */
  onError?: (error: unknown) => void;
}

export type { Lag } from './progress.js';

/** What the API, readiness and metrics need of a running projector, in this thread or its own. */
export interface ProjectionProgress {
  checkpoints(): Record<string, bigint>;
  lag(): Promise<Lag>;
  lastLag(): Lag;
  waitUntilCaughtUp(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

interface Slot {
  projection: Projection;
  writer: ProjectionWriter;
  handles: ReadonlySet<string>;
  position: bigint;
}

interface PageResult {
  events: number;
  applied: number;
  last: bigint | undefined;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Events per read inside a catch-up transaction: small enough to die young in the GC. */
const READ_PAGE = 2_000;
const CACHE_KIB = 64 * 1024;
/**
 * Measured (bench:pipeline, full speed, interleaved, 2026-11-27): the projector's CPU per OTP 56-86 µs
 * at 100 ms against 100-117 µs at 25 ms; 250 ms gained little more (60-63 µs).
 */
const DEFAULT_COALESCE_MS = 100;
const WAL_AUTOCHECKPOINT_PAGES = 10_000;

function tune(db: Db, wantKib: number): void {
  const cache = Number(db.pragma('cache_size', { simple: true }));
  // Negative values are KiB, positive ones pages.
  const cacheKib = cache < 0 ? -cache : (cache * Number(db.pragma('page_size', { simple: true }))) / 1024;
  if (cacheKib < wantKib) db.pragma(`cache_size = -${wantKib}`);
  if (Number(db.pragma('wal_autocheckpoint', { simple: true })) < WAL_AUTOCHECKPOINT_PAGES) db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
}

export class Projector implements ProjectionProgress {
  private readonly store: EventStore;
  private readonly db: Db;
  private readonly slots: Slot[];
  private readonly byType = new Map<string, ProjectionWriter[]>();
  private readonly batchSize: number;
  private readonly coalesceMs: number;
  private gathering: (() => void) | undefined;
  private readonly catchUpBatchSize: number;
  private readonly read: ReadPage;
  private readonly readSync: ((fromPosition: bigint, limit: number) => RecordedEvent[]) | undefined;
  private readonly options: ProjectorOptions;
  private readonly applyTx: (pages: Iterable<RecordedEvent[]>) => PageResult;
  private readonly waiters = new PositionWaiters();
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
    this.coalesceMs = options.coalesceMs ?? DEFAULT_COALESCE_MS;
    this.catchUpBatchSize = options.catchUpBatchSize ?? 20_000;
    this.read = pageReader(options.store);
    this.readSync = syncPageReader(options.store);
    if (options.tuneConnection !== false && !this.db.readonly) tune(this.db, options.cacheKib ?? CACHE_KIB);
    const names = new Set(options.projections.map((p) => p.name));
    if (names.size !== options.projections.length) throw new Error('projection names must be unique');
    this.slots = this.init(options.projections);
    for (const slot of this.slots) {
      for (const type of slot.handles) {
        const writers = this.byType.get(type) ?? [];
        writers.push(slot.writer);
        this.byType.set(type, writers);
      }
    }
    this.applyTx = this.db.transaction((pages: Iterable<RecordedEvent[]>) => this.applyInTransaction(pages)).immediate as (
      pages: Iterable<RecordedEvent[]>,
    ) => PageResult;
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

  /** Applies pages, in log order, in the caller's transaction; pages are pulled one at a time so each can be freed once applied. */
  private applyInTransaction(pages: Iterable<RecordedEvent[]>): PageResult {
    // Re-read inside the write lock: a rebuild may have moved a checkpoint past what this process last wrote.
    const stored = this.slots.map((slot) => readCheckpoint(this.db, slot.projection.name)?.position ?? 0n);
    let last: bigint | undefined;
    let events = 0;
    let applied = 0;
    for (const page of pages) {
      if (page.length === 0) break;
      const first = page[0].position;
      if (stored.every((p) => p < first)) {
        // The usual page: every projection takes all of it, so one pass dispatches by type.
        for (const e of page) {
          const writers = this.byType.get(e.type);
          if (writers === undefined) continue;
          for (const w of writers) w.apply(e);
          applied += writers.length;
        }
      } else {
        this.slots.forEach((slot, i) => {
          for (const e of page) {
            if (e.position > stored[i] && slot.handles.has(e.type)) {
              slot.writer.apply(e);
              applied++;
            }
          }
        });
      }
      events += page.length;
      last = page[page.length - 1].position;
    }
    if (last === undefined) return { events, applied, last };
    const end = last;
    this.slots.forEach((slot, i) => {
      if (stored[i] >= end) {
        slot.position = stored[i];
        return;
      }
      slot.writer.flush();
      advanceCheckpoint(this.db, slot.projection.name, end);
    });
    return { events, applied, last };
  }

  private commit(pages: Iterable<RecordedEvent[]>): PageResult {
    const started = performance.now();
    let result: PageResult;
    try {
      result = this.applyTx(pages);
    } catch (error) {
      for (const s of this.slots) s.writer.discard();
      throw error;
    }
    const { last } = result;
    if (last === undefined) return result;
    for (const s of this.slots) if (s.position < last) s.position = last;
    if (this.applied < last) this.applied = last;
    this.options.onPage?.({ events: result.events, applied: result.applied, position: last, seconds: (performance.now() - started) / 1000 });
    this.wake();
    return result;
  }

  /** Applies one page (events in log order) in one transaction; returns how many events the projections took. */
  applyPage(events: RecordedEvent[]): number {
    if (events.length === 0) return 0;
    return this.commit([events]).applied;
  }

  /**
   * Applies the log up to `until` (default: the head when called) and returns
   * the number of events read. For the CLI, benches and tests; not while `start()` runs.
   */
  async catchUp(until?: bigint): Promise<number> {
    if (this.loop !== undefined) throw new Error('catchUp() while the projector is running');
    return this.catchUpTo(until ?? (await this.store.headPosition()), false);
  }

  private async catchUpTo(target: bigint, live: boolean): Promise<number> {
    let read = 0;
    while (this.position() < target && (!live || this.running)) {
      const from = this.position();
      let result: PageResult;
      if (this.readSync !== undefined) {
        // One transaction of up to catchUpBatchSize events, read in small pages inside it: big
        // transactions write each randomly placed index page once, small pages die young in the GC.
        result = this.commit(this.pagesUpTo(this.readSync, from, target));
      } else {
        let page = await this.read(from, this.catchUpBatchSize);
        if (page.length > 0 && page[page.length - 1].position > target) page = page.filter((e) => e.position <= target);
        result = this.commit([page]);
      }
      if (result.events === 0) break;
      read += result.events;
      await yieldToEventLoop();
    }
    return read;
  }

  private *pagesUpTo(readSync: (from: bigint, limit: number) => RecordedEvent[], from: bigint, target: bigint): Generator<RecordedEvent[]> {
    let position = from;
    let left = this.catchUpBatchSize;
    while (left > 0 && position < target) {
      let page = readSync(position, Math.min(left, READ_PAGE));
      if (page.length === 0) return;
      if (page[page.length - 1].position > target) page = page.filter((e) => e.position <= target);
      if (page.length === 0) return;
      yield page;
      left -= page.length;
      position = page[page.length - 1].position;
    }
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
        try {
          // The backlog in big pages first; the live subscription's small pages keep the lag low after.
          await this.catchUpTo(await this.store.headPosition(), true);
        } catch (error) {
          this.failure = error;
          this.options.onError?.(error);
          if (this.running) await this.pause(retryMs);
          continue;
        }
        if (!this.running) break;
        const subscription = this.store.subscribe({ fromPosition: this.position(), batchSize: this.batchSize });
        this.subscription = subscription;
        try {
          for await (const page of subscription) {
            if (!this.running) break;
            this.applyPage(page);
            // Following a busy log page by page writes the same hot pages (balances, stats cells) once
            // per commit; letting a short page's successors gather first writes them once per many.
            // Nobody waits longer for it: a read-your-writes waiter cuts the pause short.
            if (page.length < this.batchSize && this.coalesceMs > 0 && this.waiters.size === 0) await this.gather();
            else await yieldToEventLoop();
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
    this.gathering?.();
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
    const measured = await measureLag(this.store, this.read, () => this.position());
    // Another measure may have ended meanwhile with a later position: keep the later.
    if (measured.position >= this.latestLag.position) this.latestLag = measured;
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
    const waiting = this.waiters.wait(position, timeoutMs, () => this.position());
    this.gathering?.();
    return waiting;
  }

  private gather(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.gathering = undefined;
        resolve();
      };
      const timer = setTimeout(done, this.coalesceMs);
      this.gathering = done;
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
    // What this page applied is no longer lag.
    this.latestLag = lagSince(this.latestLag, this.position());
    this.waiters.release(this.position());
  }

}
