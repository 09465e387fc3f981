/**
 * Events of the `deposit-index-<family>` stream: one per deposit address ever
 * handed out in a chain family (`evm`: every EVM chain shares an address).
 * The stream is the allocator: each allocation is appended with the exact
 * expected revision, so an event's revision is its index and two writers can
 * never both take one index (the loser's append fails and it decides again).
 */
import { z } from 'zod';
import { Id, IsoTime } from './schema.js';

export const DepositIndexAllocated = z.object({
  type: z.literal('DepositIndexAllocated'),
  data: z
    .object({
      accountId: Id,
      /** Equal to the event's revision; kept in the data so a reader needs no stream positions to audit it. */
      index: z.number().int().min(0).max(2 ** 31 - 1),
      at: IsoTime,
    })
    .strict(),
});

export const DepositIndexEvent = z.discriminatedUnion('type', [DepositIndexAllocated]);
export type DepositIndexEvent = z.infer<typeof DepositIndexEvent>;
export const DEPOSIT_INDEX_EVENT_TYPES = DepositIndexEvent.options.map((o) => o.shape.type.value);

/** Chain families: addresses that are valid on every chain of the family share one index space. */
export const CHAIN_FAMILIES = ['evm'] as const;
export type ChainFamily = (typeof CHAIN_FAMILIES)[number];

export const depositIndexStream = (family: ChainFamily): string => `deposit-index-${family}`;
