/**
 * The messages on `nexo.chain.transfers`: one scan step of one chain, with
 * the transfers it read and the chain as it was read (head, finalized head,
 * the canonical hashes the scanner keeps, the blocks a reorg removed).
 *
 * Keyed by chain, not by address: whether a credited transfer must be
 * reversed depends on blocks and hashes, which name no address, and a watch
 * fed steps out of order (as different partitions would deliver them) could
 * credit from a stale view. One key per chain keeps a chain's steps in order.
 *
 * A step with many transfers is split into parts of whole blocks, so a
 * message stays well under Kafka's 1 MB default; the consumer assesses only
 * after the last part, when it has seen the whole step.
 */
import { z } from 'zod';
import type { BlockRef, ScanResult, Transfer } from '#chain';

const Hash = z.string().regex(/^0x[0-9a-f]{64}$/);
const Addr = z.string().regex(/^0x[0-9a-fA-F]{40}$/);
const Block = z.number().int().min(0);
const BlockRefSchema = z.object({ number: Block, hash: Hash }).strict();

const TransferWire = z
  .object({
    chainId: z.number().int().positive(),
    token: Addr,
    from: Addr,
    to: Addr,
    amount: z.string().regex(/^\d{1,80}$/),
    txHash: Hash,
    logIndex: Block,
    blockNumber: Block,
    blockHash: Hash,
  })
  .strict();

export const ChainStepMessage = z
  .object({
    v: z.literal(1),
    chainId: z.number().int().positive(),
    head: Block,
    finalizedHead: Block,
    /** Newest block read on the current chain (the cursor's nextBlock − 1). */
    scannedTo: z.number().int().min(-1),
    /** Hashes of the read blocks that are not final yet: the scanner cursor's `recent`. */
    canonical: z.array(BlockRefSchema),
    reorgedBlocks: z.array(BlockRefSchema),
    transfers: z.array(TransferWire),
    part: z.number().int().min(1),
    parts: z.number().int().min(1),
  })
  .strict()
  .refine((m) => m.part <= m.parts, { message: 'part beyond parts' });

export type ChainStepMessage = z.infer<typeof ChainStepMessage>;

export const chainMessageKey = (chainId: number): string => `chain-${chainId}`;

/** Most transfers per part; a single block with more still goes whole (identities need whole blocks). */
export const MAX_TRANSFERS_PER_MESSAGE = 1000;

export function stepMessages(chainId: number, step: ScanResult, maxTransfers = MAX_TRANSFERS_PER_MESSAGE): ChainStepMessage[] {
  const groups: Transfer[][] = [];
  let current: Transfer[] = [];
  for (let i = 0; i < step.transfers.length; ) {
    const block = step.transfers[i]!.blockNumber;
    let j = i;
    while (j < step.transfers.length && step.transfers[j]!.blockNumber === block) j++;
    if (current.length > 0 && current.length + (j - i) > maxTransfers) {
      groups.push(current);
      current = [];
    }
    current.push(...step.transfers.slice(i, j));
    i = j;
  }
  groups.push(current);
  const view = {
    v: 1 as const,
    chainId,
    head: step.head,
    finalizedHead: step.finalizedHead,
    scannedTo: step.newCursor.nextBlock - 1,
    canonical: step.newCursor.recent.map((b) => ({ number: b.number, hash: b.hash })),
  };
  return groups.map((transfers, i) => ({
    ...view,
    reorgedBlocks: i === 0 ? step.reorgedBlocks.map((b) => ({ number: b.number, hash: b.hash })) : [],
    transfers: transfers.map((t) => ({ ...t, amount: t.amount.toString() })),
    part: i + 1,
    parts: groups.length,
  }));
}

export function transfersOf(m: ChainStepMessage): Transfer[] {
  return m.transfers.map((t) => ({ ...t, amount: BigInt(t.amount) }));
}

export function reorgedOf(m: ChainStepMessage): BlockRef[] {
  return m.reorgedBlocks;
}
