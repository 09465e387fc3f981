/**
 * The ChainClient port: everything deposit detection needs from an EVM node,
 * and nothing more. Money decisions are taken on what this port returns, so it
 * speaks in plain data (numbers, bigint, hex strings) and typed errors, never
 * in a vendor's objects.
 *
 * Normal forms, relied on by equality checks across the lib:
 * - addresses (token, from, to) are EIP-55 checksummed, as ethers derives them;
 * - hashes (txHash, blockHash) are lower-case 0x hex;
 * - block numbers are JS numbers (2^53 is far beyond any chain's height).
 */

export interface BlockRef {
  number: number;
  hash: string;
}

export interface BlockHeader extends BlockRef {
  parentHash: string;
}

/** One ERC-20 `Transfer` log, normalized. */
export interface Transfer {
  chainId: number;
  token: string;
  from: string;
  to: string;
  /** Token base units (not micro-USD): convert with the token's configured decimals. */
  amount: bigint;
  txHash: string;
  /** Position of the log in its block (not in its transaction): it changes if the transaction is mined again elsewhere. */
  logIndex: number;
  blockNumber: number;
  blockHash: string;
}

export interface TransferQuery {
  /** Inclusive. */
  fromBlock: number;
  /** Inclusive. */
  toBlock: number;
  /** Token contracts whose logs count. */
  tokens: readonly string[];
  /** Recipients whose incoming transfers count (our deposit addresses). */
  to: readonly string[];
}

export interface ChainClient {
  readonly chainId: number;
  /** The newest block number the node knows. */
  head(): Promise<number>;
  /**
   * The newest block that cannot be reorganized: the node's `finalized` block
   * where the chain has one, else head − finality depth. Never above head.
   */
  finalizedHead(): Promise<number>;
  /**
   * Incoming `Transfer` logs of `tokens` to `to` in [fromBlock, toBlock], sorted
   * by (blockNumber, logIndex). Throws RangeTooLargeError when the node refuses
   * the range (or the result size), ChainRpcError on any other failure. Never
   * returns a silently truncated result: a node that is behind `toBlock` fails.
   */
  getTransferLogs(query: TransferQuery): Promise<Transfer[]>;
  /** Hash of block `n` on the node's canonical chain; null if the node has no such block. */
  blockHash(n: number): Promise<string | null>;
  /** Header of block `n`; null if the node has no such block. */
  blockHeader(n: number): Promise<BlockHeader | null>;
  /** `decimals()` of an ERC-20 contract, read on chain. */
  decimals(token: string): Promise<number>;
}

export type ChainErrorCode =
  | 'range_too_large'
  | 'rpc_unavailable'
  | 'node_behind'
  | 'wrong_chain'
  | 'not_a_token'
  | 'bad_response'
  | 'decimals_mismatch'
  | 'deep_reorg'
  | 'invalid_config';

export class ChainError extends Error {
  constructor(
    readonly code: ChainErrorCode,
    message: string,
    /** Whether trying the same thing again later can succeed (an outage) or not (a wrong config). */
    readonly retryable: boolean,
    readonly details: Readonly<Record<string, unknown>> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ChainError';
  }
}

/** The node refused a log query as too large (block span or result size). Split it; retrying it as is cannot help. */
export class RangeTooLargeError extends ChainError {
  constructor(message: string, details: Readonly<Record<string, unknown>> = {}, options?: { cause?: unknown }) {
    super('range_too_large', message, false, details, options);
    this.name = 'RangeTooLargeError';
  }
}

/** The node is unreachable, failing, throttling or behind: try again later, possibly elsewhere. */
export class ChainRpcError extends ChainError {
  constructor(
    message: string,
    code: 'rpc_unavailable' | 'node_behind' | 'bad_response' = 'rpc_unavailable',
    details: Readonly<Record<string, unknown>> = {},
    options?: { cause?: unknown },
  ) {
    super(code, message, true, details, options);
    this.name = 'ChainRpcError';
  }
}

export const isRangeTooLarge = (e: unknown): e is RangeTooLargeError => e instanceof RangeTooLargeError;
export const isRetryableChainError = (e: unknown): boolean => e instanceof ChainError && e.retryable;
