/**
 * Deposits as the customer sees them (GET /api/v1/deposits): one row per
 * credited transfer, marked when reversed. Money itself is the money
 * projection's; this one only lists. It follows the decider's I4 rules so a
 * replay agrees with it: a second credit of a key changes nothing, a reversal
 * counts only for a credited, not yet reversed key.
 */
import type { RecordedEvent } from '#eventstore';
import { ACCOUNT_PREFIX, type Db, memoPerDb, type Projection, type ProjectionWriter } from '../projection.js';

const ddl = (s: string): string => `
CREATE TABLE IF NOT EXISTS deposits${s} (
  chain_id        INTEGER NOT NULL,
  tx_hash         TEXT    NOT NULL,
  log_index       INTEGER NOT NULL,
  account_id      TEXT    NOT NULL,
  token           TEXT    NOT NULL,
  amount          INTEGER NOT NULL,
  truncated_units TEXT,
  block_number    INTEGER NOT NULL,
  block_hash      TEXT    NOT NULL,
  credited_at     TEXT    NOT NULL,
  position        INTEGER NOT NULL,
  reversed_at     TEXT,
  reversal_reason TEXT,
  PRIMARY KEY (chain_id, tx_hash, log_index)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deposits${s}_by_account ON deposits${s} (account_id, position);`;

interface Data {
  chainId: number;
  token: string;
  txHash: string;
  logIndex: number;
  blockNumber: number;
  blockHash: string;
  amount: string;
  truncatedUnits?: string;
  reason: string;
  at: string;
}

function writer(db: Db, s: string): ProjectionWriter {
  const st = {
    credit: db.prepare<[number, string, number, string, string, bigint, string | null, number, string, string, number]>(
      `INSERT OR IGNORE INTO deposits${s} (chain_id, tx_hash, log_index, account_id, token, amount, truncated_units, block_number, block_hash, credited_at, position)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    reverse: db.prepare<[string, string, number, string, number, string]>(
      `UPDATE deposits${s} SET reversed_at = ?, reversal_reason = ?
       WHERE chain_id = ? AND tx_hash = ? AND log_index = ? AND account_id = ? AND reversed_at IS NULL`,
    ),
  };
  return {
    apply(e: RecordedEvent): void {
      const d = e.data as Data;
      const accountId = e.streamId.slice(ACCOUNT_PREFIX.length);
      const tx = d.txHash.toLowerCase();
      if (e.type === 'DepositCredited') {
        st.credit.run(d.chainId, tx, d.logIndex, accountId, d.token, BigInt(d.amount), d.truncatedUnits ?? null, d.blockNumber, d.blockHash, d.at, Number(e.position));
      } else if (e.type === 'DepositReversed') {
        st.reverse.run(d.at, d.reason, d.chainId, tx, d.logIndex, accountId);
      }
    },
    flush(): void {},
    discard(): void {},
  };
}

export const depositsProjection: Projection = {
  name: 'deposits',
  version: 1,
  handles: ['DepositCredited', 'DepositReversed'],
  tables: ['deposits'],
  ddl,
  writer,
};

export interface DepositView {
  chainId: number;
  txHash: string;
  logIndex: number;
  accountId: string;
  /** Token contract, as credited (EIP-55). */
  token: string;
  amount: bigint;
  /** Token base units below one micro-USD that the conversion dropped. */
  truncatedUnits: bigint;
  blockNumber: number;
  blockHash: string;
  creditedAt: string;
  status: 'credited' | 'reversed';
  reversedAt?: string;
  reversalReason?: string;
}

interface Row {
  chain_id: bigint;
  tx_hash: string;
  log_index: bigint;
  account_id: string;
  token: string;
  amount: bigint;
  truncated_units: string | null;
  block_number: bigint;
  block_hash: string;
  credited_at: string;
  reversed_at: string | null;
  reversal_reason: string | null;
}

const statements = memoPerDb((db) => ({
  // Integers as bigint: an amount of micro-USD may pass 2^53.
  byAccount: db.prepare<[string, number], Row>('SELECT * FROM deposits WHERE account_id = ? ORDER BY position DESC LIMIT ?').safeIntegers(true),
}));

/** The account's deposits, newest credit first. */
export function listDeposits(db: Db, accountId: string, limit = 100): DepositView[] {
  return statements(db)
    .byAccount.all(accountId, limit)
    .map((r) => ({
      chainId: Number(r.chain_id),
      txHash: r.tx_hash,
      logIndex: Number(r.log_index),
      accountId: r.account_id,
      token: r.token,
      amount: r.amount,
      truncatedUnits: BigInt(r.truncated_units ?? '0'),
      blockNumber: Number(r.block_number),
      blockHash: r.block_hash,
      creditedAt: r.credited_at,
      status: r.reversed_at === null ? ('credited' as const) : ('reversed' as const),
      ...(r.reversed_at === null ? {} : { reversedAt: r.reversed_at }),
      ...(r.reversal_reason === null ? {} : { reversalReason: r.reversal_reason }),
    }));
}
