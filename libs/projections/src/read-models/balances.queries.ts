/** Reads of the `balances` table (written by the money projection); money comes out as bigint micro-USD. */
import { type Db, memoPerDb } from '../projection.js';

export interface BalanceView {
  balance: bigint;
  testCreditsLeft: number;
  /** Balance-funded charges of OTPs not yet delivered or refunded. */
  pending: bigint;
}

export interface AccountBalance extends BalanceView {
  accountId: string;
}

interface Row {
  account_id: string;
  balance: bigint;
  test_credits_left: bigint;
  pending: bigint;
}

const toView = (r: Row): AccountBalance => ({
  accountId: r.account_id,
  balance: r.balance,
  testCreditsLeft: Number(r.test_credits_left),
  pending: r.pending,
});

const statements = memoPerDb((db) => ({
  one: db.prepare<[string], Row>('SELECT * FROM balances WHERE account_id = ?').safeIntegers(true),
  all: db.prepare<[], Row>('SELECT * FROM balances ORDER BY account_id').safeIntegers(true),
}));

export function getBalance(db: Db, accountId: string): BalanceView | undefined {
  const r = statements(db).one.get(accountId);
  if (r === undefined) return undefined;
  const { accountId: _, ...view } = toView(r);
  return view;
}

/** Every account's balance, ordered by account id (the ledger CLI's replay diff). */
export function listBalances(db: Db): AccountBalance[] {
  return statements(db).all.all().map(toView);
}
