import type { EventStore, RecordedEvent } from '#eventstore';
import { lagSince, measureLag } from './progress.js';

const event = (position: bigint, created: string): RecordedEvent => ({
  streamId: 's',
  revision: position - 1n,
  position,
  id: `e${position}`,
  type: 'E',
  data: {},
  metadata: undefined,
  created,
});

describe('projection lag', () => {
  it('is measured from where the projections are once the head is read, not from where they were when asked', async () => {
    let applied = 0n;
    // The projections catch up while the head is being read (the first measure of a threaded projector, say).
    const store = {
      headPosition: async () => {
        applied = 10n;
        return 10n;
      },
    } as unknown as EventStore;
    const read = async (from: bigint) => [event(from + 1n, new Date(Date.now() - 3_000).toISOString())];
    expect(await measureLag(store, read, () => applied)).toEqual({ events: 0, seconds: 0, head: 10n, position: 10n });
  });

  it('counts what is still behind, with the oldest unapplied event\'s age, and moves on with the projections\' later progress', async () => {
    let applied = 4n;
    const store = { headPosition: async () => 10n } as unknown as EventStore;
    const reads: bigint[] = [];
    const read = async (from: bigint) => {
      reads.push(from);
      // An event applied during this read is no longer lag either.
      applied = 6n;
      return [event(from + 1n, new Date(Date.now() - 2_000).toISOString())];
    };
    const lag = await measureLag(store, read, () => applied);
    expect(reads).toEqual([4n]);
    expect(lag).toMatchObject({ events: 4, head: 10n, position: 6n });
    expect(lag.seconds).toBeGreaterThanOrEqual(1.9);

    expect(lagSince(lag, 8n)).toMatchObject({ events: 2, head: 10n, position: 8n, seconds: lag.seconds });
    expect(lagSince(lag, 12n)).toEqual({ events: 0, seconds: 0, head: 10n, position: 12n });
    // Progress is never undone by an older report.
    expect(lagSince(lag, 5n)).toBe(lag);
  });
});
