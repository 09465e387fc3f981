/**
 * The distributed EventStore: EventStoreDB over gRPC (@eventstore/db-client 6.x).
 * Loaded only by `openEventStore({ kind: 'esdb' })`, so the embedded default
 * never pays for the gRPC stack.
 *
 * Positions. EventStoreDB addresses $all by a `{ commit, prepare }` pair of
 * byte offsets into its transaction log. Every gRPC append is written as
 * self-committed prepares, one log record per event, and for those the server
 * reports commit = prepare = the event's own offset (its $all reader builds
 * `CommitEventRecord(event, prepare.LogPosition)`, and an append answers with
 * the commit offset of its last event). So the port's bigint position is the
 * commit position, and position `p` goes back to the server as
 * `{ commit: p, prepare: p }`. Offsets have gaps: only positions this store
 * handed out are valid starting points. Only the legacy TCP API's explicit
 * transactions give several events one commit position; nothing here writes
 * those, and a log that contains some would repeat positions.
 *
 * Exclusive starts. The server's $all read includes the event at its start
 * position and its subscription does not; both paths here drop anything at or
 * before the start, so "from p" means "> p" either way.
 *
 * System events ($-prefixed types or streams: stats, metadata, projection
 * links) are not the application's log. The subscription asks the server to
 * leave them out; $all reads cannot in this client version, so they are
 * skipped here, and headPosition is the last application event, the one a
 * subscriber can actually reach.
 */
import {
  type AllStreamResolvedEvent,
  type AllStreamSubscription,
  BACKWARDS,
  END,
  EventStoreDBClient,
  excludeSystemEvents,
  FORWARDS,
  START,
} from '@eventstore/db-client';
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
import {
  closedError,
  isStreamNotFound,
  isSystem,
  positionOf,
  type Proposed,
  resolvedOf,
  toExpectedRevision,
  toProposed,
  toRecorded,
  toServerPosition,
  translateError,
  validPosition,
} from './esdb.mapping.js';

export interface EsdbEventStoreOptions {
  /** Events asked for per $all read request. */
  pageSize?: number;
}

/** A backwards scan for the head stops at the first application event; most pages hold one at the top. */
const HEAD_PAGE = 32;
/** How long close waits for the client's dispose (see close). */
const DISPOSE_WAIT_MS = 2_000;

export class EsdbEventStore implements EventStore {
  private closing: Promise<void> | undefined;
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly subscriptions = new Set<EsdbSubscription>();
  private readonly pageSize: number;

  static connect(url: string, options?: EsdbEventStoreOptions): EsdbEventStore {
    return new EsdbEventStore(EventStoreDBClient.connectionString(url), options);
  }

  constructor(
    readonly client: EventStoreDBClient,
    options: EsdbEventStoreOptions = {},
  ) {
    // Two at least: a page must hold something past the inclusive start event.
    this.pageSize = Math.max(2, options.pageSize ?? 1_000);
  }

  append(streamId: string, events: readonly EventData[], expected: ExpectedRevision): Promise<AppendResult> {
    if (this.closing) return Promise.reject(closedError());
    let proposed: Proposed[];
    try {
      // $-streams are the server's own (and hidden from reads here, like $-types).
      if (streamId.startsWith('$')) throw new TypeError(`stream ${streamId}: $-prefixed streams are reserved by EventStoreDB`);
      proposed = events.map(toProposed);
    } catch (error) {
      return Promise.reject(error);
    }
    const pending = this.appendProposed(streamId, proposed, expected);
    this.inFlight.add(pending);
    const forget = () => this.inFlight.delete(pending);
    pending.then(forget, forget);
    return pending;
  }

  private async appendProposed(streamId: string, proposed: Proposed[], expected: ExpectedRevision): Promise<AppendResult> {
    if (proposed.length === 0) {
      // The 6.x client reads a "no stream" answer to an empty append as revision 0; check it here instead.
      const actual = await this.streamRevision(streamId);
      if (!revisionMatches(expected, actual)) throw new ConcurrencyError(streamId, expected, actual);
      return { nextExpectedRevision: actual ?? -1n, position: await this.headPosition() };
    }
    let result;
    try {
      result = await this.client.appendToStream(streamId, proposed, { expectedRevision: toExpectedRevision(expected) });
    } catch (error) {
      throw translateError(error, { streamId, expected });
    }
    // Only with throwOnAppendFailure=false in the connection string; the 6.2 client's
    // batch path then reports the actual revision as 0 or 1, so ask the stream.
    if (!result.success) throw new ConcurrencyError(streamId, expected, await this.streamRevision(streamId));
    const commit = result.position?.commit;
    const position = validPosition(commit) ? commit : await this.positionOfRevision(streamId, result.nextExpectedRevision);
    return { nextExpectedRevision: result.nextExpectedRevision, position };
  }

  /** For an append answered with "no position", which the protocol allows. */
  private async positionOfRevision(streamId: string, revision: bigint): Promise<bigint> {
    for await (const e of this.readStream(streamId, { fromRevision: revision, maxCount: 1 })) return e.position;
    throw new Error(`EventStoreDB acknowledged ${streamId}@${revision} but does not return it`);
  }

  async *readStream(streamId: string, options: ReadStreamOptions = {}): AsyncIterable<RecordedEvent> {
    this.assertOpen();
    const maxCount = options.maxCount ?? Number.MAX_SAFE_INTEGER;
    if (maxCount <= 0) return;
    const read = this.client.readStream(streamId, { fromRevision: options.fromRevision ?? START, maxCount, direction: FORWARDS });
    try {
      for await (const resolved of resolvedOf(read)) {
        const e = toRecorded(resolved);
        if (e) yield e;
      }
    } catch (error) {
      if (!isStreamNotFound(error)) throw error;
    }
  }

  async streamRevision(streamId: string): Promise<bigint | undefined> {
    // The same single backwards read: the server has no cheaper way to ask for a stream's revision.
    return (await this.lastEvent(streamId))?.revision;
  }

  async lastEvent(streamId: string): Promise<RecordedEvent | undefined> {
    this.assertOpen();
    try {
      const read = this.client.readStream(streamId, { fromRevision: END, direction: BACKWARDS, maxCount: 1 });
      for await (const resolved of resolvedOf(read)) return toRecorded(resolved);
      return undefined;
    } catch (error) {
      if (isStreamNotFound(error)) return undefined;
      throw error;
    }
  }

  async expireAfter(streamId: string, ms: number): Promise<void> {
    this.assertOpen();
    try {
      await this.client.setStreamMetadata(streamId, { maxAge: Math.ceil(ms / 1000) });
    } catch (error) {
      throw translateError(error);
    }
  }

  async *readAll(options: ReadAllOptions = {}): AsyncIterable<RecordedEvent> {
    this.assertOpen();
    let left = options.maxCount ?? Number.POSITIVE_INFINITY;
    let from = options.fromPosition ?? 0n;
    while (left > 0) {
      // The server's read from a position includes that position's record, hence one more than `left`;
      // at least 64, so that a short read does not take a round trip per system event it passes.
      const count = Math.min(this.pageSize, Math.max(left + 1, 64));
      const read = this.client.readAll({ fromPosition: from > 0n ? toServerPosition(from) : START, maxCount: count, direction: FORWARDS });
      let seen = 0;
      let last = from;
      for await (const resolved of resolvedOf(read)) {
        seen++;
        const position = positionOf(resolved);
        if (!resolved.event || position === undefined || position <= from) continue;
        last = position;
        if (isSystem(resolved.event)) continue;
        yield toRecorded(resolved) as RecordedEvent;
        if (--left === 0) return;
      }
      if (seen < count || last === from) return;
      from = last;
    }
  }

  async headPosition(): Promise<bigint> {
    this.assertOpen();
    let from: typeof END | { commit: bigint; prepare: bigint } = END;
    for (;;) {
      const read = this.client.readAll({ fromPosition: from, maxCount: HEAD_PAGE, direction: BACKWARDS });
      let seen = 0;
      let lowest: bigint | undefined;
      for await (const resolved of resolvedOf(read)) {
        seen++;
        const position = positionOf(resolved);
        if (!resolved.event || position === undefined) continue;
        if (!isSystem(resolved.event)) return position;
        lowest = position;
      }
      if (seen < HEAD_PAGE || lowest === undefined) return 0n;
      from = toServerPosition(lowest);
    }
  }

  subscribe(options: SubscribeOptions = {}): Subscription {
    const sub = new EsdbSubscription(
      (from, highWaterMark) =>
        this.client.subscribeToAll({ fromPosition: from > 0n ? toServerPosition(from) : START, filter: excludeSystemEvents() }, { highWaterMark }),
      options.fromPosition ?? 0n,
      Math.max(1, options.batchSize ?? 1_000),
      () => this.subscriptions.delete(sub),
    );
    if (this.closing) void sub.close();
    else this.subscriptions.add(sub);
    return sub;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all([...this.subscriptions].map((s) => s.close()));
      await Promise.allSettled([...this.inFlight]);
      // The client's dispose waits for every call it opened to say it finished. Under load one
      // sometimes never does (a subscription's call torn down as it opened, it seems): a replica's
      // close hung for good, about once in 25 runs of the replica tests. So the wait is bounded: the
      // channel's calls are cancelled either way, and the process goes on closing. The timer is not
      // unref'd: a process with nothing else left would otherwise exit in the middle of its close.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.client.dispose(), new Promise<void>((resolve) => (timer = setTimeout(resolve, DISPOSE_WAIT_MS)))]);
      clearTimeout(timer);
    })();
    return this.closing;
  }

  private assertOpen(): void {
    if (this.closing) throw closedError();
  }
}

/**
 * Pages pulled from the client's subscription stream. The stream is read in
 * paused mode with a high-water mark of one page: when the consumer stops
 * pulling, the stream's buffer fills, it stops reading the gRPC call, and
 * HTTP/2 flow control holds the server back.
 */
class EsdbSubscription implements Subscription {
  private source: AllStreamSubscription | undefined;
  private closed = false;
  private ended = false;
  private failure: unknown;
  private wake: (() => void) | undefined;
  private last: bigint;

  constructor(
    private readonly open: (from: bigint, highWaterMark: number) => AllStreamSubscription,
    from: bigint,
    private readonly batchSize: number,
    private readonly onClose: () => void,
  ) {
    this.last = from;
  }

  private readonly signal = (): void => {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  };

  private start(): AllStreamSubscription {
    const source = this.open(this.last, this.batchSize);
    source.on('readable', this.signal);
    source.on('end', () => {
      this.ended = true;
      this.signal();
    });
    // Without an 'error' listener a dropped connection would crash the process.
    source.on('error', (error: unknown) => {
      this.failure ??= error;
      this.signal();
    });
    return source;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<RecordedEvent[]> {
    if (this.closed) return;
    const source = (this.source ??= this.start());
    try {
      while (!this.closed) {
        const page = this.pull(source);
        if (page.length > 0) {
          yield page;
          continue;
        }
        if (this.closed) return;
        if (this.failure !== undefined) throw translateError(this.failure);
        if (this.ended) throw new StoreUnavailableError('EventStoreDB ended the subscription; resubscribe from the last position handled');
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      await this.close();
    }
  }

  /** What the stream already holds, up to one page; never waits. */
  private pull(source: AllStreamSubscription): RecordedEvent[] {
    const page: RecordedEvent[] = [];
    while (page.length < this.batchSize) {
      const resolved = source.read() as AllStreamResolvedEvent | null;
      if (resolved === null) break;
      const position = positionOf(resolved);
      if (!resolved.event || position === undefined || position <= this.last || isSystem(resolved.event)) continue;
      this.last = position;
      page.push(toRecorded(resolved) as RecordedEvent);
    }
    return page;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
    this.signal();
    const source = this.source;
    if (!source) return;
    // Not awaited: unsubscribing waits for the call to have opened, which a dead server can delay for long.
    source.unsubscribe().catch(() => undefined);
    source.destroy();
  }
}
