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
 *
 * A line's time is its event's, but never earlier than the account's line
 * before it: a settlement carries the time of its receipt or expiry, and a
 * charge the API appended meanwhile comes before it in the log with a later
 * time. Stamped so, the lines of a month (cut by time) are a run of the
 * account's lines in log order, and each month opens at the balance the one
 * before closed at (a refund of January 31 settled after a charge of February 1
 * is a February line, at the charge's time). Times are stored canonical (ISO,
 * milliseconds, UTC), so their text order is their time order.
 *
 * Lines are keyed by log position (one event, at most one line), so they are
 * appended in order and only the (account, time) index is written at random.
 * Within a transaction, the balances it touches are read once, kept in memory
 * and written once at its end, and a charge opened and settled in the same
 * transaction never reaches the open-charges table: replay cost follows the
 * statement lines, not the events.
 */
import type { RecordedEvent } from '#eventstore';
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
  pending           INTEGER NOT NULL DEFAULT 0,
  last_line_at      TEXT    NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_lines${s} (
  position      INTEGER PRIMARY KEY,
  account_id    TEXT    NOT NULL,
  at            TEXT    NOT NULL,
  type          TEXT    NOT NULL,
  amount        INTEGER NOT NULL,
  balance_after INTEGER NOT NULL,
  ref           TEXT    NOT NULL
);
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

interface Balance {
  balance: bigint;
  testCreditsLeft: bigint;
  pending: bigint;
  /** The time of the account's last statement line ('' before the first). */
  lastLineAt: string;
}

/** `toISOString`'s form, the one every writer of the log gives times in. */
const CANONICAL_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/**
 * The time of a new line of this account: the event's, canonical, or its last line's when that is
 * later. A time already in canonical form is taken as it is: the round trip through `Date` costs
 * ~0.65 µs, on every money event of a replay (~27 ns for the test).
 */
function lineTime(b: Balance, at: string): string {
  const t = CANONICAL_TIME.test(at) ? at : new Date(Date.parse(at)).toISOString();
  if (t > b.lastLineAt) b.lastLineAt = t;
  return b.lastLineAt;
}

interface OpenCharge {
  accountId: string;
  amount: bigint;
  fundedBy: string;
}

function writer(db: Db, s: string): ProjectionWriter {
  const st = {
    balance: db
      .prepare<[string], Balance>(`SELECT balance, test_credits_left AS testCreditsLeft, pending, last_line_at AS lastLineAt FROM balances${s} WHERE account_id = ?`)
      .safeIntegers(true),
    saveBalance: db.prepare<[string, bigint, bigint, bigint, string]>(
      `INSERT INTO balances${s} (account_id, balance, test_credits_left, pending, last_line_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (account_id) DO UPDATE SET
         balance = excluded.balance, test_credits_left = excluded.test_credits_left, pending = excluded.pending, last_line_at = excluded.last_line_at`,
    ),
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
  const balances = new Map<string, Balance>();
  /** Charges opened in this transaction, by otpId, not written yet. */
  const charges = new Map<string, OpenCharge>();

  function balanceOf(accountId: string): Balance {
    let b = balances.get(accountId);
    if (b === undefined) {
      // An account seen before its AccountOpened starts from zero, as the decider's state does.
      b = st.balance.get(accountId) ?? { balance: 0n, testCreditsLeft: 0n, pending: 0n, lastLineAt: '' };
      balances.set(accountId, b);
    }
    return b;
  }

  function closeCharge(accountId: string, otpId: string): { amount: bigint; fundedBy: string } | undefined {
    const local = charges.get(otpId);
    if (local !== undefined && local.accountId === accountId) {
      charges.delete(otpId);
      return local;
    }
    const stored = st.closeCharge.get(accountId, otpId);
    return stored === undefined ? undefined : { amount: stored.amount, fundedBy: stored.funded_by };
  }

  return {
    apply(e: RecordedEvent): void {
      const d = e.data as Data;
      const accountId = e.streamId.slice(ACCOUNT_PREFIX.length);
      const position = Number(e.position);
      switch (e.type) {
        case 'AccountOpened':
          balanceOf(accountId).testCreditsLeft += BigInt(d.testCredits);
          return;
        case 'DepositCredited': {
          const amount = BigInt(d.amount);
          const ref = depositRef(d);
          st.credit.run(accountId, ref, amount);
          const b = balanceOf(accountId);
          b.balance += amount;
          st.line.run(accountId, position, lineTime(b, d.at), 'deposit', amount, b.balance, ref);
          return;
        }
        case 'DepositReversed': {
          const ref = depositRef(d);
          const dep = st.reverse.get(accountId, ref);
          if (dep === undefined) return;
          const b = balanceOf(accountId);
          b.balance -= dep.amount;
          st.line.run(accountId, position, lineTime(b, d.at), 'reversal', -dep.amount, b.balance, ref);
          return;
        }
        case 'Charged': {
          const amount = BigInt(d.amount);
          charges.set(d.otpId, { accountId, amount, fundedBy: d.fundedBy });
          const b = balanceOf(accountId);
          if (d.fundedBy === 'test_credit') {
            b.testCreditsLeft -= 1n;
            return;
          }
          b.balance -= amount;
          b.pending += amount;
          st.line.run(accountId, position, lineTime(b, d.at), 'charge', -amount, b.balance, d.otpId);
          return;
        }
        case 'Delivered': {
          const charge = closeCharge(accountId, d.otpId);
          if (charge !== undefined && charge.fundedBy === 'balance') balanceOf(accountId).pending -= charge.amount;
          return;
        }
        case 'Refunded': {
          const charge = closeCharge(accountId, d.otpId);
          if (charge === undefined) return;
          const b = balanceOf(accountId);
          if (charge.fundedBy === 'test_credit') {
            b.testCreditsLeft += 1n;
            return;
          }
          b.balance += charge.amount;
          b.pending -= charge.amount;
          st.line.run(accountId, position, lineTime(b, d.at), 'refund', charge.amount, b.balance, d.otpId);
          return;
        }
      }
    },
    flush(): void {
      for (const [otpId, c] of charges) st.openCharge.run(c.accountId, otpId, c.amount, c.fundedBy);
      charges.clear();
      for (const [accountId, b] of balances) st.saveBalance.run(accountId, b.balance, b.testCreditsLeft, b.pending, b.lastLineAt);
      balances.clear();
    },
    discard(): void {
      charges.clear();
      balances.clear();
    },
  };
}

export const moneyProjection: Projection = {
  name: 'money',
  // 2: ledger lines keyed by log position; 3: line times never earlier than the account's line before
  // (balances.last_line_at). Files built with an older version are rebuilt from position 0.
  version: 3,
  handles: MONEY_EVENT_TYPES,
  tables: ['balances', 'ledger_lines', 'money_deposits', 'money_open_charges'],
  ddl,
  writer,
};
