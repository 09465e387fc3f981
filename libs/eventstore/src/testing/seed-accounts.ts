/**
 * Test and bench support: accounts opened, keyed and funded straight through
 * the command path, before a service starts on the file (signup gives only 5
 * test credits, and the chain is not what these runs measure).
 */
import { randomBytes } from 'node:crypto';
import { type AccountCommand, accountDecider, accountStream } from '#domain';
import { newApiKey } from '#security';
import type { CommandRunner } from '../command-runner.js';

const USDT = '0xdAC17F958D2ee523a2206206994597C13D831ec7';

/** A deposit command as the chain consumer would issue it, with a fresh transaction hash. */
export function testDeposit(amountMicros: bigint, at: string): Extract<AccountCommand, { type: 'CreditDeposit' }> {
  return {
    type: 'CreditDeposit',
    chainId: 1,
    token: USDT,
    txHash: `0x${randomBytes(32).toString('hex')}`,
    logIndex: 0,
    blockNumber: 1,
    blockHash: `0x${'1'.repeat(64)}`,
    amount: amountMicros.toString(),
    at,
  };
}

export interface SeedOptions {
  count: number;
  /** Account ids are `acc_<prefix><i>`, key ids `key_<prefix><i>`. */
  prefix: string;
  depositMicros: bigint;
  testCredits?: number;
  at?: string;
  /** Extra commands per account (a webhook, say), appended after the deposit. */
  extra?: (i: number, at: string) => AccountCommand[];
}

/** Returns each account's API key, in account order. */
export async function seedFundedAccounts(runner: CommandRunner, options: SeedOptions): Promise<string[]> {
  const at = options.at ?? new Date().toISOString();
  return Promise.all(
    Array.from({ length: options.count }, async (_, i) => {
      const accountId = `acc_${options.prefix}${i}`;
      const stream = accountStream(accountId);
      const key = newApiKey();
      const commands: AccountCommand[] = [
        { type: 'OpenAccount', accountId, name: `${options.prefix} ${i}`, testCredits: options.testCredits ?? 0, at },
        { type: 'IssueApiKey', keyId: `key_${options.prefix}${i}`, keyHash: key.hash, prefix: key.prefix, at },
        testDeposit(options.depositMicros, at),
        ...(options.extra?.(i, at) ?? []),
      ];
      for (const command of commands) await runner.handle(stream, accountDecider, command);
      return key.key;
    }),
  );
}
