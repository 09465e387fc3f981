/**
 * What observed deposit transfers mean for the ledger, decided without I/O:
 * which to credit (enough confirmations), which credits to reverse (their
 * block left the canonical chain and the transfer is not on it any more),
 * and which to stop watching (past finality).
 *
 * A transfer mined again after a reorg. The ledger's dedupe key is
 * (chainId, txHash, logIndex) (I4), but logIndex is the log's position in its
 * block, so the same transaction mined in another block usually gets another
 * logIndex. Keyed by that alone, the re-mined log would be credited a second
 * time while the first credit waits for a reversal: twice the money for a
 * while, and a reversal racing the user's spending. So the watch matches
 * transfers by an identity that survives re-mining:
 *   (chainId, txHash, token, to, amount, ordinal)
 * where ordinal counts the equal (token, to, amount) transfers earlier in the
 * same transaction (a batch payout may pay one address twice). A credit whose
 * block is orphaned but whose identity is found on the canonical chain stays
 * as it is (reported as `relocated`, for the audit trail): credited exactly
 * once, under the key it was first credited with. A credit whose transfer is
 * nowhere on the canonical chain read so far is reversed; if the transaction
 * comes back later it is credited again under its new key. The one case the
 * ledger cannot express is a comeback under the very key that was reversed
 * (same logIndex in the new block): I4 refuses a second credit of a key, so
 * the watch reports it as `blocked` for an operator instead of hiding it.
 * After a restart the watch no longer knows what it reversed; the consumer
 * must then treat a CreditDeposit that decides no event as the same case
 * (the ledger holds the key, reversed).
 */
import { z } from 'zod';
import type { BlockRef, Transfer } from './chain-client.port.js';
import type { ScanResult } from './log-scanner.js';

/** What a DepositCredited event recorded: the ledger's key and where the transfer was then. */
export interface CreditRef {
  chainId: number;
  txHash: string;
  logIndex: number;
  blockNumber: number;
  blockHash: string;
}

export interface CreditRecord extends CreditRef {
  reversed: boolean;
}

export interface WatchedDeposit {
  identity: string;
  /** Every place the transfer was seen, oldest first. */
  sightings: Transfer[];
  /** Credits made for it, oldest first; at most one is not reversed. */
  credits: CreditRecord[];
}

/** The chain as the scanner last read it. */
export interface ChainView {
  head: number;
  finalizedHead: number;
  /** Newest block the scanner has read on the current chain. */
  scannedTo: number;
  /** Canonical hashes of read blocks that were not final: the scanner cursor's `recent`. */
  canonical: ReadonlyMap<number, string>;
  /** Blocks the scanner reported as reorged away (`blockKey`), kept while anything refers to them. */
  orphaned: ReadonlySet<string>;
}

export interface DepositPolicy {
  /** The head block counts as one confirmation. */
  confirmations: number;
}

export interface DepositDecisions {
  credit: Array<{ identity: string; transfer: Transfer }>;
  reverse: Array<{ identity: string; credit: CreditRef; reason: string }>;
  /** Credited transfers whose block was orphaned but that are on the canonical chain elsewhere: nothing to do but record. */
  relocated: Array<{ identity: string; credit: CreditRef; now: Transfer }>;
  /** Transfers that should be credited but whose key was credited and reversed before (I4 forbids a second credit). */
  blocked: Array<{ identity: string; transfer: Transfer; reason: string }>;
  /** Identities past finality, whatever their outcome: stop watching them. */
  final: string[];
}

export type BlockStatus = 'canonical' | 'orphaned' | 'unknown';

export const blockKey = (number: number, hash: string): string => `${number}:${hash.toLowerCase()}`;

export function blockStatus(view: ChainView, number: number, hash: string): BlockStatus {
  if (view.orphaned.has(blockKey(number, hash))) return 'orphaned';
  const known = view.canonical.get(number);
  if (known !== undefined) return known === hash.toLowerCase() ? 'canonical' : 'orphaned';
  if (number > view.scannedTo) return 'unknown';
  // Below the scanner's window: the block was final when it left it, and a reorg before then was reported as orphaned.
  return number <= view.finalizedHead ? 'canonical' : 'unknown';
}

/**
 * Identities of a batch of transfers. The batch must hold whole blocks (every
 * scan step does): the ordinal counts equal transfers earlier in the same
 * transaction, which must all be present.
 */
export function withIdentities(batch: readonly Transfer[]): Array<{ identity: string; transfer: Transfer }> {
  const seen = new Map<string, number>();
  const sorted = [...batch].sort((a, b) => a.blockNumber - b.blockNumber || a.logIndex - b.logIndex);
  return sorted.map((t) => {
    const base = `${t.chainId}:${t.txHash.toLowerCase()}:${t.token.toLowerCase()}:${t.to.toLowerCase()}:${t.amount}`;
    const inBlock = `${base}@${t.blockHash.toLowerCase()}`;
    const ordinal = seen.get(inBlock) ?? 0;
    seen.set(inBlock, ordinal + 1);
    return { identity: `${base}:${ordinal}`, transfer: t };
  });
}

export const creditRefOf = (t: Transfer): CreditRef => ({
  chainId: t.chainId,
  txHash: t.txHash,
  logIndex: t.logIndex,
  blockNumber: t.blockNumber,
  blockHash: t.blockHash,
});

/** The ledger's dedupe key (the domain's depositKey). */
const ledgerKey = (c: CreditRef): string => `${c.chainId}:${c.txHash.toLowerCase()}:${c.logIndex}`;

const sameKey = (a: CreditRef, b: CreditRef): boolean =>
  a.chainId === b.chainId && a.txHash.toLowerCase() === b.txHash.toLowerCase() && a.logIndex === b.logIndex;

export function assessDeposits(entries: Iterable<WatchedDeposit>, view: ChainView, policy: DepositPolicy): DepositDecisions {
  const out: DepositDecisions = { credit: [], reverse: [], relocated: [], blocked: [], final: [] };
  for (const e of entries) {
    const canonical = e.sightings.find((s) => blockStatus(view, s.blockNumber, s.blockHash) === 'canonical');
    const record = e.credits.find((c) => !c.reversed);
    if (record) {
      const { reversed: _, ...active } = record;
      const status = blockStatus(view, active.blockNumber, active.blockHash);
      if (status === 'canonical') {
        if (active.blockNumber <= view.finalizedHead) out.final.push(e.identity);
      } else if (status === 'orphaned') {
        if (canonical) {
          out.relocated.push({ identity: e.identity, credit: active, now: canonical });
          if (canonical.blockNumber <= view.finalizedHead) out.final.push(e.identity);
        } else if (view.scannedTo >= active.blockNumber) {
          // The new chain has been read at least up to where the transfer was, and it is not there.
          out.reverse.push({ identity: e.identity, credit: active, reason: `block ${active.blockNumber} ${active.blockHash} left the canonical chain` });
        }
      }
      continue;
    }
    if (canonical) {
      if (view.head - canonical.blockNumber + 1 >= policy.confirmations) {
        const reversedKey = e.credits.find((c) => c.reversed && sameKey(c, canonical));
        if (reversedKey) {
          out.blocked.push({ identity: e.identity, transfer: canonical, reason: 'mined again under a key already credited and reversed' });
          if (canonical.blockNumber <= view.finalizedHead) out.final.push(e.identity);
        } else {
          out.credit.push({ identity: e.identity, transfer: canonical });
        }
      }
      continue;
    }
    // Seen only in orphaned blocks, and those heights are final now: it is gone. A later comeback is a new sighting.
    const gone = e.sightings.every(
      (s) => s.blockNumber <= view.finalizedHead && blockStatus(view, s.blockNumber, s.blockHash) === 'orphaned',
    );
    if (gone) out.final.push(e.identity);
  }
  return out;
}

/**
 * The watch's memory between scan steps: sightings, credits and orphaned
 * blocks. The deposit consumer feeds it each scan step, appends the commands
 * the assessment asks for, tells it what was appended, and forgets what is final.
 */
export class DepositWatch {
  readonly #entries = new Map<string, WatchedDeposit>();
  readonly #orphaned = new Set<string>();
  /**
   * Keys reversed in this process's life, kept after their entries are
   * forgotten: a transaction can come back long after its block was
   * orphaned. Lost on restart, when the ledger's own refusal (a CreditDeposit
   * deciding no event) is what the consumer must report instead.
   */
  readonly #reversedKeys = new Set<string>();

  constructor(readonly policy: DepositPolicy) {}

  get size(): number {
    return this.#entries.size;
  }

  entry(identity: string): WatchedDeposit | undefined {
    return this.#entries.get(identity);
  }

  /** Takes in one scan step: its reorged blocks first (they are older news), then its transfers. */
  observe(step: { transfers: readonly Transfer[]; reorgedBlocks: readonly BlockRef[] }): void {
    for (const b of step.reorgedBlocks) this.#orphaned.add(blockKey(b.number, b.hash));
    for (const { identity, transfer } of withIdentities(step.transfers)) {
      const e = this.#entry(identity);
      const dup = e.sightings.some((s) => s.blockHash === transfer.blockHash && s.logIndex === transfer.logIndex);
      if (!dup) e.sightings.push(transfer);
    }
  }

  /** Records a credit the ledger holds for this identity (after appending it, or when restoring on start-up). */
  credited(identity: string, credit: CreditRef): void {
    const e = this.#entry(identity);
    if (!e.credits.some((c) => sameKey(c, credit))) e.credits.push({ ...credit, reversed: false });
  }

  reversed(identity: string, credit: CreditRef): void {
    this.#reversedKeys.add(ledgerKey(credit));
    const c = this.#entries.get(identity)?.credits.find((x) => sameKey(x, credit));
    if (c) c.reversed = true;
  }

  assess(view: Omit<ChainView, 'orphaned'>): DepositDecisions {
    const d = assessDeposits(this.#entries.values(), { ...view, orphaned: this.#orphaned }, this.policy);
    const comebacks = d.credit.filter((c) => this.#reversedKeys.has(ledgerKey(c.transfer)));
    if (comebacks.length === 0) return d;
    return {
      ...d,
      credit: d.credit.filter((c) => !comebacks.includes(c)),
      blocked: [...d.blocked, ...comebacks.map((c) => ({ ...c, reason: 'mined again under a key already credited and reversed' }))],
      final: [...d.final, ...comebacks.filter((c) => c.transfer.blockNumber <= view.finalizedHead).map((c) => c.identity)],
    };
  }

  /** Stops watching these identities and drops orphan marks nothing refers to any more. */
  forget(identities: Iterable<string>): void {
    for (const id of identities) this.#entries.delete(id);
    const referenced = new Set<string>();
    for (const e of this.#entries.values()) {
      for (const s of e.sightings) referenced.add(blockKey(s.blockNumber, s.blockHash));
      for (const c of e.credits) referenced.add(blockKey(c.blockNumber, c.blockHash));
    }
    for (const k of this.#orphaned) if (!referenced.has(k)) this.#orphaned.delete(k);
  }

  /**
   * Everything the watch remembers, as plain JSON (amounts as digit strings),
   * so a consumer can persist it after each step and resume after a restart
   * with the same decisions it would have taken without one.
   */
  snapshot(): DepositWatchSnapshot {
    const transfer = (t: Transfer) => ({ ...t, amount: t.amount.toString() });
    return {
      v: 1,
      entries: [...this.#entries.values()].map((e) => ({
        identity: e.identity,
        sightings: e.sightings.map(transfer),
        credits: e.credits.map((c) => ({ ...c })),
      })),
      orphaned: [...this.#orphaned],
      reversedKeys: [...this.#reversedKeys],
    };
  }

  /** A watch with a snapshot's memory; the snapshot is validated, as it comes from storage. */
  static restore(policy: DepositPolicy, snapshot: unknown): DepositWatch {
    const s = DepositWatchSnapshotSchema.parse(snapshot);
    const watch = new DepositWatch(policy);
    for (const e of s.entries) {
      watch.#entries.set(e.identity, {
        identity: e.identity,
        sightings: e.sightings.map((t) => ({ ...t, amount: BigInt(t.amount) })),
        credits: e.credits.map((c) => ({ ...c })),
      });
    }
    for (const k of s.orphaned) watch.#orphaned.add(k);
    for (const k of s.reversedKeys) watch.#reversedKeys.add(k);
    return watch;
  }

  #entry(identity: string): WatchedDeposit {
    let e = this.#entries.get(identity);
    if (!e) {
      e = { identity, sightings: [], credits: [] };
      this.#entries.set(identity, e);
    }
    return e;
  }
}

const Hash = z.string().regex(/^0x[0-9a-f]{64}$/);
const Addr = z.string().regex(/^0x[0-9a-fA-F]{40}$/);
const BlockNo = z.number().int().min(0);
const CreditRecordSchema = z
  .object({ chainId: z.number().int().positive(), txHash: Hash, logIndex: BlockNo, blockNumber: BlockNo, blockHash: Hash, reversed: z.boolean() })
  .strict();
const TransferSnapshotSchema = z
  .object({
    chainId: z.number().int().positive(),
    token: Addr,
    from: Addr,
    to: Addr,
    amount: z.string().regex(/^\d+$/),
    txHash: Hash,
    logIndex: BlockNo,
    blockNumber: BlockNo,
    blockHash: Hash,
  })
  .strict();

export const DepositWatchSnapshotSchema = z
  .object({
    v: z.literal(1),
    entries: z.array(z.object({ identity: z.string().min(1), sightings: z.array(TransferSnapshotSchema), credits: z.array(CreditRecordSchema) }).strict()),
    orphaned: z.array(z.string()),
    reversedKeys: z.array(z.string()),
  })
  .strict();

export type DepositWatchSnapshot = z.infer<typeof DepositWatchSnapshotSchema>;

/** The view a scan step leaves behind, for `DepositWatch.assess`. */
export function chainViewOf(step: Pick<ScanResult, 'head' | 'finalizedHead' | 'newCursor'>): Omit<ChainView, 'orphaned'> {
  return {
    head: step.head,
    finalizedHead: step.finalizedHead,
    scannedTo: step.newCursor.nextBlock - 1,
    canonical: new Map(step.newCursor.recent.map((b) => [b.number, b.hash])),
  };
}
