/**
 * The EventStore port. Revisions are 0-based per stream (like EventStoreDB);
 * positions are global, strictly increasing, and comparable across the log.
 */
export type ExpectedRevision = 'no_stream' | 'any' | 'stream_exists' | bigint;

export interface EventData {
  type: string;
  data: unknown;
  metadata?: Record<string, unknown>;
  /** Unique id, a UUID (EventStoreDB stores no other kind); generated when absent. */
  id?: string;
}

export interface RecordedEvent<D = unknown> {
  streamId: string;
  revision: bigint;
  /** Global position in the log. Reading or subscribing "from p" returns events with position > p. */
  position: bigint;
  id: string;
  type: string;
  data: D;
  metadata: Record<string, unknown> | undefined;
  /** When the store recorded it (ISO-8601 UTC). */
  created: string;
}

export interface AppendResult {
  /** The revision of the last event written: pass it as the next expected revision. */
  nextExpectedRevision: bigint;
  /** Position of the last event written. */
  position: bigint;
}

export interface ReadStreamOptions {
  /** Inclusive start revision; 0 when absent. */
  fromRevision?: bigint;
  maxCount?: number;
}

export interface ReadAllOptions {
  /** Exclusive start position; the start of the log when absent. */
  fromPosition?: bigint;
  maxCount?: number;
}

export interface SubscribeOptions {
  /** Exclusive start position; the start of the log when absent. */
  fromPosition?: bigint;
  /** Largest page handed out at once. */
  batchSize?: number;
}

/**
 * A catch-up subscription: pages of events in log order, first the backlog,
 * then live. Back-pressure is by pulling: the next page is read only when the
 * consumer asks for it. Iteration ends after close() (of the subscription or
 * the store); it throws StoreUnavailableError when the store drops it (a lost
 * EventStoreDB connection): subscribe again from the last position handled.
 */
export interface Subscription extends AsyncIterable<RecordedEvent[]> {
  close(): Promise<void>;
}

/** An append waiting for its group commit, which events decided meanwhile can join (`EventStore.appendOpen`). */
export interface OpenAppend {
  readonly result: Promise<AppendResult>;
  /** Whether `extend` would still take events: the append has not gone to the disk yet. */
  readonly open: boolean;
  /**
   * Adds events at the end of this append while it is `open`: they commit or fail with it, under its
   * one expected revision. Throws when they cannot be stored (data that is not JSON) or it is closed.
   */
  extend(events: readonly EventData[]): void;
}

export interface EventStore {
  append(streamId: string, events: readonly EventData[], expected: ExpectedRevision): Promise<AppendResult>;
  /**
   * Optional, for a store whose appends wait for a group commit: `append`, with a handle through
   * which the events its caller decides next on the same stream join it until it is written,
   * instead of waiting for it and taking the commit after.
   */
  appendOpen?(streamId: string, events: readonly EventData[], expected: ExpectedRevision): OpenAppend;
  /** Events of one stream in revision order; empty when the stream does not exist. */
  readStream(streamId: string, options?: ReadStreamOptions): AsyncIterable<RecordedEvent>;
  /** The revision of the stream's last event, or undefined when it has none. */
  streamRevision(streamId: string): Promise<bigint | undefined>;
  /**
   * The stream's last event, or undefined when it has none: one read, for a
   * caller that decides on the latest fact alone (a lease, a window).
   */
  lastEvent(streamId: string): Promise<RecordedEvent | undefined>;
  readAll(options?: ReadAllOptions): AsyncIterable<RecordedEvent>;
  /**
   * Asks the store to drop the stream's events once they are older than `ms` (EventStoreDB's
   * `$maxAge`), for a stream whose events must not outlive their use. A store that cannot does not
   * offer it. After its events aged out, a stream keeps its revision: appends go after it.
   */
  expireAfter?(streamId: string, ms: number): Promise<void>;
  /** Position of the last event in the log (0n when empty). */
  headPosition(): Promise<bigint>;
  subscribe(options?: SubscribeOptions): Subscription;
  /**
   * Settles appends already accepted, ends open subscriptions and releases the
   * store; appends and reads after close are refused with StoreUnavailableError.
   */
  close(): Promise<void>;
}

export const EVENT_STORE = Symbol('EventStore');

/** An append whose expected revision did not match the stream. */
export class ConcurrencyError extends Error {
  constructor(
    readonly streamId: string,
    readonly expected: ExpectedRevision,
    /** The stream's revision when the append was refused; undefined when it does not exist. */
    readonly actual: bigint | undefined,
  ) {
    super(`stream ${streamId}: expected revision ${String(expected)}, actual ${actual === undefined ? 'no stream' : String(actual)}`);
    this.name = 'ConcurrencyError';
  }
}

/** The store is closed or unreachable. */
export class StoreUnavailableError extends Error {
  /**
   * Of a failed append: `no` when it surely wrote nothing (refused before it was sent, a local
   * transaction rolled back); `unknown` when the store may have recorded it without confirming
   * (a timeout or a dropped connection after the request went out).
   */
  readonly written: 'no' | 'unknown';

  constructor(message: string, options?: { cause?: unknown; written?: 'no' | 'unknown' }) {
    super(message, options);
    this.name = 'StoreUnavailableError';
    this.written = options?.written ?? 'no';
  }
}

/** Whether `actual` (undefined: no stream) satisfies `expected`. */
export function revisionMatches(expected: ExpectedRevision, actual: bigint | undefined): boolean {
  if (expected === 'any') return true;
  if (expected === 'no_stream') return actual === undefined;
  if (expected === 'stream_exists') return actual !== undefined;
  return actual === expected;
}
