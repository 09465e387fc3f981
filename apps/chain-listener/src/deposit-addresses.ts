/**
 * Hands out an account's deposit address: one per account for every EVM
 * chain, derived from the configured xpub (the service never holds a key
 * that can move the money).
 *
 * Two steps, each on its own consistency boundary: the index comes from the
 * `deposit-index-evm` stream, where an allocation is appended with the exact
 * expected revision (so two API processes can never take one index; the
 * loser's CommandRunner decides again on the fresh state), then the address
 * is assigned on the account stream, where the decider keeps the first one.
 * A retry after a crash between the two gets the same index back: the
 * allocator remembers the account.
 */
import { deriveDepositAddress } from '#chain';
import { DomainError, accountDecider, accountStream, depositIndexDecider, depositIndexStream } from '#domain';
import type { CommandRunner } from '#eventstore';
import { EVM_FAMILY } from './chain-listener.js';

export interface DepositAddressDeps {
  runner: CommandRunner;
  /** Account-level xpub (m/44'/60'/0'/0); undefined when the deployment has none. */
  xpub: string | undefined;
  clock: () => Date;
}

export interface AssignedAddress {
  /** EIP-55. */
  address: string;
  index: number;
}

export async function depositAddressFor(deps: DepositAddressDeps, accountId: string): Promise<AssignedAddress> {
  const stream = accountStream(accountId);
  const current = (await deps.runner.peek(stream, accountDecider)).state;
  if (!current.opened) throw new DomainError('unauthorized', 'account not found');
  const existing = current.depositAddresses.get(EVM_FAMILY);
  if (existing) return { address: existing.address, index: existing.index };
  if (deps.xpub === undefined) throw new DomainError('internal', 'deposit addresses are not configured on this server (NEXO_DEPOSIT_XPUB)');

  const at = deps.clock().toISOString();
  const allocated = await deps.runner.handle(depositIndexStream(EVM_FAMILY), depositIndexDecider, { type: 'AllocateDepositIndex', accountId, at });
  const index = allocated.state.byAccount.get(accountId);
  if (index === undefined) throw new Error(`deposit index of ${accountId} missing after allocation`);
  const address = deriveDepositAddress(deps.xpub, index);
  const assigned = await deps.runner.handle(stream, accountDecider, { type: 'AssignDepositAddress', chain: EVM_FAMILY, address, index, at });
  const kept = assigned.state.depositAddresses.get(EVM_FAMILY);
  if (!kept) throw new Error(`deposit address of ${accountId} missing after assignment`);
  return { address: kept.address, index: kept.index };
}
