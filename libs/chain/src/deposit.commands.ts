/**
 * Account commands for deposits, built from what the chain said. The amount
 * crosses from token base units to micro-USD here and only here, with the
 * token's configured decimals (verified against the chain at start-up).
 */
import { type AccountCommand, microsToDigits, tokenUnitsToMicros } from '#domain';
import type { Transfer } from './chain-client.port.js';
import type { CreditRef } from './deposit-watch.js';

type CreditDeposit = Extract<AccountCommand, { type: 'CreditDeposit' }>;
type ReverseDeposit = Extract<AccountCommand, { type: 'ReverseDeposit' }>;

/** The account command crediting a transfer: base units to micro-USD with the token's configured decimals, dust recorded. */
export function creditDepositCommand(t: Transfer, decimals: number, at: string): CreditDeposit {
  const { micros, truncatedUnits } = tokenUnitsToMicros(t.amount, decimals);
  return {
    type: 'CreditDeposit',
    chainId: t.chainId,
    token: t.token,
    txHash: t.txHash,
    logIndex: t.logIndex,
    blockNumber: t.blockNumber,
    blockHash: t.blockHash,
    amount: microsToDigits(micros),
    ...(truncatedUnits > 0n ? { truncatedUnits: truncatedUnits.toString() } : {}),
    at,
  };
}

export function reverseDepositCommand(credit: CreditRef, reason: string, at: string): ReverseDeposit {
  return { type: 'ReverseDeposit', chainId: credit.chainId, txHash: credit.txHash, logIndex: credit.logIndex, reason: reason.slice(0, 200), at };
}
