/** Pages of the log for projectors, replays and rebuilds, whatever the store. */
import type { EventStore, RecordedEvent } from '#eventstore';

/** Events with position > `fromPosition`, in log order, at most `limit`. */
export type ReadPage = (fromPosition: bigint, limit: number) => Promise<RecordedEvent[]>;

interface PagedStore {
  readPage(fromPosition: number, limit: number): RecordedEvent[];
}

const hasReadPage = (store: EventStore): store is EventStore & PagedStore =>
  typeof (store as Partial<PagedStore>).readPage === 'function';

/**
 * The synchronous page read of a store that has one (the SQLite store), else
 * undefined. Synchronous reads can run inside a SQLite transaction, which lets
 * a projector fill one large transaction from several small pages.
 */
export function syncPageReader(store: EventStore): ((fromPosition: bigint, limit: number) => RecordedEvent[]) | undefined {
  if (!hasReadPage(store)) return undefined;
  return (from, limit) => store.readPage(Number(from), limit);
}

export function pageReader(store: EventStore): ReadPage {
  // The SQLite store reads a page in one statement; other stores go through the port's readAll.
  if (hasReadPage(store)) return async (from, limit) => store.readPage(Number(from), limit);
  return async (from, limit) => {
    const out: RecordedEvent[] = [];
    for await (const e of store.readAll({ fromPosition: from, maxCount: limit })) out.push(e);
    return out;
  };
}
