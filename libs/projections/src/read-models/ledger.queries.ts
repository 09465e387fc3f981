/**
 * Statements from the `ledger_lines` table (written by the money projection).
 *
 * A month is cut by the line's time `at` (UTC). Within one account the money
 * projection stamps lines so that their times never go back in log order (see
 * money.projection.ts), so lines ordered by position are also ordered by time,
 * a month's lines are a run of the account's lines, and the opening balance is
 * the `balance_after` of the last line before the month.
 */
import { type Db, memoPerDb } from '../projection.js';
import type { LedgerLineType } from './money.projection.js';

export interface StatementLine {
  at: string;
  type: LedgerLineType;
  /** Signed micro-USD: deposits and refunds positive, charges and reversals negative. */
  amount: bigint;
  balanceAfter: bigint;
  /** otpId for charges and refunds, `chainId:txHash:logIndex` for deposits and reversals. */
  ref: string;
  /** Log position of the event behind the line. */
  position: bigint;
}

export interface LedgerStatement {
  accountId: string;
  month: string;
  openingBalance: bigint;
  closingBalance: bigint;
  lines: StatementLine[];
}

interface Row {
  at: string;
  type: LedgerLineType;
  amount: bigint;
  balance_after: bigint;
  ref: string;
  position: bigint;
}

const MONTH = /^(\d{4})-(0[1-9]|1[0-2])$/;

/** `2026-12` → `2027-01`: the exclusive upper bound of a month, compared as ISO text. */
export function nextMonth(month: string): string {
  const m = MONTH.exec(month);
  if (!m) throw new RangeError(`not a month (YYYY-MM): ${JSON.stringify(month)}`);
  const y = Number(m[1]);
  const mo = Number(m[2]);
  return mo === 12 ? `${y + 1}-01` : `${m[1]}-${String(mo + 1).padStart(2, '0')}`;
}

const statements = memoPerDb((db) => ({
  lines: db
    .prepare<[string, string, string], Row>(
      `SELECT at, type, amount, balance_after, ref, position FROM ledger_lines
       WHERE account_id = ? AND at >= ? AND at < ? ORDER BY position`,
    )
    .safeIntegers(true),
  before: db
    .prepare<[string, string], { balance_after: bigint }>(
      `SELECT balance_after FROM ledger_lines WHERE account_id = ? AND at < ? ORDER BY at DESC, position DESC LIMIT 1`,
    )
    .safeIntegers(true),
  // Walks the account's lines (the CLI's audits call it once per account); the statement queries use the index.
  atPosition: db
    .prepare<[string, number], { balance_after: bigint }>(
      `SELECT balance_after FROM ledger_lines WHERE account_id = ? AND position <= ? ORDER BY position DESC LIMIT 1`,
    )
    .safeIntegers(true),
}));

export function statement(db: Db, accountId: string, month: string): LedgerStatement {
  const end = nextMonth(month);
  const s = statements(db);
  const lines = s.lines.all(accountId, month, end).map((r) => ({
    at: r.at,
    type: r.type,
    amount: r.amount,
    balanceAfter: r.balance_after,
    ref: r.ref,
    position: r.position,
  }));
  const openingBalance = s.before.get(accountId, month)?.balance_after ?? 0n;
  const closingBalance = lines.length > 0 ? lines[lines.length - 1].balanceAfter : openingBalance;
  return { accountId, month, openingBalance, closingBalance, lines };
}

/** The account's balance after every event up to `position`, as the statement records it. */
export function ledgerBalanceAt(db: Db, accountId: string, position: bigint): bigint {
  return statements(db).atPosition.get(accountId, Number(position))?.balance_after ?? 0n;
}
