import { InMemoryChain } from './adapters/memory.chain-client.js';
import { ChainError } from './chain-client.port.js';
import { ChainConfigSchema, KNOWN_CHAINS, parseChainsConfig, verifyTokenDecimals } from './chain.config.js';

const RPC = ['https://rpc.example/v3/secret-key'];

describe('chains config', () => {
  it('fills a known chain from its defaults: Ethereum USDT/USDC with 6 decimals, finality by tag, 1 confirmation', () => {
    const [eth] = parseChainsConfig([{ slug: 'ethereum', rpcUrls: RPC }]);
    expect(eth).toMatchObject({ chainId: 1, confirmations: 1, useFinalizedTag: true, maxBlockRange: 2000 });
    expect(eth!.tokens).toEqual([
      { symbol: 'USDT', contract: '0xdAC17F958D2ee523a2206206994597C13D831ec7', decimals: 6 },
      { symbol: 'USDC', contract: '0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48', decimals: 6 },
    ]);
  });

  it('knows BNB Smart Chain stablecoins have 18 decimals and Base has USDC only', () => {
    const chains = parseChainsConfig(['bsc', 'polygon', 'arbitrum', 'base'].map((slug) => ({ slug, rpcUrls: RPC })));
    expect(chains.map((c) => c.chainId)).toEqual([56, 137, 42161, 8453]);
    expect(chains[0]!.tokens.map((t) => t.decimals)).toEqual([18, 18]);
    expect(chains[3]!.tokens.map((t) => t.symbol)).toEqual(['USDC']);
    for (const c of chains) expect(c.finalityDepth).toBeGreaterThanOrEqual(c.confirmations);
  });

  it('lets an entry override defaults, and requires tokens for the local chain', () => {
    const [local] = parseChainsConfig([
      { slug: 'local', rpcUrls: ['http://127.0.0.1:8545'], confirmations: 2, tokens: [{ symbol: 'USDT', contract: '0xdac17f958d2ee523a2206206994597c13d831ec7', decimals: 6 }] },
    ]);
    expect(local).toMatchObject({ chainId: 1337, useFinalizedTag: false, finalityDepth: 12, confirmations: 2 });
    expect(local!.tokens[0]!.contract).toBe('0xdAC17F958D2ee523a2206206994597C13D831ec7');
    expect(() => parseChainsConfig([{ slug: 'local', rpcUrls: ['http://127.0.0.1:8545'] }])).toThrow();
  });

  it('refuses bad checksums, duplicate chains, no RPC and finality below confirmations', () => {
    const eth = KNOWN_CHAINS.ethereum;
    const badChecksum = { ...eth, rpcUrls: RPC, tokens: [{ symbol: 'USDT', contract: '0xdac17F958D2ee523a2206206994597C13D831ec7', decimals: 6 }] };
    expect(ChainConfigSchema.safeParse(badChecksum).success).toBe(false);
    expect(() => parseChainsConfig([{ slug: 'ethereum', rpcUrls: RPC }, { slug: 'ethereum', rpcUrls: RPC }])).toThrow(ChainError);
    expect(ChainConfigSchema.safeParse({ ...eth, rpcUrls: [] }).success).toBe(false);
    expect(ChainConfigSchema.safeParse({ ...eth, rpcUrls: RPC, confirmations: 200, finalityDepth: 100 }).success).toBe(false);
  });
});

describe('verifyTokenDecimals', () => {
  const config = (decimals: number) =>
    parseChainsConfig([
      { slug: 'local', rpcUrls: ['http://127.0.0.1:8545'], tokens: [{ symbol: 'USDT', contract: '0x' + '11'.repeat(20), decimals }] },
    ])[0]!;

  it('passes when the chain agrees with the config', async () => {
    const chain = new InMemoryChain();
    chain.setDecimals('0x' + '11'.repeat(20), 18);
    await expect(verifyTokenDecimals(chain, config(18))).resolves.toBeUndefined();
  });

  it('refuses to start on a mismatch, naming token, chain value and config value', async () => {
    const chain = new InMemoryChain();
    chain.setDecimals('0x' + '11'.repeat(20), 18);
    const err = await verifyTokenDecimals(chain, config(6)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChainError);
    expect((err as ChainError).code).toBe('decimals_mismatch');
    expect((err as ChainError).message).toMatch(/USDT 0x1111111111111111111111111111111111111111 has 18 decimals on chain, config says 6/);
  });

  it('refuses a configured contract that is not a token', async () => {
    await expect(verifyTokenDecimals(new InMemoryChain(), config(6))).rejects.toMatchObject({ code: 'decimals_mismatch' });
  });

  it('lets an outage through as retryable instead of refusing the config', async () => {
    const chain = new InMemoryChain();
    chain.down = true;
    await expect(verifyTokenDecimals(chain, config(6))).rejects.toMatchObject({ code: 'rpc_unavailable', retryable: true });
  });
});
