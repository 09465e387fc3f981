/**
 * The deposit index allocator. Indexes are dense and never reused: index n is
 * the (n+1)-th event of the stream, so the expected-revision append is what
 * makes them unique across processes. An account asking again gets its first
 * index back and nothing is appended, so a request that crashed between
 * allocating and assigning the address does not burn an index on retry.
 */
import type { Decider } from './decider.js';
import { DomainError } from './errors.js';
import type { DepositIndexEvent } from './deposit-index.events.js';

export type DepositIndexCommand = { type: 'AllocateDepositIndex'; accountId: string; at: string };

export interface DepositIndexState {
  /** The index the next allocation takes: the number of events so far. */
  next: number;
  byAccount: Map<string, number>;
}

/** Non-hardened BIP-32 children only: an xpub cannot derive hardened ones. */
const MAX_INDEX = 2 ** 31 - 1;

export function initialDepositIndexState(): DepositIndexState {
  return { next: 0, byAccount: new Map() };
}

export function decideDepositIndex(cmd: DepositIndexCommand, state: DepositIndexState): DepositIndexEvent[] {
  if (state.byAccount.has(cmd.accountId)) return [];
  if (state.next > MAX_INDEX) throw new DomainError('invalid_command', 'deposit index space is exhausted');
  return [{ type: 'DepositIndexAllocated', data: { accountId: cmd.accountId, index: state.next, at: cmd.at } }];
}

export function evolveDepositIndex(state: DepositIndexState, event: DepositIndexEvent): DepositIndexState {
  // The first allocation of an account wins; a later one (from a writer that did not see it) is never read.
  if (!state.byAccount.has(event.data.accountId)) state.byAccount.set(event.data.accountId, event.data.index);
  state.next = event.data.index + 1;
  return state;
}

export const depositIndexDecider: Decider<DepositIndexCommand, DepositIndexEvent, DepositIndexState> = {
  decide: decideDepositIndex,
  evolve: evolveDepositIndex,
  initialState: initialDepositIndexState,
};
