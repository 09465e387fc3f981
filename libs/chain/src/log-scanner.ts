/**
 * The deposit scanner's core: reads incoming Transfer logs over block ranges
 * from a cursor, and notices reorgs of what it already read. I/O only through
 * the ChainClient port; the cursor is plain data the caller persists after it
 * has published the transfers of a step (at-least-once: a crash between the
 * two re-reads the step, and consumers dedupe on (chainId, txHash, logIndex)).
 *
 * Guarantees of one step, given a cursor the scanner returned:
 * - every block in [cursor.nextBlock, newCursor.nextBlock) was read on one
 *   chain, consistent with the hashes kept in the cursor: no gap, no block
 *   read twice unless a reorg rewound the cursor;
 * - after a reorg, `reorgedBlocks` lists every block the cursor held that is
 *   no longer canonical, and the cursor resumes right after the fork point;
 * - a failure (throw) leaves the caller's cursor as it was.
 *
 * Reorg detection needs the hashes of read blocks that can still change: the
 * cursor keeps them for every read block above the finalized head (at most
 * `reorgWindow`), and fetched headers are checked to link parent to child, so
 * the kept hashes always describe one chain. Because a block hash commits to
 * its ancestors, comparing the newest kept hash detects any reorg below it,
 * and a binary search over the kept ones finds the fork point.
 */
import { z } from 'zod';
import {
  type BlockHeader,
  type BlockRef,
  type ChainClient,
  ChainError,
  RangeTooLargeError,
  type Transfer,
  isRangeTooLarge,
} from './chain-client.port.js';

export interface ScanCursor {
  /** First block not read yet. */
  nextBlock: number;
  /** Hashes of the newest read blocks that were not final when read: oldest first, contiguous, ending at nextBlock − 1. */
  recent: BlockRef[];
}

const Hash = z.string().regex(/^0x[0-9a-f]{64}$/);

/** A persisted cursor is an edge: validate it when loading. */
export const ScanCursorSchema = z
  .object({
    nextBlock: z.number().int().min(0),
    recent: z.array(z.object({ number: z.number().int().min(0), hash: Hash }).strict()),
  })
  .strict()
  .refine(
    (c) =>
      c.recent.every((b, i) => i === 0 || b.number === c.recent[i - 1]!.number + 1) &&
      (c.recent.length === 0 || c.recent[c.recent.length - 1]!.number === c.nextBlock - 1),
    { message: 'recent blocks must be contiguous and end at nextBlock - 1' },
  );

export const startCursor = (startBlock: number): ScanCursor => ({ nextBlock: startBlock, recent: [] });

export interface LogScannerOptions {
  tokens: readonly string[];
  /** Largest eth_getLogs span tried; the scanner halves it while the node refuses. */
  maxBlockRange: number;
  /** Read only blocks with at least this many confirmations (the head block has 1). Default 1. */
  confirmations?: number;
  /** Most blocks one step reads, so the caller publishes and persists regularly. Default maxBlockRange. */
  maxBlocksPerStep?: number;
  /** Most block hashes the cursor keeps; a reorg deeper than this above the finalized head stops the scanner. Default 256. */
  reorgWindow?: number;
  /** Parallel header requests when recording hashes. Default 8. */
  headerConcurrency?: number;
}

export interface ScanResult {
  /** Incoming transfers in the blocks read, by (blockNumber, logIndex). Whole blocks only. */
  transfers: Transfer[];
  newCursor: ScanCursor;
  /** Blocks the cursor held that are no longer canonical, oldest first: what was reported from them is void. */
  reorgedBlocks: BlockRef[];
  head: number;
  finalizedHead: number;
  /** Newest block this step was allowed to read. */
  safeHead: number;
  /** Nothing is left to read until the chain grows. */
  caughtUp: boolean;
  /** The chain changed while reading: the range was dropped and should be read again at once. */
  interrupted: boolean;
}

/** Successful reads before the span is allowed to grow again after a refusal. */
const GROW_AFTER = 16;
/** Successful reads after which a refused span may be tried again (limits on result size move with log density). */
const FORGET_REFUSAL_AFTER = 256;

export class LogScanner {
  readonly #client: ChainClient;
  readonly #tokens: readonly string[];
  readonly #maxRange: number;
  readonly #confirmations: number;
  readonly #stepBlocks: number;
  readonly #window: number;
  readonly #concurrency: number;
  /** The span the node accepts, learned from refusals; lost on restart, which costs one refusal. */
  #range: number;
  #successes = 0;
  /** Smallest span refused lately: growth stays below it, so a learned limit is not probed every GROW_AFTER reads. */
  #refused: number | undefined;
  #sinceRefusal = 0;

  constructor(client: ChainClient, options: LogScannerOptions) {
    const { maxBlockRange, confirmations = 1, reorgWindow = 256 } = options;
    if (!Number.isInteger(maxBlockRange) || maxBlockRange < 1) throw new RangeError('maxBlockRange must be a positive integer');
    if (!Number.isInteger(confirmations) || confirmations < 1) throw new RangeError('confirmations must be ≥ 1');
    if (reorgWindow < confirmations) throw new RangeError('reorgWindow must cover the confirmations');
    this.#client = client;
    this.#tokens = [...options.tokens];
    this.#maxRange = maxBlockRange;
    this.#confirmations = confirmations;
    this.#stepBlocks = options.maxBlocksPerStep ?? maxBlockRange;
    this.#window = reorgWindow;
    this.#concurrency = options.headerConcurrency ?? 8;
    this.#range = maxBlockRange;
  }

  /** The eth_getLogs span currently used (smaller than maxBlockRange after refusals). */
  get currentRange(): number {
    return this.#range;
  }

  async step(cursor: ScanCursor, addresses: readonly string[]): Promise<ScanResult> {
    const head = await this.#client.head();
    const finalizedHead = Math.min(head, await this.#client.finalizedHead());
    const safeHead = head - this.#confirmations + 1;
    const { cursor: current, reorged } = await this.#reconcile(cursor, head, finalizedHead);
    const result = (transfers: Transfer[], newCursor: ScanCursor, interrupted = false): ScanResult => ({
      transfers,
      newCursor: { nextBlock: newCursor.nextBlock, recent: this.#prune(newCursor.recent, finalizedHead) },
      reorgedBlocks: reorged,
      head,
      finalizedHead,
      safeHead,
      caughtUp: !interrupted && newCursor.nextBlock > safeHead,
      interrupted,
    });

    const from = current.nextBlock;
    if (from > safeHead) return result([], current);
    const to = Math.min(safeHead, from + this.#stepBlocks - 1);

    // Hashes first, logs second, the tip hash again last: logs read between two equal sightings of a linked chain are of that chain.
    const firstTracked = Math.max(from, finalizedHead + 1, to - this.#window + 1);
    const headers = firstTracked <= to ? await this.#headers(firstTracked, to) : [];
    if (!this.#linked(headers, current.recent)) return result([], current, true);

    const transfers = await this.#read(from, to, addresses);

    if (headers.length > 0) {
      const byNumber = new Map(headers.map((h) => [h.number, h.hash]));
      const stale = transfers.some((t) => t.blockNumber >= firstTracked && byNumber.get(t.blockNumber) !== t.blockHash);
      if (stale || (await this.#client.blockHash(to)) !== byNumber.get(to)) return result([], current, true);
    }
    const recent = [...current.recent, ...headers.map(({ number, hash }) => ({ number, hash }))];
    return result(transfers, { nextBlock: to + 1, recent });
  }

  /** Compares the kept hashes with the chain; rewinds to the fork point if they differ. */
  async #reconcile(cursor: ScanCursor, head: number, finalizedHead: number): Promise<{ cursor: ScanCursor; reorged: BlockRef[] }> {
    const recent = cursor.recent;
    const unchanged = { cursor: { nextBlock: cursor.nextBlock, recent: [...recent] }, reorged: [] };
    if (recent.length === 0) return unchanged;
    // A node behind our tip (a failover, a slow replica) is not a reorg: compare only what it has.
    const probe = Math.min(head, recent[recent.length - 1]!.number);
    const last = recent.findIndex((b) => b.number === probe);
    if (last < 0) return unchanged;
    if ((await this.#client.blockHash(probe)) === recent[last]!.hash) return unchanged;

    // Entries [0, lo) are canonical, entry `hi` is not: the kept hashes form one chain, so canonicity is a prefix.
    let lo = 0;
    let hi = last;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((await this.#client.blockHash(recent[mid]!.number)) === recent[mid]!.hash) lo = mid + 1;
      else hi = mid;
    }
    // Below a window that was never full lies a block that was final when its hash was dropped (or our start block):
    // the fork cannot be deeper. A full window may have dropped unfinalized hashes, and then the fork point is unknown.
    if (lo === 0 && recent.length >= this.#window && recent[0]!.number - 1 > finalizedHead) {
      throw new ChainError(
        'deep_reorg',
        `reorg below block ${recent[0]!.number}, deeper than the ${recent.length} kept hashes and above the finalized head ${finalizedHead}`,
        false,
        { oldestKept: recent[0]!.number, finalizedHead },
      );
    }
    const reorged = recent.slice(lo);
    return { cursor: { nextBlock: reorged[0]!.number, recent: recent.slice(0, lo) }, reorged };
  }

  async #headers(from: number, to: number): Promise<(BlockHeader | null)[]> {
    const out: (BlockHeader | null)[] = new Array(to - from + 1);
    let next = from;
    const worker = async (): Promise<void> => {
      while (next <= to) {
        const n = next++;
        out[n - from] = await this.#client.blockHeader(n);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, to - from + 1) }, worker));
    return out;
  }

  /** Headers all present, each the child of the one before, the first the child of the newest kept hash. */
  #linked(headers: ReadonlyArray<BlockHeader | null>, recent: readonly BlockRef[]): headers is BlockHeader[] {
    for (let i = 0; i < headers.length; i++) {
      const h = headers[i];
      if (!h) return false;
      const parent = i > 0 ? headers[i - 1]!.hash : recent.find((b) => b.number === h.number - 1)?.hash;
      if (parent !== undefined && h.parentHash !== parent) return false;
    }
    return true;
  }

  /** Reads [from, to] in spans the node accepts, halving on refusal down to one block, then splitting the addresses. */
  async #read(from: number, to: number, addresses: readonly string[]): Promise<Transfer[]> {
    if (addresses.length === 0 || this.#tokens.length === 0) return [];
    const out: Transfer[] = [];
    let start = from;
    while (start <= to) {
      const end = Math.min(to, start + this.#range - 1);
      try {
        out.push(...(await this.#client.getTransferLogs({ fromBlock: start, toBlock: end, tokens: this.#tokens, to: addresses })));
        start = end + 1;
        if (++this.#sinceRefusal >= FORGET_REFUSAL_AFTER) this.#refused = undefined;
        if (++this.#successes >= GROW_AFTER && this.#range < this.#maxRange) {
          this.#range = Math.max(this.#range, Math.min(this.#maxRange, this.#range * 2, (this.#refused ?? Infinity) - 1));
          this.#successes = 0;
        }
      } catch (e) {
        if (!isRangeTooLarge(e)) throw e;
        this.#successes = 0;
        this.#sinceRefusal = 0;
        this.#refused = Math.min(this.#refused ?? Infinity, end - start + 1);
        if (end > start) {
          this.#range = Math.max(1, Math.ceil((end - start + 1) / 2));
          continue;
        }
        out.push(...(await this.#readSplittingAddresses(start, addresses)));
        start = end + 1;
      }
    }
    return out;
  }

  async #readSplittingAddresses(block: number, addresses: readonly string[]): Promise<Transfer[]> {
    try {
      return await this.#client.getTransferLogs({ fromBlock: block, toBlock: block, tokens: this.#tokens, to: addresses });
    } catch (e) {
      if (!isRangeTooLarge(e)) throw e;
      if (addresses.length <= 1) {
        throw new RangeTooLargeError(`node refuses the logs of block ${block} even for one address`, { block }, { cause: e });
      }
      const half = Math.ceil(addresses.length / 2);
      const parts = [
        ...(await this.#readSplittingAddresses(block, addresses.slice(0, half))),
        ...(await this.#readSplittingAddresses(block, addresses.slice(half))),
      ];
      return parts.sort((a, b) => a.logIndex - b.logIndex);
    }
  }

  /** Keeps the hashes of blocks that can still change, at most the window's worth. */
  #prune(recent: readonly BlockRef[], finalizedHead: number): BlockRef[] {
    const open = recent.filter((b) => b.number > finalizedHead);
    return open.length > this.#window ? open.slice(open.length - this.#window) : open;
  }
}
