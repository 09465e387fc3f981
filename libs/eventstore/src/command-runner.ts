/**
 * The one command path: load state, decide, append with the expected
 * revision, retry a bounded number of times on conflict.
 *
 * Inside one process, commands on the same stream never race each other: they
 * queue per stream, and whatever queued while an append was in flight is
 * decided as one batch against the evolving state and appended as one write.
 * A hot account stream therefore costs one group commit per batch instead of
 * one per command. The optimistic retry is for writers in other processes.
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
 */
import type { Decider } from '#domain';
import { ConcurrencyError, type EventData, type EventStore, type RecordedEvent } from './event-store.port.js';

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
}

interface Pending<C, E, S> {
  command?: C;
  metadata?: Record<string, unknown>;
  peek?: true;
  resolve(result: CommandResult<E, S>): void;
  reject(error: unknown): void;
}

interface StreamSlot<C, E, S> {
  decider: Decider<C, E, S>;
  state: S | undefined;
  revision: bigint | undefined;
  queue: Pending<C, E, S>[];
  running: boolean;
}

export class CommandRunner {
  private readonly slots = new Map<string, StreamSlot<any, any, any>>();
  private readonly maxRetries: number;
  private readonly cacheSize: number;
  private readonly maxBatch: number;

  constructor(
    private readonly store: EventStore,
    private readonly options: CommandRunnerOptions = {},
  ) {
    this.maxRetries = options.maxRetries ?? 5;
    this.cacheSize = options.cacheSize ?? 10_000;
    this.maxBatch = options.maxBatch ?? 2_000;
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
      slot = { decider, state: undefined, revision: undefined, queue: [], running: false };
      this.slots.set(streamId, slot);
      this.evict();
    }
    const s = slot;
    return new Promise((resolve, reject) => {
      s.queue.push({ ...item, resolve, reject });
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

  private evict(): void {
    if (this.slots.size <= this.cacheSize) return;
    for (const [id, slot] of this.slots) {
      if (this.slots.size <= this.cacheSize) break;
      if (!slot.running && slot.queue.length === 0) this.slots.delete(id);
    }
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
        let state = slot.state as S;
        const outcomes: ({ ok: true; events: E[] } | { ok: false; error: unknown })[] = [];
        const all: EventData[] = [];
        const shared = this.options.metadata?.();
        for (const p of batch) {
          if (p.peek) {
            outcomes.push({ ok: true, events: [] });
            continue;
          }
          try {
            const events = slot.decider.decide(p.command as C, state);
            const metadata = p.metadata || shared ? { ...shared, ...p.metadata } : undefined;
            for (const e of events) {
              state = slot.decider.evolve(state, e);
              all.push({ type: e.type, data: e.data, metadata });
            }
            outcomes.push({ ok: true, events });
          } catch (error) {
            outcomes.push({ ok: false, error });
          }
        }
        if (cached && attempt < this.maxRetries && outcomes.some((o) => !o.ok || o.events.length === 0)) {
          const revision = await this.store.streamRevision(streamId);
          if (revision !== slot.revision) {
            // Stale: the state was possibly evolved in place too, so rebuild it and decide again.
            slot.state = undefined;
            slot.revision = undefined;
            continue;
          }
        }
        slot.state = state;
        if (all.length > 0) {
          try {
            const res = await this.store.append(streamId, all, slot.revision ?? 'no_stream');
            slot.revision = res.nextExpectedRevision;
          } catch (error) {
            // The state was evolved with events that were not stored: rebuild it.
            slot.state = undefined;
            slot.revision = undefined;
            throw error;
          }
        }
        batch.forEach((p, i) => {
          const o = outcomes[i];
          if (o.ok) p.resolve({ events: o.events, state, revision: slot.revision });
          else p.reject(o.error);
        });
        return;
      } catch (error) {
        if (error instanceof ConcurrencyError && attempt < this.maxRetries) continue;
        for (const p of batch) p.reject(error);
        return;
      }
    }
  }

  private async rebuild<C, E extends DomainEventLike, S>(streamId: string, slot: StreamSlot<C, E, S>): Promise<void> {
    let state = slot.decider.initialState();
    let revision: bigint | undefined;
    for await (const e of this.store.readStream(streamId)) {
      state = slot.decider.evolve(state, recordedToDomain<E>(e));
      revision = e.revision;
    }
    slot.state = state;
    slot.revision = revision;
  }
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
