/**
 * A real local EVM chain for tests and the benchmark: ganache 7.9 in-process,
 * served over HTTP on 127.0.0.1 (an ephemeral port), so the code under test
 * talks JSON-RPC exactly as it would to a node. Mining is instant ("eager")
 * unless paused; reorgs are made with evm_snapshot / evm_revert and mining a
 * different history on top.
 *
 * Transactions are signed here with known keys and sent raw, so a test can
 * keep the signed bytes and mine the very same transaction again after a reorg.
 */
import ganache from 'ganache';
import { Interface, JsonRpcProvider, Network, Wallet, getAddress, keccak256, toUtf8Bytes } from 'ethers';
import { type TestContractName, testContracts } from './test-tokens.contracts.js';

export interface SentTx {
  hash: string;
  /** The signed transaction, to send again after a reorg. */
  raw: string;
}

export interface Receipt {
  blockNumber: number;
  blockHash: string;
  status: number;
  contractAddress: string | null;
  logCount: number;
}

interface RawReceipt {
  blockNumber: string;
  blockHash: string;
  status: string;
  contractAddress: string | null;
  logs: unknown[];
}

export interface LocalChainOptions {
  chainId?: number;
  accounts?: number;
}

const GWEI = 10n ** 9n;
export const tokenInterface = new Interface([
  'function transfer(address to, uint256 value) returns (bool)',
  'function balanceOf(address) view returns (uint256)',
  'function decimals() view returns (uint8)',
]);
export const forwarderInterface = new Interface(['function forward(address token, address[] to, uint256[] amounts)']);
export const sprayInterface = new Interface(['function spray(address[] to, uint256 value)']);

export class LocalChain {
  readonly #server: ReturnType<typeof ganache.server>;
  readonly #provider: JsonRpcProvider;
  readonly #nonces = new Map<string, number>();

  private constructor(
    server: ReturnType<typeof ganache.server>,
    readonly url: string,
    readonly chainId: number,
    readonly wallets: Wallet[],
  ) {
    this.#server = server;
    const network = Network.from(chainId);
    this.#provider = new JsonRpcProvider(url, network, { staticNetwork: network, batchMaxCount: 1, cacheTimeout: -1 });
  }

  static async start(options: LocalChainOptions = {}): Promise<LocalChain> {
    const chainId = options.chainId ?? 1337;
    const wallets = Array.from({ length: options.accounts ?? 3 }, (_, i) => new Wallet(keccak256(toUtf8Bytes(`nexo-route test account ${i}`))));
    const server = ganache.server({
      logging: { quiet: true },
      chain: { chainId, hardfork: 'shanghai' },
      miner: { instamine: 'eager' },
      wallet: { accounts: wallets.map((w) => ({ secretKey: w.privateKey, balance: '0x' + (10n ** 24n).toString(16) })) },
    });
    await server.listen(0, '127.0.0.1');
    const { port } = server.address() as { port: number };
    return new LocalChain(server, `http://127.0.0.1:${port}`, chainId, wallets);
  }

  rpc<T = unknown>(method: string, params: unknown[] = []): Promise<T> {
    return this.#provider.send(method, params) as Promise<T>;
  }

  async head(): Promise<number> {
    return Number(await this.rpc<string>('eth_blockNumber'));
  }

  async mine(blocks = 1): Promise<void> {
    await this.rpc('evm_mine', [{ blocks }]);
  }

  async snapshot(): Promise<string> {
    return this.rpc<string>('evm_snapshot');
  }

  /** Rolls the chain back to a snapshot; whatever is mined next is a different history (a reorg). */
  async revert(snapshotId: string): Promise<void> {
    if (!(await this.rpc<boolean>('evm_revert', [snapshotId]))) throw new Error(`no snapshot ${snapshotId}`);
    this.#nonces.clear();
  }

  /** Queue transactions without mining them, to put several in one block with `mine()`. */
  async pauseMining(): Promise<void> {
    await this.rpc('miner_stop');
  }

  /** Note: ganache mines one (possibly empty) block when mining resumes. */
  async resumeMining(): Promise<void> {
    await this.rpc('miner_start');
  }

  async sign(from: Wallet, to: string | null, data: string, gasLimit = 3_000_000n): Promise<SentTx> {
    const nonce = await this.#nextNonce(from.address);
    const raw = await from.signTransaction({
      type: 2,
      chainId: this.chainId,
      nonce,
      to,
      data,
      gasLimit,
      maxFeePerGas: 100n * GWEI,
      maxPriorityFeePerGas: GWEI,
    });
    return { hash: keccak256(raw), raw };
  }

  async sendRaw(raw: string): Promise<string> {
    return this.rpc<string>('eth_sendRawTransaction', [raw]);
  }

  /** Signs and sends; with mining on, the transaction is mined when this returns. */
  async send(from: Wallet, to: string | null, data: string, gasLimit?: bigint): Promise<SentTx> {
    const tx = await this.sign(from, to, data, gasLimit);
    await this.sendRaw(tx.raw);
    return tx;
  }

  async receipt(hash: string): Promise<Receipt | null> {
    const r = await this.rpc<RawReceipt | null>('eth_getTransactionReceipt', [hash]);
    if (!r) return null;
    return {
      blockNumber: Number(r.blockNumber),
      blockHash: r.blockHash.toLowerCase(),
      status: Number(r.status),
      contractAddress: r.contractAddress,
      logCount: r.logs.length,
    };
  }

  async minedReceipt(hash: string): Promise<Receipt> {
    const r = await this.receipt(hash);
    if (!r) throw new Error(`transaction ${hash} is not mined`);
    if (r.status !== 1) throw new Error(`transaction ${hash} reverted`);
    return r;
  }

  async deploy(name: TestContractName, args: unknown[], from: Wallet = this.wallets[0]!): Promise<string> {
    const { abi, bytecode } = testContracts()[name];
    const data = bytecode + new Interface(abi as never).encodeDeploy(args).slice(2);
    const tx = await this.send(from, null, data, 5_000_000n);
    return getAddress((await this.minedReceipt(tx.hash)).contractAddress!);
  }

  /** An ERC-20 with `decimals`, its whole supply held by `wallets[0]`. */
  deployToken(symbol: string, decimals: number, supply = 10n ** 30n): Promise<string> {
    return this.deploy('TestToken', [`Test ${symbol}`, symbol, decimals, supply]);
  }

  async transfer(token: string, from: Wallet, to: string, amount: bigint): Promise<SentTx> {
    return this.send(from, token, tokenInterface.encodeFunctionData('transfer', [to, amount]), 100_000n);
  }

  signTransfer(token: string, from: Wallet, to: string, amount: bigint): Promise<SentTx> {
    return this.sign(from, token, tokenInterface.encodeFunctionData('transfer', [to, amount]), 100_000n);
  }

  async balanceOf(token: string, owner: string): Promise<bigint> {
    const data = tokenInterface.encodeFunctionData('balanceOf', [owner]);
    return BigInt(await this.rpc<string>('eth_call', [{ to: token, data }, 'latest']));
  }

  async close(): Promise<void> {
    this.#provider.destroy();
    await this.#server.close();
  }

  async #nextNonce(address: string): Promise<number> {
    let n = this.#nonces.get(address);
    // The node's pending count ignores queued transactions while mining is paused, so nonces are counted here.
    if (n === undefined) n = Number(await this.rpc<string>('eth_getTransactionCount', [address, 'latest']));
    this.#nonces.set(address, n + 1);
    return n;
  }
}
