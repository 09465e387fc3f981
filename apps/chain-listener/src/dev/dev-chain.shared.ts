/** What dev-chain writes and dev-deposit reads: the development mnemonic (public: never fund it on a real chain) and the config file. */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const DEV_MNEMONIC = 'test test test test test test test test test test test junk';
export const DEV_CHAIN_ID = 1337;

export interface DevToken {
  symbol: string;
  contract: string;
  decimals: number;
}

/** One entry of the NEXO_CHAINS array the service reads. */
export interface DevChainEntry {
  slug: string;
  rpcUrls: string[];
  pollIntervalMs: number;
  startBlock: number;
  tokens: DevToken[];
}

export function devDataDir(): string {
  return resolve(process.env.NEXO_DATA_DIR ?? './data');
}

export const devChainFile = (dataDir = devDataDir()): string => join(dataDir, 'dev-chain.json');

export function readDevChain(file = devChainFile()): DevChainEntry {
  let entries: DevChainEntry[];
  try {
    entries = JSON.parse(readFileSync(file, 'utf8')) as DevChainEntry[];
  } catch {
    throw new Error(`no dev chain config at ${file}: run \`npm run dev:chain\` first`);
  }
  const local = entries.find((e) => e.slug === 'local');
  if (!local) throw new Error(`${file} has no chain "local"`);
  return local;
}
