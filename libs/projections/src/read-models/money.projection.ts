/**
 * Money: balances per account and the ledger statement, as one fold.
 *
 * They are one projection on purpose: a statement line's `balance_after` is
 * the balance the `balances` table holds after that event, by construction,
 * and each money event costs one balance update instead of two folds' worth.
 *
 * The fold mirrors the account decider's `evolve` exactly (I1: the live
 * projection equals a full replay of the decider's state): a settlement only
 * counts for an open charge and refunds the charge's own amount and source; a
 * reversal only counts for a credited, not yet reversed deposit. The ledger
 * CLI's `verify` checks the log itself with an independent fold.
 *
 * Statement lines are money only: charges and refunds funded by test credits
 * move no money, so they appear in `test_credits_left` and in the delivery
 * stats, not as zero-amount lines. Amounts are signed micro-USD (a charge or
 * reversal is negative) so that `balance_after = previous + amount` holds.
 */
import type { RecordedEvent } from '#eventstore';
import type { Statement } from 'better-sqlite3';
import { ACCOUNT_PREFIX, type Db, type Projection, type ProjectionWriter } from '../projection.js';

export const MONEY_EVENT_TYPES = [
  'AccountOpened',
  'DepositCredited',
  'DepositReversed',
  'Charged',
  'Delivered',
  'Refunded',
] as const;

export type LedgerLineType = 'deposit' | 'charge' | 'refund' | 'reversal';

const ddl = (s: string): string => `
CREATE TABLE IF NOT EXISTS balances${s} (
  account_id        TEXT    PRIMARY KEY,
  balance           INTEGER NOT NULL DEFAULT 0,
  test_credits_left INTEGER NOT NULL DEFAULT 0,
  pending           INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_lines${s} (
  account_id    TEXT    NOT NULL,
  position      INTEGER NOT NULL,
  at            TEXT    NOT NULL,
  type          TEXT    NOT NULL,
  amount        INTEGER NOT NULL,
  balance_after INTEGER NOT NULL,
  ref           TEXT    NOT NULL,
  PRIMARY KEY (account_id, position)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ledger_lines${s}_by_time ON ledger_lines${s} (account_id, at);
CREATE TABLE IF NOT EXISTS money_deposits${s} (
  account_id  TEXT    NOT NULL,
  deposit_key TEXT    NOT NULL,
  amount      INTEGER NOT NULL,
  reversed    INTEGER NOT NULL,
  PRIMARY KEY (account_id, deposit_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS money_open_charges${s} (
  account_id TEXT    NOT NULL,
  otp_id     TEXT    NOT NULL,
  amount     INTEGER NOT NULL,
  funded_by  TEXT    NOT NULL,
  PRIMARY KEY (account_id, otp_id)
) WITHOUT ROWID;`;

interface Data {
  accountId: string;
  testCredits: number;
  chainId: number;
  txHash: string;
  logIndex: number;
  amount: string;
  otpId: string;
  fundedBy: string;
  at: string;
}

/** The deposit's reference on statements; the same key as the decider's `depositKey`. */
const depositRef = (d: Data): string => `${d.chainId}:${d.txHash.toLowerCase()}:${d.logIndex}`;

function writer(db: Db, s: string): ProjectionWriter {
  const returning = <P extends unknown[]>(sql: string): Statement<P, { balance: bigint }> =>
    db.prepare<P, { balance: bigint }>(sql).safeIntegers(true);
  const st = {
    open: db.prepare<[string, number]>(
      `INSERT INTO balances${s} (account_id, test_credits_left) VALUES (?, ?)
       ON CONFLICT (account_id) DO UPDATE SET test_credits_left = test_credits_left + excluded.test_credits_left`,
    ),
    ensure: db.prepare<[string]>(`INSERT OR IGNORE INTO balances${s} (account_id) VALUES (?)`),
    addBalance: returning<[bigint, string]>(`UPDATE balances${s} SET balance = balance + ? WHERE account_id = ? RETURNING balance`),
    charge: returning<[bigint, bigint, string]>(
      `UPDATE balances${s} SET balance = balance - ?, pending = pending + ? WHERE account_id = ? RETURNING balance`,
    ),
    refund: returning<[bigint, bigint, string]>(
      `UPDATE balances${s} SET balance = balance + ?, pending = pending - ? WHERE account_id = ? RETURNING balance`,
    ),
    settle: db.prepare<[bigint, string]>(`UPDATE balances${s} SET pending = pending - ? WHERE account_id = ?`),
    testCredit: db.prepare<[number, string]>(`UPDATE balances${s} SET test_credits_left = test_credits_left + ? WHERE account_id = ?`),
    line: db.prepare<[string, number, string, string, bigint, bigint, string]>(
      `INSERT OR REPLACE INTO ledger_lines${s} (account_id, position, at, type, amount, balance_after, ref) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    credit: db.prepare<[string, string, bigint]>(
      `INSERT OR REPLACE INTO money_deposits${s} (account_id, deposit_key, amount, reversed) VALUES (?, ?, ?, 0)`,
    ),
    reverse: db
      .prepare<[string, string], { amount: bigint }>(
        `UPDATE money_deposits${s} SET reversed = 1 WHERE account_id = ? AND deposit_key = ? AND reversed = 0 RETURNING amount`,
      )
      .safeIntegers(true),
    openCharge: db.prepare<[string, string, bigint, string]>(
      `INSERT OR REPLACE INTO money_open_charges${s} (account_id, otp_id, amount, funded_by) VALUES (?, ?, ?, ?)`,
    ),
    closeCharge: db
      .prepare<[string, string], { amount: bigint; funded_by: string }>(
        `DELETE FROM money_open_charges${s} WHERE account_id = ? AND otp_id = ? RETURNING amount, funded_by`,
      )
      .safeIntegers(true),
  };

  /** Runs a balance update; an account seen before its AccountOpened gets a zero row first. */
  function balanceAfter<P extends unknown[]>(stmt: Statement<P, { balance: bigint }>, accountId: string, ...params: P): bigint {
    let row = stmt.get(...params);
    if (row === undefined) {
      st.ensure.run(accountId);
      row = stmt.get(...params) as { balance: bigint };
    }
    return row.balance;
  }

  return {
    apply(e: RecordedEvent): void {
      const d = e.data as Data;
      const accountId = e.streamId.slice(ACCOUNT_PREFIX.length);
      const position = Number(e.position);
      switch (e.type) {
        case 'AccountOpened':
          st.open.run(accountId, d.testCredits);
          return;
        case 'DepositCredited': {
          const amount = BigInt(d.amount);
          const ref = depositRef(d);
          st.credit.run(accountId, ref, amount);
          const after = balanceAfter(st.addBalance, accountId, amount, accountId);
          st.line.run(accountId, position, d.at, 'deposit', amount, after, ref);
          return;
        }
        case 'DepositReversed': {
          const ref = depositRef(d);
          const dep = st.reverse.get(accountId, ref);
          if (dep === undefined) return;
          const after = balanceAfter(st.addBalance, accountId, -dep.amount, accountId);
          st.line.run(accountId, position, d.at, 'reversal', -dep.amount, after, ref);
          return;
        }
        case 'Charged': {
          const amount = BigInt(d.amount);
          st.openCharge.run(accountId, d.otpId, amount, d.fundedBy);
          if (d.fundedBy === 'test_credit') {
            if (st.testCredit.run(-1, accountId).changes === 0) {
              st.ensure.run(accountId);
              st.testCredit.run(-1, accountId);
            }
            return;
          }
          const after = balanceAfter(st.charge, accountId, amount, amount, accountId);
          st.line.run(accountId, position, d.at, 'charge', -amount, after, d.otpId);
          return;
        }
        case 'Delivered': {
          const charge = st.closeCharge.get(accountId, d.otpId);
          if (charge !== undefined && charge.funded_by === 'balance') st.settle.run(charge.amount, accountId);
          return;
        }
        case 'Refunded': {
          const charge = st.closeCharge.get(accountId, d.otpId);
          if (charge === undefined) return;
          if (charge.funded_by === 'test_credit') {
            st.testCredit.run(1, accountId);
            return;
          }
          const after = balanceAfter(st.refund, accountId, charge.amount, charge.amount, accountId);
          st.line.run(accountId, position, d.at, 'refund', charge.amount, after, d.otpId);
          return;
        }
      }
    },
    flush(): void {},
    discard(): void {},
  };
}

export const moneyProjection: Projection = {
  name: 'money',
  version: 1,
  handles: MONEY_EVENT_TYPES,
  tables: ['balances', 'ledger_lines', 'money_deposits', 'money_open_charges'],
  ddl,
  writer,
};
