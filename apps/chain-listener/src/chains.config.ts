/**
 * Which chains the service takes deposits on, from the environment:
 * `NEXO_CHAINS` (JSON, the array `parseChainsConfig` reads) or
 * `NEXO_CHAINS_FILE` (a path to such JSON; `npm run dev:chain` writes one).
 *
 * With none configured, deposit addresses are still handed out for the known
 * chains (their contracts and confirmations are documented defaults) but no
 * listener runs: transfers to them are credited once the chain is configured
 * with a `startBlock` at or before them.
 */
import { readFileSync } from 'node:fs';
import { type ChainConfig, parseChainsConfig } from '#chain';

export class ChainsConfigError extends Error {}

export function chainsFromEnv(env: { NEXO_CHAINS?: string; NEXO_CHAINS_FILE?: string }): ChainConfig[] {
  const inline = env.NEXO_CHAINS?.trim();
  const file = env.NEXO_CHAINS_FILE?.trim();
  if (inline && file) throw new ChainsConfigError('set NEXO_CHAINS or NEXO_CHAINS_FILE, not both');
  let text: string;
  let source: string;
  if (inline) {
    text = inline;
    source = 'NEXO_CHAINS';
  } else if (file) {
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new ChainsConfigError(`NEXO_CHAINS_FILE: cannot read ${file}: ${(e as Error).message}`);
    }
    source = `NEXO_CHAINS_FILE (${file})`;
  } else {
    return [];
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ChainsConfigError(`${source}: must be JSON`);
  }
  try {
    return parseChainsConfig(json);
  } catch (e) {
    const issues = (e as { issues?: Array<{ path: PropertyKey[]; message: string }> }).issues;
    const detail = issues ? issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') : (e as Error).message;
    throw new ChainsConfigError(`${source}: ${detail}`);
  }
}

/** A chain as the deposit-address endpoint describes it. */
export interface DepositChain {
  slug: string;
  chainId: number;
  tokens: Array<{ symbol: string; contract: string; decimals: number }>;
  confirmations: number;
}

/**
 * The chains a deposit address is answered for: the configured ones, which a listener watches. None
 * configured means none: an address on a chain nobody watches would take a customer's transfer and
 * never credit it.
 */
export function depositChains(configured: readonly ChainConfig[]): Map<string, DepositChain> {
  return new Map(configured.map((c) => [c.slug, { slug: c.slug, chainId: c.chainId, tokens: c.tokens.map((t) => ({ ...t })), confirmations: c.confirmations }]));
}
