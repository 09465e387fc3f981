import { Projector } from '../projector.js';
import { getBalance, listBalances } from './balances.queries.js';
import { statement } from './ledger.queries.js';
import { moneyProjection } from './money.projection.js';
import { acct, credited, delivered, opened, refunded, reversed, sent, tempStore, type TempStore } from '../testing/events.js';

const day = (d: string) => `2026-${d}T10:00:00.000Z`;

describe('money projection: balances and ledger lines, hand-computed', () => {
  let t: TempStore;
  let projector: Projector;

  beforeAll(async () => {
    t = tempStore();
    const a = acct('A');
    await t.put(a, opened('A', 2));
    await t.put(a, credited(1, 1_000_000n, day('03-02')));
    await t.put(a, sent('o1', day('03-03'), { fundedBy: 'test_credit' }), sent('o2', day('03-03'), { fundedBy: 'test_credit' }));
    await t.put(a, refunded('o2', day('03-03'), { fundedBy: 'test_credit' }));
    await t.put(a, sent('o3', day('03-04')), sent('o4', day('03-04')));
    await t.put(a, delivered('o3', day('03-05')), refunded('o4', day('03-05')));
    // Written straight to the log (no decider would): a second refund and a delivery of a test-funded OTP.
    await t.put(a, refunded('o4', day('03-06')), delivered('o1', day('03-06')));
    await t.put(a, credited(2, 500_000n, '2026-04-01T00:00:00.000Z'));
    await t.put(a, reversed(1, day('04-02')), reversed(1, day('04-03')), reversed(9, day('04-03')));
    await t.put(acct('B'), opened('B', 5), sent('b1', day('03-10'), { fundedBy: 'test_credit' }));
    projector = new Projector({ store: t.store, db: t.store.db, projections: [moneyProjection] });
    await projector.catchUp();
  });
  afterAll(() => t.dispose());

  it('I1: the balance is credited − reversed − charged(balance) + refunded(balance), each settled once', () => {
    // 1,000,000 + 500,000 − 1,000,000 (one reversal of tx1) − 22,000 (o3) ; o4 charged then refunded once.
    expect(getBalance(t.store.db, 'A')).toEqual({ balance: 478_000n, testCreditsLeft: 1, pending: 0n });
    expect(getBalance(t.store.db, 'B')).toEqual({ balance: 0n, testCreditsLeft: 4, pending: 0n });
    expect(getBalance(t.store.db, 'nobody')).toBeUndefined();
    expect(listBalances(t.store.db).map((b) => b.accountId)).toEqual(['A', 'B']);
  });

  it('pending holds balance-funded charges until they settle', async () => {
    const u = tempStore();
    try {
      await u.put(acct('C'), opened('C'), credited(1, 100_000n, day('03-01')), sent('c1', day('03-01')), sent('c2', day('03-01')));
      await u.put(acct('C'), delivered('c1', day('03-02')));
      const p = new Projector({ store: u.store, db: u.store.db, projections: [moneyProjection] });
      await p.catchUp();
      expect(getBalance(u.store.db, 'C')).toEqual({ balance: 56_000n, testCreditsLeft: 0, pending: 22_000n });
    } finally {
      await u.dispose();
    }
  });

  it('a month statement has opening and closing balances and a balance after each money line', () => {
    const march = statement(t.store.db, 'A', '2026-03');
    expect(march.openingBalance).toBe(0n);
    expect(march.lines.map(({ type, amount, balanceAfter, ref }) => [type, amount, balanceAfter, ref])).toEqual([
      ['deposit', 1_000_000n, 1_000_000n, `56:0x${'1'.padStart(64, '0')}:0`],
      ['charge', -22_000n, 978_000n, 'o3'],
      ['charge', -22_000n, 956_000n, 'o4'],
      ['refund', 22_000n, 978_000n, 'o4'],
    ]);
    expect(march.closingBalance).toBe(978_000n);

    const april = statement(t.store.db, 'A', '2026-04');
    expect(april.openingBalance).toBe(978_000n);
    expect(april.lines.map(({ at, type, amount, balanceAfter }) => [at, type, amount, balanceAfter])).toEqual([
      ['2026-04-01T00:00:00.000Z', 'deposit', 500_000n, 1_478_000n],
      [day('04-02'), 'reversal', -1_000_000n, 478_000n],
    ]);
    expect(april.closingBalance).toBe(478_000n);

    const may = statement(t.store.db, 'A', '2026-05');
    expect(may).toMatchObject({ openingBalance: 478_000n, closingBalance: 478_000n, lines: [] });
  });

  it('test-credit charges and refunds move no money, so they are not statement lines', () => {
    expect(statement(t.store.db, 'B', '2026-03').lines).toEqual([]);
  });

  it('month statements chain when a settlement carries an earlier time than a charge appended before it (a refund of Jan 31 settled after a charge of Feb 1)', async () => {
    const u = tempStore();
    try {
      const c = acct('C');
      await u.put(c, opened('C'), credited(1, 1_000_000n, '2026-01-10T00:00:00.000Z'), sent('o1', '2026-01-31T23:49:00.000Z'));
      // o1's receipt arrived at 23:59:59.990; before settlement appended its refund, the API charged o2 (Feb 1) and o3.
      await u.put(c, sent('o2', '2026-02-01T00:00:00.010Z'));
      await u.put(c, refunded('o1', '2026-01-31T23:59:59.990Z'));
      // Both in January, out of order: the refund's receipt came in before the charge it follows in the log.
      await u.put(c, sent('o3', '2026-02-10T10:00:00.000Z'));
      await u.put(c, refunded('o2', '2026-02-10T09:59:59Z'));
      const p = new Projector({ store: u.store, db: u.store.db, projections: [moneyProjection] });
      await p.catchUp();
      const months = ['2026-01', '2026-02', '2026-03'].map((m) => statement(u.store.db, 'C', m));
      const line = ({ at, type, amount, balanceAfter, ref }: (typeof months)[number]['lines'][number]) => [at, type, amount, balanceAfter, ref];
      expect(months[0].lines.map(line)).toEqual([
        ['2026-01-10T00:00:00.000Z', 'deposit', 1_000_000n, 1_000_000n, `56:0x${'1'.padStart(64, '0')}:0`],
        ['2026-01-31T23:49:00.000Z', 'charge', -22_000n, 978_000n, 'o1'],
      ]);
      expect(months[1].lines.map(line)).toEqual([
        ['2026-02-01T00:00:00.010Z', 'charge', -22_000n, 956_000n, 'o2'],
        ['2026-02-01T00:00:00.010Z', 'refund', 22_000n, 978_000n, 'o1'],
        ['2026-02-10T10:00:00.000Z', 'charge', -22_000n, 956_000n, 'o3'],
        ['2026-02-10T10:00:00.000Z', 'refund', 22_000n, 978_000n, 'o2'],
      ]);
      for (const [i, m] of months.entries()) {
        // Each month opens where the one before closed, and its lines add up from its opening.
        if (i > 0) expect(m.openingBalance).toBe(months[i - 1].closingBalance);
        expect(m.lines.reduce((b, l) => (expect(l.balanceAfter).toBe(b + l.amount), l.balanceAfter), m.openingBalance)).toBe(m.closingBalance);
      }
      expect(months.map((m) => [m.openingBalance, m.closingBalance])).toEqual([[0n, 978_000n], [978_000n, 978_000n], [978_000n, 978_000n]]);
    } finally {
      await u.dispose();
    }
  });

  it('rejects a malformed month', () => {
    expect(() => statement(t.store.db, 'A', '2026-13')).toThrow(RangeError);
  });
});
