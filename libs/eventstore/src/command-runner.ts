/**
 * The one command path: load state, decide, append with the expected
 * revision, retry a bounded number of times on conflict.
 *
 * Inside one process, commands on the same stream never race each other: they
 * queue per stream, and whatever queued while an append was in flight is
 * decided as one batch against the evolving state and appended as one write.
 * A hot account stream therefore costs one group commit per batch instead of
 * one per command. With a store that offers `appendOpen` (SQLite's group
 * commit), a command that arrives while its stream's append still waits in the
 * store's queue does not wait for that commit: it is decided at once and joins
 * the same append (`join`). The optimistic retry is for writers in other processes.
 *
 * State is cached per stream (LRU) together with its revision. Deciders evolve
 * state in place, so a failed append throws the cached state away and the next
 * attempt rebuilds it from the stream.
 *
 * Another writer (a thread or process with its own runner) can move a stream
 * past the cached state. A decision that appends is guarded by the expected
 * revision; one that appends nothing (an idempotent no-op, a refusal, a peek)
 * is not, so before such an answer is given on cached state, the stream's
 * revision is read, and a stale state is rebuilt and the batch decided again.
 *
 * A decider with a snapshot codec (the account's) gets its state written down every so often
 * (`snapshotEvery` events at least, and at most 1 % of the thread's time), and a load starts from
 * the latest snapshot that still matches the stream. Whatever is folded, a long fold gives the
 * event loop a turn every YIELD_EVERY events: loading one busy account must not stall the others.
 */
import { randomUUID } from 'node:crypto';
import { trimOldest } from '#collections';
import type { Decider, StateCodec } from '#domain';
import { ConcurrencyError, type EventData, type EventStore, type OpenAppend, type RecordedEvent } from './event-store.port.js';
import type { SnapshotStore, StoredSnapshot } from './snapshot-store.port.js';

/** Events folded between two turns given to the event loop while a state loads. */
const YIELD_EVERY = 1_000;
/** A snapshot takes at most this share of the thread: the next waits 1/share times as long as the last took. */
const SNAPSHOT_SHARE = 0.01;
/** After a snapshot could not be written, the stream's next one waits at least this long. */
const SNAPSHOT_RETRY_MS = 60_000;

export interface DomainEventLike {
  type: string;
  data: unknown;
}

export interface CommandResult<E, S> {
  /** Events this command produced; empty when it changed nothing (an idempotent replay). */
  events: E[];
  /** The stream's state right after this command's batch; read it before the next await. */
  state: S;
  /** Stream revision after the batch (undefined when the stream is still empty). */
  revision: bigint | undefined;
}

export interface CommandRunnerOptions {
  /** Attempts after the first on ConcurrencyError. */
  maxRetries?: number;
  /** Streams whose state stays cached. */
  cacheSize?: number;
  /** Most commands decided in one batch. */
  maxBatch?: number;
  /** Metadata stored with every event (e.g. correlation ids). */
  metadata?: () => Record<string, unknown> | undefined;
  /** Where the states of deciders with a snapshot codec are kept; without it every load folds the whole stream. */
  snapshots?: SnapshotStore;
  /** Fewest events between two snapshots of a stream (default 10,000: a load then folds at most that many, ~70 ms). */
  snapshotEvery?: number;
  /** Each load from the store of a state whose decider keeps snapshots (for metrics): how it went and how long it took. */
  onLoad?: (load: StateLoad) => void;
  /** Each snapshot written (or that failed: the command it followed is not affected). */
  onSnapshot?: (snapshot: { seconds: number; error?: unknown }) => void;
}

export interface StateLoad {
  /** `used`: from a snapshot; `none`: the stream had none (or no codec); `stale`: one that did not match or decode, ignored. */
  snapshot: 'used' | 'none' | 'stale';
  /** Events folded. */
  events: number;
  seconds: number;
}

interface Pending<C, E, S> {
  command?: C;
  metadata?: Record<string, unknown>;
  peek?: true;
  resolve(result: CommandResult<E, S>): void;
  reject(error: unknown): void;
}

type Outcome<E> = { ok: true; events: E[] } | { ok: false; error: unknown };

interface DecidedBatch<E, S> {
  state: S;
  outcomes: Outcome<E>[];
  all: EventData[];
  unguarded: boolean;
}

/** A batch whose append waits in the store's queue for its group commit: commands arriving meanwhile join it. */
interface OpenBatch<C, E, S> {
  append: OpenAppend;
  batch: Pending<C, E, S>[];
  outcomes: Outcome<E>[];
}

interface StreamSlot<C, E, S> {
  decider: Decider<C, E, S>;
  state: S | undefined;
  revision: bigint | undefined;
  queue: Pending<C, E, S>[];
  running: boolean;
  /** The running batch while its append can still take events. */
  open: OpenBatch<C, E, S> | undefined;
  /** Revision of the stream's latest snapshot known here. */
  snapshotAt: bigint | undefined;
  /** performance.now() before which no snapshot is written (the duty cycle). */
  snapshotNotBefore: number;
}

export class CommandRunner {
  private readonly slots = new Map<string, StreamSlot<any, any, any>>();
  private readonly maxRetries: number;
  private readonly cacheSize: number;
  private readonly maxBatch: number;
  private readonly snapshotEvery: bigint;
  private snapshotTurn: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: EventStore,
    private readonly options: CommandRunnerOptions = {},
  ) {
    this.maxRetries = options.maxRetries ?? 5;
    this.cacheSize = options.cacheSize ?? 10_000;
    this.maxBatch = options.maxBatch ?? 2_000;
    this.snapshotEvery = BigInt(options.snapshotEvery ?? 10_000);
  }

  /** `metadata` is stored with this command's events (e.g. the account an OTP stream belongs to). */
  handle<C, E extends DomainEventLike, S>(
    streamId: string,
    decider: Decider<C, E, S>,
    command: C,
    metadata?: Record<string, unknown>,
  ): Promise<CommandResult<E, S>> {
    return this.enqueue(streamId, decider, { command, metadata });
  }

  private enqueue<C, E extends DomainEventLike, S>(
    streamId: string,
    decider: Decider<C, E, S>,
    item: { command: C; metadata?: Record<string, unknown> } | { peek: true },
  ): Promise<CommandResult<E, S>> {
    let slot = this.slots.get(streamId) as StreamSlot<C, E, S> | undefined;
    if (slot) {
      // Refresh LRU order.
      this.slots.delete(streamId);
      this.slots.set(streamId, slot);
    } else {
      slot = { decider, state: undefined, revision: undefined, queue: [], running: false, open: undefined, snapshotAt: undefined, snapshotNotBefore: 0 };
      this.slots.set(streamId, slot);
      this.evict();
    }
    const s = slot;
    return new Promise((resolve, reject) => {
      const pending: Pending<C, E, S> = 'peek' in item ? { peek: true, resolve, reject } : { command: item.command, metadata: item.metadata, resolve, reject };
      if (this.join(s, pending)) return;
      s.queue.push(pending);
      if (!s.running) void this.drain(streamId, s);
    });
  }

  /**
   * The stream's state as the command path sees it, after every command queued
   * before this call; for reads that need the decider's view (an idempotent replay's answer).
   */
  peek<C, E extends DomainEventLike, S>(streamId: string, decider: Decider<C, E, S>): Promise<CommandResult<E, S>> {
    return this.enqueue(streamId, decider, { peek: true });
  }

  /**
   * The stream's state as last folded, if it is cached, at once: unlike `peek` it does not queue
   * behind the commands in flight (nor wait for their commit), so it may be a batch behind. For
   * reads that tolerate that, such as labelling a metric; never for a decision.
   */
  cached<C, E extends DomainEventLike, S>(streamId: string, decider: Decider<C, E, S>): S | undefined {
    const slot = this.slots.get(streamId);
    return slot !== undefined && slot.decider === decider ? (slot.state as S | undefined) : undefined;
  }

  /** A stream with a batch running or commands queued keeps its state cached. */
  private readonly busy = (streamId: string): boolean => {
    const slot = this.slots.get(streamId);
    return slot !== undefined && (slot.running || slot.queue.length > 0);
  };

  /** Least recently used first, an eighth of the cache at a time (oldest-first.ts says why). */
  private evict(): void {
    trimOldest(this.slots, this.cacheSize, this.busy);
  }

  /**
   * A command for a stream whose batch is still waiting for its group commit joins that batch: it
   * is decided now, on the state the batch leaves, and its events go into the same append (one
   * expected revision vouches for both). It is answered with the batch, and decided again with it
   * on a conflict. Not when commands are queued before it (order), nor past `maxBatch`.
   */
  private join<C, E extends DomainEventLike, S>(slot: StreamSlot<C, E, S>, pending: Pending<C, E, S>): boolean {
    const open = slot.open;
    if (open === undefined || slot.queue.length > 0 || open.batch.length >= this.maxBatch) return false;
    if (!open.append.open) {
      slot.open = undefined;
      return false;
    }
    let outcome: Outcome<E>;
    if (pending.peek) outcome = { ok: true, events: [] };
    else {
      let events: E[];
      try {
        events = slot.decider.decide(pending.command as C, slot.state as S);
      } catch (error) {
        events = [];
        outcome = { ok: false, error };
      }
      if (events.length > 0) {
        const shared = this.options.metadata?.();
        const metadata = shared ? { ...shared, ...pending.metadata } : pending.metadata;
        try {
          open.append.extend(events.map((e) => ({ type: e.type, data: e.data, metadata })));
        } catch {
          // Not storable: it goes its own way (and fails there), as if it had come a moment later.
          return false;
        }
        let state = slot.state as S;
        for (const e of events) state = slot.decider.evolve(state, e);
        slot.state = state;
      }
      outcome ??= { ok: true, events };
    }
    open.batch.push(pending);
    open.outcomes.push(outcome);
    return true;
  }

  private async drain<C, E extends DomainEventLike, S>(streamId: string, slot: StreamSlot<C, E, S>): Promise<void> {
    slot.running = true;
    try {
      while (slot.queue.length > 0) {
        const batch = slot.queue.splice(0, this.maxBatch);
        await this.runBatch(streamId, slot, batch);
      }
    } finally {
      slot.running = false;
    }
  }

  private async runBatch<C, E extends DomainEventLike, S>(streamId: string, slot: StreamSlot<C, E, S>, batch: Pending<C, E, S>[]): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        // A state rebuilt just now is current; a cached one is checked below when nothing guards it.
        const cached = slot.state !== undefined;
        if (!cached) await this.rebuild(streamId, slot);
        const decided = this.decideBatch(slot.decider, slot.state as S, batch);
        if (cached && attempt < this.maxRetries && decided.unguarded) {
          const revision = await this.store.streamRevision(streamId);
          if (revision !== slot.revision) {
            // Stale: the state was possibly evolved in place too, so rebuild it and decide again.
            slot.state = undefined;
            slot.revision = undefined;
            continue;
          }
        }
        const { outcomes, all } = decided;
        slot.state = decided.state;
        let snapshot: { codec: StateCodec<S>; eventId: string } | undefined;
        if (all.length > 0) {
          // The last event gets its id here when a snapshot will be taken at it: the snapshot names it.
          const codec = this.snapshotDue(slot, all.length);
          if (codec) {
            const eventId = randomUUID();
            all[all.length - 1] = { ...all[all.length - 1], id: eventId };
            snapshot = { codec, eventId };
          }
          const expected = slot.revision ?? 'no_stream';
          // Commands that arrive while this append waits join it (`join`), unless a snapshot will name its last event.
          const open = this.store.appendOpen && !snapshot ? this.store.appendOpen(streamId, all, expected) : undefined;
          if (open) slot.open = { append: open, batch, outcomes };
          try {
            const res = await (open ? open.result : this.store.append(streamId, all, expected));
            slot.revision = res.nextExpectedRevision;
          } catch (error) {
            // The state was evolved with events that were not stored: rebuild it.
            slot.state = undefined;
            slot.revision = undefined;
            throw error;
          } finally {
            slot.open = undefined;
          }
        }
        // The state after the batch and whatever joined it.
        const state = slot.state as S;
        for (let i = 0; i < batch.length; i++) {
          const o = outcomes[i];
          if (o.ok) batch[i].resolve({ events: o.events, state, revision: slot.revision });
          else batch[i].reject(o.error);
        }
        // After the answers: the stream's next batch waits for it (its state must not move meanwhile), no caller does.
        if (snapshot) await this.writeSnapshot(streamId, slot, snapshot.codec, snapshot.eventId);
        return;
      } catch (error) {
        if (error instanceof ConcurrencyError && attempt < this.maxRetries) continue;
        for (const p of batch) p.reject(error);
        return;
      }
    }
  }

  /**
   * Decides the batch's commands in order against the evolving state: synchronous, and kept out of
   * `runBatch` so that the async function (whose frame is allocated per call) stays small.
   * `unguarded`: some answer appends nothing (a peek, a no-op, a refusal), so the expected revision
   * of an append will not vouch for the state it was decided on.
   */
  private decideBatch<C, E extends DomainEventLike, S>(decider: Decider<C, E, S>, start: S, batch: readonly Pending<C, E, S>[]): DecidedBatch<E, S> {
    let state = start;
    let unguarded = false;
    const outcomes: Outcome<E>[] = new Array(batch.length);
    const all: EventData[] = [];
    const shared = this.options.metadata?.();
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i];
      if (p.peek) {
        outcomes[i] = { ok: true, events: [] };
        unguarded = true;
        continue;
      }
      try {
        const events = decider.decide(p.command as C, state);
        const metadata = shared ? { ...shared, ...p.metadata } : p.metadata;
        for (const e of events) {
          state = decider.evolve(state, e);
          all.push({ type: e.type, data: e.data, metadata });
        }
        outcomes[i] = { ok: true, events };
        if (events.length === 0) unguarded = true;
      } catch (error) {
        outcomes[i] = { ok: false, error };
        unguarded = true;
      }
    }
    return { state, outcomes, all, unguarded };
  }

  /**
   * One snapshot per turn of the event loop: one commit completes the appends of many streams at
   * once, and their snapshots written in that same turn would add up to one long stall.
   */
  private nextSnapshotTurn(): Promise<void> {
    const turn = this.snapshotTurn.then(() => new Promise<void>((resolve) => setImmediate(resolve)));
    this.snapshotTurn = turn;
    return turn;
  }

  /** The codec, when a snapshot is to be taken after appending `count` more events to the stream. */
  private snapshotDue<S>(slot: StreamSlot<unknown, unknown, S>, count: number): StateCodec<S> | undefined {
    const codec = this.options.snapshots ? slot.decider.snapshot : undefined;
    if (codec === undefined) return undefined;
    const after = (slot.revision ?? -1n) + BigInt(count);
    if (after - (slot.snapshotAt ?? -1n) < this.snapshotEvery) return undefined;
    return performance.now() >= slot.snapshotNotBefore ? codec : undefined;
  }

  /**
   * Writes the slot's state (as of its revision, whose event has `eventId`) in a turn of the event
   * loop of its own; a failure only loses the snapshot.
   */
  private async writeSnapshot<S>(streamId: string, slot: StreamSlot<unknown, unknown, S>, codec: StateCodec<S>, eventId: string): Promise<void> {
    await this.nextSnapshotTurn();
    const started = performance.now();
    const revision = slot.revision as bigint;
    let error: unknown;
    try {
      // Encoded now, before anything else evolves the state in place.
      const snapshot: StoredSnapshot = { revision, eventId, version: codec.version, state: codec.encode(slot.state as S) };
      await this.options.snapshots?.save(streamId, snapshot);
      slot.snapshotAt = revision;
    } catch (e) {
      error = e;
    }
    const took = performance.now() - started;
    slot.snapshotNotBefore = performance.now() + (error === undefined ? took / SNAPSHOT_SHARE : Math.max(took / SNAPSHOT_SHARE, SNAPSHOT_RETRY_MS));
    this.options.onSnapshot?.(error === undefined ? { seconds: took / 1000 } : { seconds: took / 1000, error });
  }

  private async rebuild<C, E extends DomainEventLike, S>(streamId: string, slot: StreamSlot<C, E, S>): Promise<void> {
    const started = performance.now();
    const codec = this.options.snapshots ? slot.decider.snapshot : undefined;
    const snapshot = codec ? await this.loadSnapshot(streamId, codec) : undefined;
    let from = snapshot === 'stale' ? undefined : snapshot;
    let folded = await this.fold(streamId, slot.decider, from);
    if (folded === undefined) {
      // The snapshot is not of this stream's history (another log, say): fold it all.
      from = undefined;
      folded = (await this.fold(streamId, slot.decider, undefined)) as Folded<S>;
    }
    slot.state = folded.state;
    slot.revision = folded.revision;
    slot.snapshotAt = from?.revision;
    // Only the streams that can grow long (their decider keeps snapshots): an OTP's is loaded once or twice per OTP, a few events each.
    if (slot.decider.snapshot)
      this.options.onLoad?.({
        snapshot: from ? 'used' : snapshot === undefined ? 'none' : 'stale',
        events: folded.events,
        seconds: (performance.now() - started) / 1000,
      });
    if (codec && folded.lastId !== undefined && BigInt(folded.events) >= this.snapshotEvery) await this.writeSnapshot(streamId, slot, codec, folded.lastId);
  }

  /** The stream's snapshot as a state, `stale` when there is one that cannot serve (another format, unreadable). */
  private async loadSnapshot<S>(streamId: string, codec: StateCodec<S>): Promise<Snapshot<S> | 'stale' | undefined> {
    try {
      const stored = await this.options.snapshots?.load(streamId);
      if (stored === undefined) return undefined;
      if (stored.version !== codec.version) return 'stale';
      return { state: codec.decode(stored.state), revision: stored.revision, eventId: stored.eventId };
    } catch {
      return 'stale';
    }
  }

  /**
   * Folds the stream onto the snapshot `from` (or from the start), giving the event loop a turn every
   * YIELD_EVERY events; undefined when the stream does not have the snapshot's event at its revision.
   */
  private async fold<E extends DomainEventLike, S>(streamId: string, decider: Decider<unknown, E, S>, from: Snapshot<S> | undefined): Promise<Folded<S> | undefined> {
    let state = from ? from.state : decider.initialState();
    let revision = from?.revision;
    let lastId = from?.eventId;
    let events = 0;
    let checked = from === undefined;
    for await (const e of this.store.readStream(streamId, from ? { fromRevision: from.revision } : {})) {
      if (!checked) {
        // The snapshot's own event, read back: the same id at the same revision, or another history.
        if (e.revision !== from?.revision || e.id !== from.eventId) return undefined;
        checked = true;
        continue;
      }
      state = decider.evolve(state, recordedToDomain<E>(e));
      revision = e.revision;
      lastId = e.id;
      if (++events % YIELD_EVERY === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return checked ? { state, revision, lastId, events } : undefined;
  }
}

interface Snapshot<S> {
  state: S;
  revision: bigint;
  eventId: string;
}

interface Folded<S> {
  state: S;
  revision: bigint | undefined;
  /** Id of the last event folded (or of the snapshot's). */
  lastId: string | undefined;
  /** Events folded, the snapshot's not counted. */
  events: number;
}

export function recordedToDomain<E extends DomainEventLike>(e: RecordedEvent): E {
  return { type: e.type, data: e.data } as E;
}

/** One-off form of the command path, for scripts and tests. */
export function handleCommand<C, E extends DomainEventLike, S>(
  store: EventStore,
  streamId: string,
  decider: Decider<C, E, S>,
  command: C,
): Promise<CommandResult<E, S>> {
  return new CommandRunner(store).handle(streamId, decider, command);
}
