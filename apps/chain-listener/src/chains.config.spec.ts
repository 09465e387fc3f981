import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChainsConfigError, chainsFromEnv, depositChains } from './chains.config.js';

const local = { slug: 'local', rpcUrls: ['http://127.0.0.1:8545'], tokens: [{ symbol: 'USDT', contract: '0x' + 'ab'.repeat(20), decimals: 6 }] };

describe('chains from the environment', () => {
  it('reads NEXO_CHAINS or the file NEXO_CHAINS_FILE names, with the known defaults under each slug', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nexo-chains-'));
    try {
      const file = join(dir, 'chains.json');
      writeFileSync(file, JSON.stringify([local, { slug: 'bsc', rpcUrls: ['https://bsc.example'] }]));
      const chains = chainsFromEnv({ NEXO_CHAINS_FILE: file });
      expect(chains.map((c) => [c.slug, c.chainId, c.confirmations, c.tokens.map((t) => t.decimals)])).toEqual([
        ['local', 1337, 1, [6]],
        ['bsc', 56, 1, [18, 18]],
      ]);
      expect(chainsFromEnv({ NEXO_CHAINS: JSON.stringify([local]) })).toHaveLength(1);
      expect(() => chainsFromEnv({ NEXO_CHAINS: '[]', NEXO_CHAINS_FILE: file })).toThrow(ChainsConfigError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names what is wrong', () => {
    expect(() => chainsFromEnv({ NEXO_CHAINS: 'nope' })).toThrow(/NEXO_CHAINS: must be JSON/);
    expect(() => chainsFromEnv({ NEXO_CHAINS: JSON.stringify([{ ...local, rpcUrls: [] }]) })).toThrow(/rpcUrls/);
    expect(() => chainsFromEnv({ NEXO_CHAINS_FILE: '/nonexistent/chains.json' })).toThrow(/cannot read/);
  });

  it('answers deposit-address for the configured chains only, and for none when none is configured (nothing would credit a transfer)', () => {
    expect([...depositChains([]).keys()]).toEqual([]);
    expect([...depositChains(chainsFromEnv({ NEXO_CHAINS: JSON.stringify([local]) })).keys()]).toEqual(['local']);
  });
});
