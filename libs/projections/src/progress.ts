/**
 * How far projections are behind the log, and waits for them to reach a
 * position: shared by the projector (same thread) and the threaded
 * projector's handle (another thread reports the position).
 */
import type { EventStore } from '#eventstore';
import type { ReadPage } from './log-reader.js';

export interface Lag {
  /** Head position minus the lowest checkpoint: events in SQLite, log positions with EventStoreDB. */
  events: number;
  /** Age of the oldest event not yet applied; 0 when caught up. */
  seconds: number;
  head: bigint;
  position: bigint;
}

/**
 * Measures the lag now: one head read and, when behind, one event read. The position is asked for
 * after the head is read and again at the end: projections move on during the reads, and a lag
 * counted from where they were when the measure began would overstate it (a measure begun before a
 * catch-up and ended after it would report the events the catch-up applied).
 */
export async function measureLag(store: EventStore, read: ReadPage, current: () => bigint): Promise<Lag> {
  const head = await store.headPosition();
  let seconds = 0;
  const from = current();
  if (head > from) {
    const [next] = await read(from, 1);
    if (next !== undefined) seconds = Math.max(0, (Date.now() - Date.parse(next.created)) / 1000);
  }
  return lagAt(head, current(), seconds);
}

/** The lag of `position` behind `head`; `seconds`, the age of the oldest unapplied event, counts only while behind. */
export function lagAt(head: bigint, position: bigint, seconds: number): Lag {
  return head > position ? { events: Number(head - position), seconds, head, position } : { events: 0, seconds: 0, head, position };
}

/** A lag measured earlier, brought up to a later position of the projections (the head stays as measured). */
export function lagSince(measured: Lag, position: bigint): Lag {
  return position > measured.position ? lagAt(measured.head, position, measured.seconds) : measured;
}

interface Waiter {
  position: bigint;
  resolve(): void;
}

/** The read models did not reach a position in time: they are behind the log (a busy or failing projector). */
export class ProjectionBehindError extends Error {
  override readonly name = 'ProjectionBehindError';
}

/** Callers waiting for the projections to reach a position. */
export class PositionWaiters {
  private waiters: Waiter[] = [];

  get size(): number {
    return this.waiters.length;
  }

  /** Resolves once `release` is called with `position` or later; rejects after `timeoutMs`. */
  wait(position: bigint, timeoutMs: number, current: () => bigint): Promise<void> {
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
        reject(new ProjectionBehindError(`projections did not reach position ${position} within ${timeoutMs} ms (at ${current()})`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  /** Resolves every wait for `position` or earlier. */
  release(position: bigint): void {
    if (this.waiters.length === 0) return;
    const ready = this.waiters.filter((w) => w.position <= position);
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => w.position > position);
    for (const w of ready) w.resolve();
  }
}
