/**
 * The poison-message policy both bus adapters share: which keys of a failing
 * batch to hold, each held key's retry backoff, and releasing a held key's
 * messages in order. Where held messages are kept, and how that is made
 * durable before the offset moves past them, is each adapter's part (the
 * embedded bus: `bus_held` in its own file, in the commit's transaction;
 * Kafka: `KafkaHeldStore`, before the offset commit).
 *
 * A key is held, not a message: once one of its messages is held, every later
 * message of that key is held behind it, so the key keeps its order. When
 * every key of a batch fails, or any key fails because something it needs is
 * not there now (`isOutage`: the event store unreachable, a bus refusing,
 * writers contending), it is an outage, not a poison message, and nothing is
 * held: on Kafka a batch often holds one key, so the first rule alone would
 * take a store's blip for poison.
 */
import { ConcurrencyError, StoreUnavailableError } from '#eventstore';
import { BusError, type BatchHandler, type ConsumedMessage } from './message-bus.port.js';

/** How a bus holds a failing key aside; the same options on both adapters. */
export interface HoldOptions {
  /** Failures in a row of one batch before its keys are tried one by one. Default 3. */
  holdAfter?: number;
  /** Longest wait between two tries of a held key. Default 60 s. */
  maxHoldRetryMs?: number;
  /** A key's messages were set aside after its handler kept failing (`error` is its last failure). */
  onHold?: (event: { group: string; topic: string; key: string; messages: number; error: unknown }) => void;
}

/** A failure that says "not now" rather than "never": it, or an error it wraps. */
export function isOutage(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof StoreUnavailableError || e instanceof ConcurrencyError || (e instanceof BusError && e.retriable)) return true;
    if ((e as { code?: unknown }).code === 'SQLITE_BUSY') return true;
  }
  return false;
}

/** Keys handed over at once while a failed batch is tried key by key (a dispatch may wait on a carrier). */
const ISOLATE_CONCURRENCY = 64;

/** Runs the handler on `rows`: the error it threw, or undefined once its effects are durable. */
export type Attempt<R> = (rows: R[]) => Promise<{ error: unknown } | undefined>;

/** An Attempt through `handler`; a `toBatch` that throws (a value that is not JSON) fails like the handler. */
export function attempting<R, V>(handler: BatchHandler<V>, toBatch: (rows: R[]) => ConsumedMessage<V>[]): Attempt<R> {
  return async (rows) => {
    try {
      await handler(toBatch(rows));
      return undefined;
    } catch (error) {
      return { error };
    }
  };
}

/**
 * Hands `rows` over again key by key (ISOLATE_CONCURRENCY keys at a time, each key's messages in
 * one call, in order), after the whole batch kept failing. Returns the keys to hold with their
 * last error, or undefined when it is an outage (every key failed, or one failed with `isOutage`:
 * hold nothing, the batch is tried again whole) or `running` turned false.
 */
export async function isolateFailingKeys<R extends { key: string }>(rows: readonly R[], attempt: Attempt<R>, running: () => boolean): Promise<Map<string, unknown> | undefined> {
  const byKey = new Map<string, R[]>();
  for (const r of rows) {
    const list = byKey.get(r.key);
    if (list) list.push(r);
    else byKey.set(r.key, [r]);
  }
  const failing = new Map<string, unknown>();
  const keys = [...byKey.keys()];
  for (let i = 0; i < keys.length; i += ISOLATE_CONCURRENCY) {
    if (!running()) return undefined;
    await Promise.all(
      keys.slice(i, i + ISOLATE_CONCURRENCY).map(async (key) => {
        const failed = await attempt(byKey.get(key)!);
        if (failed) failing.set(key, failed.error);
      }),
    );
  }
  if (byKey.size > 1 && failing.size === byKey.size) return undefined;
  for (const error of failing.values()) if (isOutage(error)) return undefined;
  return failing;
}

/** What `HeldKeys.retryDue` needs from the adapter's store of held messages. */
export interface HeldPages<R> {
  /** The key's oldest held messages, in order, at most a batch. */
  page(key: string): R[];
  /** Drops the key's held messages up to the last of `rows` (just handled); true when none of the key's are left. */
  release(key: string, rows: R[]): boolean;
  attempt: Attempt<R>;
  onError(error: unknown): void;
  running(): boolean;
}

interface KeyState {
  tries: number;
  dueAt: number;
}

/** The keys with held messages, each with its own retry backoff. */
export class HeldKeys {
  private readonly keys = new Map<string, KeyState>();

  constructor(
    /** The first retry's delay, doubled per failure... */
    private readonly retryMs: number,
    /** ...up to this. Each delay is jittered to 50-100 %, so held keys do not retry in step. */
    private readonly maxRetryMs: number,
  ) {}

  get size(): number {
    return this.keys.size;
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }

  /** Holds a key whose handler kept failing: its first retry comes after one backoff. Returns when. */
  hold(key: string, now: number): number {
    const state = { tries: 1, dueAt: now + this.backoff(1) };
    this.keys.set(key, state);
    return state.dueAt;
  }

  /** A key with held messages not known here yet (found in the store at start, or held again behind a release): tried at once. */
  resume(key: string): void {
    if (!this.keys.has(key)) this.keys.set(key, { tries: 0, dueAt: 0 });
  }

  /** Tries the held keys that are due, oldest messages first; returns when the next one is due (Infinity when none is held). */
  async retryDue<R>(pages: HeldPages<R>): Promise<number> {
    let next = Infinity;
    for (const [key, state] of this.keys) {
      if (!pages.running()) break;
      if (state.dueAt > Date.now()) {
        next = Math.min(next, state.dueAt);
        continue;
      }
      const rows = pages.page(key);
      // No await between an empty page and the delete: a hold made meanwhile cannot be forgotten.
      const failed = rows.length > 0 ? await pages.attempt(rows) : undefined;
      if (failed) {
        pages.onError(failed.error);
        state.tries++;
        state.dueAt = Date.now() + this.backoff(state.tries);
        next = Math.min(next, state.dueAt);
        continue;
      }
      if (rows.length === 0 || pages.release(key, rows)) this.keys.delete(key);
      else next = Date.now();
    }
    return next;
  }

  private backoff(tries: number): number {
    return Math.min(this.maxRetryMs, this.retryMs * 2 ** Math.min(tries, 20)) * (0.5 + Math.random() / 2);
  }
}
