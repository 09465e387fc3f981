/**
 * An in-memory EVM chain behind the ChainClient port: blocks linked by hash,
 * transfers with block-wide log indexes, reorgs, outages and a log-range limit
 * on demand. It runs with no server, for the scanner's and the watch's
 * property tests and for dev wiring; the ganache tests cover the real node.
 */
import { getAddress, id } from 'ethers';
import {
  type BlockHeader,
  type ChainClient,
  ChainError,
  ChainRpcError,
  RangeTooLargeError,
  type Transfer,
  type TransferQuery,
} from '../chain-client.port.js';

export interface MemoryTransfer {
  token: string;
  from: string;
  to: string;
  amount: bigint;
  /** Reuse a hash to model a transaction mined again after a reorg; fresh otherwise. */
  txHash?: string;
}

interface MemoryBlock {
  header: BlockHeader;
  transfers: Transfer[];
}

export interface InMemoryChainOptions {
  chainId?: number;
  finalityDepth?: number;
  /** Refuse eth_getLogs spanning more blocks than this, as hosted RPCs do. */
  maxLogRange?: number;
  /** Refuse eth_getLogs returning more logs than this ("query returned more than 10000 results"). */
  maxResults?: number;
}

export class InMemoryChain implements ChainClient {
  readonly chainId: number;
  finalityDepth: number;
  maxLogRange: number | undefined;
  maxResults: number | undefined;
  /** While true every call fails as an unreachable node would. */
  down = false;
  /** Blocks the node pretends not to have yet, as a lagging replica. */
  lag = 0;
  /** Runs inside eth_getLogs before it answers: lets a test change the chain in the middle of a scan. */
  beforeGetLogs: (() => void) | undefined;
  readonly calls = new Map<string, number>();
  readonly #blocks: MemoryBlock[] = [];
  readonly #decimals = new Map<string, number>();
  #salt = 0;
  #txCounter = 0;

  constructor(options: InMemoryChainOptions = {}) {
    this.chainId = options.chainId ?? 1337;
    this.finalityDepth = options.finalityDepth ?? 12;
    this.maxLogRange = options.maxLogRange;
    this.maxResults = options.maxResults;
    this.#append([]);
  }

  setDecimals(token: string, decimals: number): void {
    this.#decimals.set(getAddress(token), decimals);
  }

  /** Mines one block holding these transfers, in order; returns it. */
  mine(transfers: readonly MemoryTransfer[] = []): BlockHeader {
    return this.#append(transfers);
  }

  mineEmpty(count: number): void {
    for (let i = 0; i < count; i++) this.#append([]);
  }

  /** Drops the newest `depth` blocks and mines `replacement` in their place (each entry one block). */
  reorg(depth: number, replacement: ReadonlyArray<readonly MemoryTransfer[]>): void {
    if (depth < 1 || depth >= this.#blocks.length) throw new RangeError(`cannot reorg ${depth} blocks of ${this.#blocks.length}`);
    this.#blocks.length -= depth;
    for (const transfers of replacement) this.#append(transfers);
  }

  /** Every transfer on the canonical chain, in chain order. */
  canonicalTransfers(): Transfer[] {
    return this.#blocks.flatMap((b) => b.transfers);
  }

  get height(): number {
    return this.#blocks.length - 1;
  }

  get #visible(): number {
    return Math.max(0, this.height - this.lag);
  }

  async head(): Promise<number> {
    this.#enter('head');
    return this.#visible;
  }

  async finalizedHead(): Promise<number> {
    this.#enter('finalizedHead');
    return Math.max(0, this.#visible - this.finalityDepth);
  }

  async getTransferLogs(q: TransferQuery): Promise<Transfer[]> {
    this.#enter('getTransferLogs');
    this.beforeGetLogs?.();
    if (q.toBlock > this.#visible) throw new ChainRpcError(`node is at ${this.#visible}, behind ${q.toBlock}`, 'node_behind');
    if (this.maxLogRange !== undefined && q.toBlock - q.fromBlock + 1 > this.maxLogRange) {
      throw new RangeTooLargeError(`block range too large: limit ${this.maxLogRange}`);
    }
    const tokens = new Set(q.tokens.map((t) => getAddress(t)));
    const to = new Set(q.to.map((a) => getAddress(a)));
    const out: Transfer[] = [];
    for (let n = Math.max(0, q.fromBlock); n <= q.toBlock; n++) {
      for (const t of this.#blocks[n]!.transfers) if (tokens.has(t.token) && to.has(t.to)) out.push({ ...t });
    }
    if (this.maxResults !== undefined && out.length > this.maxResults) throw new RangeTooLargeError(`query returned more than ${this.maxResults} results`);
    return out;
  }

  async blockHash(n: number): Promise<string | null> {
    return (await this.blockHeader(n))?.hash ?? null;
  }

  async blockHeader(n: number): Promise<BlockHeader | null> {
    this.#enter('blockHeader');
    const b = n <= this.#visible ? this.#blocks[n] : undefined;
    return b ? { ...b.header } : null;
  }

  async decimals(token: string): Promise<number> {
    this.#enter('decimals');
    const d = this.#decimals.get(getAddress(token));
    if (d === undefined) throw new ChainError('not_a_token', `no token at ${token}`, false, { token });
    return d;
  }

  #enter(op: string): void {
    this.calls.set(op, (this.calls.get(op) ?? 0) + 1);
    if (this.down) throw new ChainRpcError(`${op} failed: connection refused`);
  }

  #append(transfers: readonly MemoryTransfer[]): BlockHeader {
    const number = this.#blocks.length;
    const parentHash = number === 0 ? '0x' + '0'.repeat(64) : this.#blocks[number - 1]!.header.hash;
    // A fresh salt per block makes every fork's blocks differ, as real ones do.
    const hash = id(`block:${parentHash}:${number}:${this.#salt++}`);
    const header = { number, hash, parentHash };
    const block: MemoryBlock = {
      header,
      transfers: transfers.map((t, logIndex) => ({
        chainId: this.chainId,
        token: getAddress(t.token),
        from: getAddress(t.from),
        to: getAddress(t.to),
        amount: t.amount,
        txHash: (t.txHash ?? id(`tx:${this.#txCounter++}`)).toLowerCase(),
        logIndex,
        blockNumber: number,
        blockHash: hash,
      })),
    };
    this.#blocks.push(block);
    return { ...header };
  }
}
