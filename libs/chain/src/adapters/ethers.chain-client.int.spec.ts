/**
 * The ethers adapter against a real node (ganache over HTTP), with a JSON-RPC
 * proxy in front where a hosted RPC's misbehaviour is needed.
 */
import { HDNodeWallet, Mnemonic } from 'ethers';
import { ChainError, ChainRpcError, RangeTooLargeError } from '../chain-client.port.js';
import { parseChainsConfig, verifyTokenDecimals } from '../chain.config.js';
import { deriveDepositAddress } from '../deposit-address.js';
import { forwarderInterface, LocalChain } from '../testing/ganache.local-chain.js';
import { type RpcProxy, startRpcProxy } from '../testing/json-rpc.proxy.js';
import { EthersChainClient } from './ethers.chain-client.js';

const XPUB = HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase('test test test test test test test test test test test junk'), "m/44'/60'/0'/0").neuter()
  .extendedKey;
const deposit = Array.from({ length: 6 }, (_, i) => deriveDepositAddress(XPUB, 100 + i));

let chain: LocalChain;
let proxy: RpcProxy;
let usdt: string;
let usdc18: string;
let forwarder: string;
const clients: EthersChainClient[] = [];
const client = (over: Partial<ConstructorParameters<typeof EthersChainClient>[0]> = {}) => {
  const c = new EthersChainClient({ chainId: 1337, rpcUrls: [chain.url], useFinalizedTag: false, finalityDepth: 5, requestTimeoutMs: 2000, ...over });
  clients.push(c);
  return c;
};

beforeAll(async () => {
  chain = await LocalChain.start();
  proxy = await startRpcProxy(chain.url);
  usdt = await chain.deployToken('USDT', 6);
  usdc18 = await chain.deployToken('USDC', 18);
  forwarder = await chain.deploy('Forwarder', []);
  await chain.transfer(usdt, chain.wallets[0]!, forwarder, 1_000_000_000n);
});

afterAll(async () => {
  for (const c of clients) c.close();
  await proxy.close();
  await chain.close();
});

afterEach(() => {
  proxy.down = false;
  proxy.maxLogRange = undefined;
});

describe('EthersChainClient on a local node', () => {
  it('reports head, a depth-based finalized head and linked headers', async () => {
    const c = client();
    await chain.mine(6);
    const head = await c.head();
    expect(head).toBe(await chain.head());
    expect(await c.finalizedHead()).toBe(head - 5);
    const [parent, child] = [await c.blockHeader(head - 1), await c.blockHeader(head)];
    expect(child!.parentHash).toBe(parent!.hash);
    expect(await c.blockHash(head)).toBe(child!.hash);
    expect(await c.blockHeader(head + 100)).toBeNull();
  });

  it('normalizes a single deposit: EIP-55 addresses, bigint base units, lower-case hashes, block position', async () => {
    const c = client();
    const sent = await chain.transfer(usdt, chain.wallets[0]!, deposit[0]!, 25_500_000n);
    const r = await chain.minedReceipt(sent.hash);
    const logs = await c.getTransferLogs({ fromBlock: r.blockNumber, toBlock: r.blockNumber, tokens: [usdt], to: [deposit[0]!.toLowerCase()] });
    expect(logs).toEqual([
      {
        chainId: 1337,
        token: usdt,
        from: chain.wallets[0]!.address,
        to: deposit[0],
        amount: 25_500_000n,
        txHash: sent.hash,
        logIndex: 0,
        blockNumber: r.blockNumber,
        blockHash: r.blockHash,
      },
    ]);
  });

  it('returns many deposits of one block in log order, including ones paid out by a contract, and nothing else', async () => {
    const c = client({ addressChunkSize: 2 });
    await chain.pauseMining();
    const w = chain.wallets[0]!;
    await chain.transfer(usdt, w, deposit[1]!, 1n);
    await chain.transfer(usdc18, w, deposit[2]!, 2n * 10n ** 18n);
    await chain.transfer(usdt, w, '0x' + '99'.repeat(20), 3n); // not ours
    await chain.send(w, forwarder, forwarderInterface.encodeFunctionData('forward', [usdt, [deposit[3], deposit[4], deposit[3]], [4n, 5n, 4n]]), 300_000n);
    await chain.mine();
    await chain.resumeMining();
    const block = (await chain.head()) - 1;
    const logs = await c.getTransferLogs({ fromBlock: block, toBlock: block, tokens: [usdt, usdc18], to: deposit });
    expect(logs.map((t) => [t.to, t.amount, t.from, t.logIndex])).toEqual([
      [deposit[1], 1n, w.address, 0],
      [deposit[2], 2n * 10n ** 18n, w.address, 1],
      [deposit[3], 4n, forwarder, 3],
      [deposit[4], 5n, forwarder, 4],
      [deposit[3], 4n, forwarder, 5],
    ]);
    expect(new Set(logs.map((t) => t.blockHash)).size).toBe(1);
    // The same read with the whole address list in one query.
    expect(await client().getTransferLogs({ fromBlock: block, toBlock: block, tokens: [usdt, usdc18], to: deposit })).toEqual(logs);
  });

  it('translates a refused log range into RangeTooLargeError, and throttling into a retryable RPC error', async () => {
    const c = client({ rpcUrls: [proxy.url] });
    const head = await c.head();
    proxy.maxLogRange = 2;
    await expect(c.getTransferLogs({ fromBlock: head - 2, toBlock: head, tokens: [usdt], to: deposit })).rejects.toBeInstanceOf(RangeTooLargeError);
    await expect(c.getTransferLogs({ fromBlock: head - 1, toBlock: head, tokens: [usdt], to: deposit })).resolves.toBeInstanceOf(Array);
    proxy.refusalMessage = 'Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range';
    await expect(c.getTransferLogs({ fromBlock: head - 2, toBlock: head, tokens: [usdt], to: deposit })).rejects.toBeInstanceOf(RangeTooLargeError);
    proxy.refusalMessage = 'project ID request rate exceeded';
    const throttled = await c.getTransferLogs({ fromBlock: head - 2, toBlock: head, tokens: [usdt], to: deposit }).catch((e: unknown) => e);
    expect(throttled).toBeInstanceOf(ChainRpcError);
    expect((throttled as ChainRpcError).retryable).toBe(true);
    proxy.refusalMessage = 'query returned more than 10000 results';
  });

  it('fails over to the next RPC URL when one is down, and fails retryably when all are', async () => {
    proxy.down = true;
    const c = client({ rpcUrls: [proxy.url, chain.url] });
    expect(await c.head()).toBe(await chain.head());
    const alone = client({ rpcUrls: [proxy.url] });
    await expect(alone.head()).rejects.toMatchObject({ code: 'rpc_unavailable', retryable: true });
  });

  it('refuses a node that serves another chain, and keeps RPC keys out of the message', async () => {
    const c = client({ chainId: 1, rpcUrls: [`${proxy.url}/v3/secret-key`] });
    const err = (await c.head().catch((e: unknown) => e)) as ChainError;
    expect(err).toBeInstanceOf(ChainError);
    expect(err.code).toBe('wrong_chain');
    expect(err.retryable).toBe(false);
    expect(err.message).not.toContain('secret-key');
  });

  it('reads decimals on chain, and the service refuses to start on a mismatch', async () => {
    const c = client();
    expect(await c.decimals(usdt)).toBe(6);
    expect(await c.decimals(usdc18)).toBe(18);
    const config = (usdcDecimals: number, extra: Array<{ symbol: string; contract: string; decimals: number }> = []) =>
      parseChainsConfig([
        {
          slug: 'local',
          rpcUrls: [chain.url],
          tokens: [{ symbol: 'USDT', contract: usdt, decimals: 6 }, { symbol: 'USDC', contract: usdc18, decimals: usdcDecimals }, ...extra],
        },
      ])[0]!;
    await expect(verifyTokenDecimals(c, config(18))).resolves.toBeUndefined();
    await expect(verifyTokenDecimals(c, config(6))).rejects.toMatchObject({
      code: 'decimals_mismatch',
      message: expect.stringContaining(`USDC ${usdc18} has 18 decimals on chain, config says 6`),
    });
    await expect(verifyTokenDecimals(c, config(18, [{ symbol: 'FAKE', contract: deposit[5]!, decimals: 6 }]))).rejects.toMatchObject({
      code: 'decimals_mismatch',
      message: expect.stringContaining('FAKE'),
    });
  });
});
