/**
 * ChainClient on ethers v6 JSON-RPC, tuned for correctness over convenience:
 * - `staticNetwork`: no network detection, which otherwise retries forever
 *   against a dead URL; the chain id is checked once per URL instead.
 * - `batchMaxCount: 1`: some RPCs refuse batches, and a batch mixes the fate
 *   of unrelated calls.
 * - `cacheTimeout: -1`: the provider would otherwise answer a repeated call
 *   (head, block by number) from a 250 ms cache, hiding a reorg from the
 *   consistency checks of the scanner.
 * Raw `send` is used throughout: logs are normalized here, once, and ethers'
 * own Log objects would only add allocation on the hot path. For the same
 * reason the HTTP transport is Node's fetch: ethers decodes response bodies
 * with a JavaScript UTF-8 decoder, ~100x slower than the native one, which
 * dominated reading a 2,000-block range of deposits (several MB of JSON).
 *
 * Several RPC URLs give failover, not quorum: calls stick to one node and move
 * to the next only when it fails. Each operation runs on a single node, so a
 * log query and the "is the node past toBlock" check see the same chain.
 */
import { JsonRpcProvider, type JsonRpcPayload, type JsonRpcResult, Network, getAddress, id, toQuantity, zeroPadValue } from 'ethers';
import {
  type BlockHeader,
  type ChainClient,
  ChainError,
  ChainRpcError,
  RangeTooLargeError,
  type Transfer,
  type TransferQuery,
} from '../chain-client.port.js';
import type { ChainConfig } from '../chain.config.js';

export const TRANSFER_TOPIC = id('Transfer(address,address,uint256)');
const DECIMALS_SELECTOR = id('decimals()').slice(0, 10);

export interface EthersChainClientOptions {
  chainId: number;
  rpcUrls: readonly string[];
  /** Ask the node for its `finalized` block; finalityDepth is then only the fallback for nodes without the tag. */
  useFinalizedTag: boolean;
  finalityDepth: number;
  /** Per request. ethers' default is 5 minutes, far too long to notice an outage. */
  requestTimeoutMs?: number;
  /** Deposit addresses per eth_getLogs: providers cap the OR-list in a topic. */
  addressChunkSize?: number;
}

/**
 * Messages nodes and providers use to refuse a log query for its size: Infura
 * "query returned more than 10000 results", Alchemy "Log response size exceeded",
 * geth/BSC "exceed maximum block range: 5000", QuickNode "limited to a 10,000
 * range", Ankr "block range is too wide". Throttling shares -32005 with some of
 * these, so rate-limit wording is excluded explicitly.
 */
const RANGE_REFUSAL =
  /block range|range (is )?too (large|wide|big)|too (many|large) (blocks|a range|results|logs)|returned more than|more than \d+ (results|logs)|response size|exceed(s|ed)? (the )?max(imum)? (block )?range|limited to (a )?[\d,]+|range limit|limit exceeded|query timeout/i;
const THROTTLING = /rate|per second|too many requests|capacity|credits/i;

interface RawLog {
  address: string;
  topics: string[];
  data: string;
  blockNumber: string;
  blockHash: string;
  transactionHash: string;
  logIndex: string;
  removed?: boolean;
}

interface RawBlock {
  number: string;
  hash: string;
  parentHash: string;
}

export class EthersChainClient implements ChainClient {
  readonly chainId: number;
  readonly #providers: JsonRpcProvider[];
  readonly #urls: readonly string[];
  readonly #verified: boolean[];
  readonly #opts: Required<EthersChainClientOptions>;
  #current = 0;
  /** EIP-55 forms of addresses seen in topics; deposit addresses and tokens repeat on every log. */
  readonly #checksums = new Map<string, string>();

  constructor(options: EthersChainClientOptions) {
    if (options.rpcUrls.length === 0) throw new ChainError('invalid_config', 'at least one RPC URL is needed', false);
    this.#opts = { requestTimeoutMs: 10_000, addressChunkSize: 500, ...options };
    this.chainId = options.chainId;
    this.#urls = options.rpcUrls;
    const network = Network.from(options.chainId);
    this.#providers = options.rpcUrls.map((url) => new FetchJsonRpcProvider(url, network, this.#opts.requestTimeoutMs));
    this.#verified = options.rpcUrls.map(() => false);
  }

  async head(): Promise<number> {
    return this.#withNode('eth_blockNumber', async (p) => quantity(await p.send('eth_blockNumber', []), 'block number'));
  }

  async finalizedHead(): Promise<number> {
    return this.#withNode('finalizedHead', async (p) => {
      const head = quantity(await p.send('eth_blockNumber', []), 'block number');
      if (this.#opts.useFinalizedTag) {
        try {
          const block = (await p.send('eth_getBlockByNumber', ['finalized', false])) as RawBlock | null;
          if (block) return Math.min(head, quantity(block.number, 'finalized block number'));
        } catch (e) {
          // Only a node that answers and does not know the tag falls back; an outage must stay an outage.
          if (!isRpcResponseError(e)) throw e;
        }
      }
      return Math.max(0, head - this.#opts.finalityDepth);
    });
  }

  async getTransferLogs(query: TransferQuery): Promise<Transfer[]> {
    const { fromBlock, toBlock, tokens, to } = query;
    if (fromBlock > toBlock || tokens.length === 0 || to.length === 0) return [];
    const topic2 = to.map((a) => zeroPadValue(a.toLowerCase(), 32));
    const chunks: string[][] = [];
    for (let i = 0; i < topic2.length; i += this.#opts.addressChunkSize) chunks.push(topic2.slice(i, i + this.#opts.addressChunkSize));
    return this.#withNode('eth_getLogs', async (p) => {
      // eth_getLogs past the node's head is clamped by geth, silently: a lagging node would make a gap.
      const nodeHead = quantity(await p.send('eth_blockNumber', []), 'block number');
      if (nodeHead < toBlock) throw new ChainRpcError(`node is at block ${nodeHead}, behind ${toBlock}`, 'node_behind', { nodeHead, toBlock });
      const out: Transfer[] = [];
      for (const chunk of chunks) {
        const logs = (await p.send('eth_getLogs', [
          { fromBlock: toQuantity(fromBlock), toBlock: toQuantity(toBlock), address: [...tokens], topics: [TRANSFER_TOPIC, null, chunk] },
        ])) as RawLog[];
        if (!Array.isArray(logs)) throw new ChainRpcError('eth_getLogs returned no array', 'bad_response');
        for (const log of logs) {
          const t = this.#toTransfer(log);
          if (t) out.push(t);
        }
      }
      if (chunks.length > 1) out.sort((a, b) => a.blockNumber - b.blockNumber || a.logIndex - b.logIndex);
      return out;
    });
  }

  async blockHash(n: number): Promise<string | null> {
    return (await this.blockHeader(n))?.hash ?? null;
  }

  async blockHeader(n: number): Promise<BlockHeader | null> {
    return this.#withNode('eth_getBlockByNumber', async (p) => {
      const block = (await p.send('eth_getBlockByNumber', [toQuantity(n), false])) as RawBlock | null;
      if (!block) return null;
      return { number: quantity(block.number, 'block number'), hash: block.hash.toLowerCase(), parentHash: block.parentHash.toLowerCase() };
    });
  }

  async decimals(token: string): Promise<number> {
    return this.#withNode('eth_call', async (p) => {
      let result: string;
      try {
        result = (await p.send('eth_call', [{ to: token, data: DECIMALS_SELECTOR }, 'latest'])) as string;
      } catch (e) {
        if (isRpcResponseError(e)) throw new ChainError('not_a_token', `decimals() failed on ${token}`, false, { token }, { cause: e });
        throw e;
      }
      if (typeof result !== 'string' || result.length < 66) {
        throw new ChainError('not_a_token', `no ERC-20 decimals() at ${token} on chain ${this.chainId}`, false, { token });
      }
      const value = BigInt(result.slice(0, 66));
      if (value > 255n) throw new ChainError('not_a_token', `decimals() of ${token} is not a uint8: ${value}`, false, { token });
      return Number(value);
    });
  }

  /** Frees the HTTP agents; the client is unusable afterwards. */
  close(): void {
    for (const p of this.#providers) p.destroy();
  }

  async #withNode<T>(op: string, fn: (p: JsonRpcProvider) => Promise<T>): Promise<T> {
    let last: ChainError | undefined;
    for (let attempt = 0; attempt < this.#providers.length; attempt++) {
      const i = (this.#current + attempt) % this.#providers.length;
      const provider = this.#providers[i]!;
      try {
        await this.#verifyChainId(i);
        const result = await fn(provider);
        this.#current = i;
        return result;
      } catch (e) {
        const err = translateError(e, op, this.#urls[i]!);
        if (!err.retryable) throw err;
        last = err;
      }
    }
    throw last!;
  }

  async #verifyChainId(i: number): Promise<void> {
    if (this.#verified[i]) return;
    const onNode = quantity(await this.#providers[i]!.send('eth_chainId', []), 'chain id');
    if (onNode !== this.chainId) {
      // A URL pointing at another chain (a testnet, say) would credit deposits that never happened here.
      throw new ChainError('wrong_chain', `RPC ${redact(this.#urls[i]!)} serves chain ${onNode}, configured for ${this.chainId}`, false, {
        expected: this.chainId,
        actual: onNode,
      });
    }
    this.#verified[i] = true;
  }

  #toTransfer(log: RawLog): Transfer | undefined {
    // ERC-721 shares the Transfer signature with a 4th (tokenId) topic; a removed log is from a dropped block.
    if (log.removed || log.topics.length !== 3 || log.data.length !== 66) return undefined;
    if (log.topics[0]!.toLowerCase() !== TRANSFER_TOPIC) return undefined;
    return {
      chainId: this.chainId,
      token: this.#checksum(log.address),
      from: this.#checksum('0x' + log.topics[1]!.slice(26)),
      to: this.#checksum('0x' + log.topics[2]!.slice(26)),
      amount: BigInt(log.data),
      txHash: log.transactionHash.toLowerCase(),
      logIndex: quantity(log.logIndex, 'log index'),
      blockNumber: quantity(log.blockNumber, 'block number'),
      blockHash: log.blockHash.toLowerCase(),
    };
  }

  #checksum(address: string): string {
    const key = address.toLowerCase();
    let sum = this.#checksums.get(key);
    if (sum === undefined) {
      if (this.#checksums.size > 100_000) this.#checksums.clear();
      sum = getAddress(key);
      this.#checksums.set(key, sum);
    }
    return sum;
  }
}

/** JsonRpcProvider whose transport is Node's fetch (native body decoding, keep-alive). */
class FetchJsonRpcProvider extends JsonRpcProvider {
  readonly #url: string;
  readonly #headers: Record<string, string> = { 'content-type': 'application/json' };
  readonly #timeoutMs: number;

  constructor(url: string, network: Network, timeoutMs: number) {
    super(url, network, { staticNetwork: network, batchMaxCount: 1, cacheTimeout: -1, polling: false });
    const u = new URL(url);
    // fetch refuses credentials in a URL; send them as the header they stand for.
    if (u.username || u.password) {
      this.#headers['authorization'] = 'Basic ' + Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64');
      u.username = '';
      u.password = '';
    }
    this.#url = u.toString();
    this.#timeoutMs = timeoutMs;
  }

  override async _send(payload: JsonRpcPayload | JsonRpcPayload[]): Promise<JsonRpcResult[]> {
    const res = await fetch(this.#url, {
      method: 'POST',
      headers: this.#headers,
      body: JSON.stringify(payload),
      signal: AbortSignal.timeout(this.#timeoutMs),
    });
    const text = await res.text();
    if (!res.ok) {
      // The shape of ethers' SERVER_ERROR, so a node's JSON-RPC error in a 4xx body is still read as its answer.
      throw Object.assign(new Error(`server response ${res.status} ${res.statusText}`), {
        code: 'SERVER_ERROR',
        info: { responseStatus: `${res.status} ${res.statusText}`, responseBody: text },
      });
    }
    const body = JSON.parse(text) as JsonRpcResult | JsonRpcResult[];
    return Array.isArray(body) ? body : [body];
  }
}

function quantity(value: unknown, what: string): number {
  if (typeof value !== 'string' || !/^0x[0-9a-fA-F]+$/.test(value)) {
    throw new ChainRpcError(`bad ${what} from node: ${JSON.stringify(value)}`, 'bad_response');
  }
  const n = Number.parseInt(value, 16);
  if (!Number.isSafeInteger(n)) throw new ChainRpcError(`${what} out of range: ${value}`, 'bad_response');
  return n;
}

/**
 * The node's own JSON-RPC error message, if it answered with one: in a 200
 * response (ethers puts it in `error`) or in the body of a 4xx/5xx response
 * (ethers' SERVER_ERROR keeps it in `info.responseBody`). Undefined for a
 * transport failure, where the node said nothing.
 */
function nodeAnswer(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const inner = (e as { error?: { code?: unknown; message?: unknown } }).error;
  if (typeof inner === 'object' && inner !== null && typeof inner.code === 'number') return String(inner.message ?? '');
  const body = (e as { info?: { responseBody?: unknown } }).info?.responseBody;
  if (typeof body === 'string' && body.length > 0) {
    try {
      const parsed = JSON.parse(body) as { error?: { message?: unknown } };
      if (parsed && typeof parsed.error?.message === 'string') return parsed.error.message;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function isRpcResponseError(e: unknown): boolean {
  return nodeAnswer(e) !== undefined || (e as { code?: unknown } | null)?.code === 'UNSUPPORTED_OPERATION';
}

function errorText(e: unknown): string {
  const answer = nodeAnswer(e);
  if (answer !== undefined) return answer;
  const short = (e as { shortMessage?: unknown } | null)?.shortMessage;
  if (typeof short === 'string') return short;
  if (!(e instanceof Error)) return String(e);
  // fetch says only "fetch failed"; the cause names the socket error (it holds host and port, never the path).
  const cause = e.cause instanceof Error ? `: ${(e.cause as { code?: string }).code ?? e.cause.message}` : '';
  return e.message + cause;
}

export function translateError(e: unknown, op: string, url: string): ChainError {
  if (e instanceof ChainError) return e;
  // Only a node's own answer can refuse a range; a transport error text is no evidence of that.
  const answer = nodeAnswer(e);
  if (op === 'eth_getLogs' && answer !== undefined && RANGE_REFUSAL.test(answer) && !THROTTLING.test(answer)) {
    return new RangeTooLargeError(`node refused the log query: ${answer.slice(0, 200)}`, { url: redact(url) }, { cause: e });
  }
  return new ChainRpcError(`${op} failed on ${redact(url)}: ${errorText(e).slice(0, 300)}`, 'rpc_unavailable', { url: redact(url) }, { cause: e });
}

/** Provider URLs often carry an API key in the path or query: keep it out of errors and logs. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '<rpc url>';
  }
}

/** The client for a configured chain. */
export function ethersChainClientFor(chain: ChainConfig, options: Pick<EthersChainClientOptions, 'requestTimeoutMs' | 'addressChunkSize'> = {}): EthersChainClient {
  return new EthersChainClient({
    chainId: chain.chainId,
    rpcUrls: chain.rpcUrls,
    useFinalizedTag: chain.useFinalizedTag,
    finalityDepth: chain.finalityDepth,
    ...options,
  });
}
