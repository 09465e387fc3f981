/**
 * Chains as configuration, validated with zod at start-up. Contracts and
 * decimals of the known chains come from ../../shared/REFERENCE.md; the
 * service re-reads `decimals()` on chain before it scans (verifyTokenDecimals)
 * and refuses to start on a mismatch, since a wrong scale would credit 10^12
 * times too much or too little.
 *
 * Finality: every known chain answers the `finalized` block tag, which is the
 * only source of truth used there. `finalityDepth` is the fallback for a node
 * that does not know the tag, and is set well above the chain's usual reorg
 * depth; it is the only rule for `local` (ganache reports its head as finalized).
 */
import { getAddress } from 'ethers';
import { z } from 'zod';
import { type ChainClient, ChainError, isRetryableChainError } from './chain-client.port.js';
import type { LogScannerOptions } from './log-scanner.js';

const Contract = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/)
  .transform((a, ctx) => {
    try {
      return getAddress(a);
    } catch {
      // Mixed case that fails EIP-55 is a typo in the address, not a style choice.
      ctx.addIssue({ code: 'custom', message: `bad EIP-55 checksum: ${a}` });
      return z.NEVER;
    }
  });

export const TokenConfigSchema = z
  .object({
    symbol: z.string().regex(/^[A-Z0-9.]{1,11}$/),
    contract: Contract,
    decimals: z.number().int().min(0).max(36),
  })
  .strict();

export const ChainConfigSchema = z
  .object({
    chainId: z.number().int().positive(),
    /** The API's `?chain=`. (DepositAddressAssigned records the chain family, `evm`: one address serves every EVM chain.) */
    slug: z.string().regex(/^[a-z][a-z0-9-]{0,31}$/),
    name: z.string().min(1).max(64),
    rpcUrls: z.array(z.string().url()).min(1),
    /** Blocks, counting the transfer's own, before a deposit is credited. ARCHITECTURE.md promises 1. */
    confirmations: z.number().int().min(1).default(1),
    useFinalizedTag: z.boolean().default(false),
    finalityDepth: z.number().int().min(1),
    pollIntervalMs: z.number().int().min(100).default(4000),
    /** Largest eth_getLogs span tried; the scanner halves it when a node refuses. REFERENCE.md: Alchemy allows 2,000. */
    maxBlockRange: z.number().int().min(1).default(2000),
    /** Block hashes kept to detect reorgs of what was read. */
    reorgWindow: z.number().int().min(1).default(256),
    /** Where a chain with no stored cursor starts; its head at first start when absent. */
    startBlock: z.number().int().min(0).optional(),
    tokens: z.array(TokenConfigSchema).min(1),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.finalityDepth < c.confirmations) ctx.addIssue({ code: 'custom', path: ['finalityDepth'], message: 'finalityDepth must be ≥ confirmations' });
    if (c.reorgWindow < c.confirmations) ctx.addIssue({ code: 'custom', path: ['reorgWindow'], message: 'reorgWindow must be ≥ confirmations' });
    const contracts = c.tokens.map((t) => t.contract);
    if (new Set(contracts).size !== contracts.length) ctx.addIssue({ code: 'custom', path: ['tokens'], message: 'duplicate token contract' });
    const symbols = c.tokens.map((t) => t.symbol);
    if (new Set(symbols).size !== symbols.length) ctx.addIssue({ code: 'custom', path: ['tokens'], message: 'duplicate token symbol' });
  });

export type ChainConfig = z.output<typeof ChainConfigSchema>;
export type ChainConfigInput = z.input<typeof ChainConfigSchema>;
export type TokenConfig = z.output<typeof TokenConfigSchema>;

type KnownChain = Omit<ChainConfigInput, 'rpcUrls'>;

/** Defaults per chain; RPC URLs are never defaulted (they carry provider keys). */
export const KNOWN_CHAINS = {
  ethereum: {
    chainId: 1,
    slug: 'ethereum',
    name: 'Ethereum',
    useFinalizedTag: true,
    finalityDepth: 96,
    pollIntervalMs: 6000,
    tokens: [
      { symbol: 'USDT', contract: '0xdAC17F958D2ee523a2206206994597C13D831ec7', decimals: 6 },
      { symbol: 'USDC', contract: '0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48', decimals: 6 },
    ],
  },
  bsc: {
    chainId: 56,
    slug: 'bsc',
    name: 'BNB Smart Chain',
    // Fast finality makes a block final by n+2, and the tag says so; the fallback does not trust that rule blindly.
    useFinalizedTag: true,
    finalityDepth: 15,
    pollIntervalMs: 3000,
    tokens: [
      { symbol: 'USDT', contract: '0x55d398326f99059fF775485246999027B3197955', decimals: 18 },
      { symbol: 'USDC', contract: '0x8AC76a51cc950d9822D68b83fE1Ad97B32Cd580d', decimals: 18 },
    ],
  },
  polygon: {
    chainId: 137,
    slug: 'polygon',
    name: 'Polygon PoS',
    // Milestones finalize; before them Polygon saw reorgs of dozens of blocks.
    useFinalizedTag: true,
    finalityDepth: 256,
    pollIntervalMs: 2000,
    tokens: [
      { symbol: 'USDT', contract: '0xc2132D05D31c914a87C6611C10748AEb04B58e8F', decimals: 6 },
      { symbol: 'USDC', contract: '0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359', decimals: 6 },
    ],
  },
  arbitrum: {
    chainId: 42161,
    slug: 'arbitrum',
    name: 'Arbitrum One',
    // L2 blocks are final with their L1 batch, minutes and thousands of blocks later.
    useFinalizedTag: true,
    finalityDepth: 4800,
    pollIntervalMs: 2000,
    tokens: [
      { symbol: 'USDT', contract: '0xFd086bC7CD5C481DCC9C85ebE478A1C0b69FCbb9', decimals: 6 },
      { symbol: 'USDC', contract: '0xaf88d065e77c8cC2239327C5EDb3A432268e5831', decimals: 6 },
    ],
  },
  base: {
    chainId: 8453,
    slug: 'base',
    name: 'Base',
    useFinalizedTag: true,
    finalityDepth: 900,
    pollIntervalMs: 2000,
    tokens: [{ symbol: 'USDC', contract: '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913', decimals: 6 }],
  },
} as const satisfies Record<string, KnownChain>;

/** Dev chain (ganache): no tokens by default, they are deployed at run time and configured. */
export const LOCAL_CHAIN = {
  chainId: 1337,
  slug: 'local',
  name: 'Local dev chain',
  useFinalizedTag: false,
  finalityDepth: 12,
  pollIntervalMs: 1000,
} as const satisfies Omit<KnownChain, 'tokens'>;

export type KnownChainSlug = keyof typeof KNOWN_CHAINS;

/**
 * Parses the chains section of the config. An entry naming a known slug
 * starts from that chain's defaults and overrides what it gives (a `tokens`
 * list replaces the default list as a whole).
 */
export function parseChainsConfig(input: unknown): ChainConfig[] {
  const raw = z.array(z.record(z.string(), z.unknown())).parse(input);
  const chains = raw.map((entry) => {
    const slug = entry['slug'];
    const base: Record<string, unknown> =
      slug === 'local' ? LOCAL_CHAIN : typeof slug === 'string' && slug in KNOWN_CHAINS ? KNOWN_CHAINS[slug as KnownChainSlug] : {};
    return ChainConfigSchema.parse({ ...base, ...entry });
  });
  const slugs = new Set(chains.map((c) => c.slug));
  const ids = new Set(chains.map((c) => c.chainId));
  if (slugs.size !== chains.length || ids.size !== chains.length) {
    throw new ChainError('invalid_config', 'each chain slug and chainId may be configured once', false);
  }
  return chains;
}

/**
 * Reads `decimals()` of every configured token and throws if any differs
 * from the config (or is not a token at all): the service must not start.
 * An RPC outage is rethrown as is, so the caller can retry instead of failing.
 */
export async function verifyTokenDecimals(client: Pick<ChainClient, 'chainId' | 'decimals'>, chain: ChainConfig): Promise<void> {
  if (client.chainId !== chain.chainId) {
    throw new ChainError('invalid_config', `client is for chain ${client.chainId}, config ${chain.slug} is chain ${chain.chainId}`, false);
  }
  const problems: string[] = [];
  for (const t of chain.tokens) {
    let onChain: number;
    try {
      onChain = await client.decimals(t.contract);
    } catch (e) {
      if (isRetryableChainError(e)) throw e;
      problems.push(`${t.symbol} ${t.contract}: ${e instanceof Error ? e.message : String(e)}`);
      continue;
    }
    if (onChain !== t.decimals) problems.push(`${t.symbol} ${t.contract} has ${onChain} decimals on chain, config says ${t.decimals}`);
  }
  if (problems.length > 0) {
    throw new ChainError('decimals_mismatch', `chain ${chain.slug} (${chain.chainId}): refusing to start: ${problems.join('; ')}`, false, {
      problems,
    });
  }
}

/** Scanner settings for a configured chain. */
export function scannerOptionsFor(chain: ChainConfig): LogScannerOptions {
  return {
    tokens: chain.tokens.map((t) => t.contract),
    maxBlockRange: chain.maxBlockRange,
    confirmations: chain.confirmations,
    reorgWindow: chain.reorgWindow,
  };
}
