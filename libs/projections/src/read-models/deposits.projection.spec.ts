import { Projector } from '../projector.js';
import { depositsProjection, listDeposits } from './deposits.projection.js';
import { acct, credited, opened, reversed, tempStore, txHash, type TempStore } from '../testing/events.js';

const T = (s: number) => new Date(Date.parse('2026-03-01T00:00:00.000Z') + s * 1000).toISOString();

describe('deposits read model: each credited transfer once (I4), marked when reversed', () => {
  let t: TempStore;
  beforeAll(async () => {
    t = tempStore();
    const dust = credited(3, 10_123_456n, T(3));
    (dust.data as Record<string, unknown>).truncatedUnits = '789000000000';
    await t.put(
      acct('A'),
      opened('A'),
      credited(1, 25_500_000n, T(1)),
      credited(2, 9_000_000_000_000_000n, T(2)),
      reversed(2, T(4)),
      // A replayed credit and a second reversal of one key: the decider never appends them; a replay must still agree.
      credited(1, 25_500_000n, T(5)),
      reversed(2, T(6)),
      dust,
    );
    await t.put(acct('B'), opened('B'), reversed(9, T(7)));
    await new Projector({ store: t.store, db: t.store.db, projections: [depositsProjection] }).catchUp();
  });
  afterAll(() => t.dispose());

  it('lists an account’s deposits newest first with status, amount beyond 2^53 and recorded truncation', () => {
    const list = listDeposits(t.store.db, 'A');
    expect(list.map((d) => [d.txHash, d.status, d.amount, d.truncatedUnits])).toEqual([
      [txHash(3), 'credited', 10_123_456n, 789_000_000_000n],
      [txHash(2), 'reversed', 9_000_000_000_000_000n, 0n],
      [txHash(1), 'credited', 25_500_000n, 0n],
    ]);
    expect(list[1]).toMatchObject({ chainId: 56, logIndex: 0, blockNumber: 1002, creditedAt: T(2), reversedAt: T(4) });
    expect(list[2]!.creditedAt).toBe(T(1));
  });

  it('ignores a reversal of a transfer never credited to that account', () => {
    expect(listDeposits(t.store.db, 'B')).toEqual([]);
  });

  it('honours the limit', () => {
    expect(listDeposits(t.store.db, 'A', 1)).toHaveLength(1);
  });
});
