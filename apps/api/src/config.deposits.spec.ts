import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HDNodeWallet, Mnemonic } from 'ethers';
import { ConfigError, loadConfig } from './config.js';

const node = HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase('test test test test test test test test test test test junk'), "m/44'/60'/0'/0");

describe('deposit configuration', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nexo-config-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('generates a development xpub once into secrets.json, keeps only the xpub, and flags it', () => {
    const first = loadConfig({ NEXO_DATA_DIR: dir });
    expect(first.depositXpub).toMatch(/^xpub/);
    expect(first.depositXpubGenerated).toBe(true);
    expect(loadConfig({ NEXO_DATA_DIR: dir }).depositXpub).toBe(first.depositXpub);
    const stored = JSON.parse(readFileSync(join(dir, 'secrets.json'), 'utf8')) as Record<string, string>;
    expect(Object.keys(stored).sort()).toEqual(['cipherKeys', 'depositXpub', 'phonePepper']);
    expect(JSON.stringify(stored)).not.toMatch(/xprv|mnemonic|phrase/i);
  });

  it('takes NEXO_DEPOSIT_XPUB as given and refuses an extended private key', () => {
    const xpub = node.neuter().extendedKey;
    expect(loadConfig({ NEXO_DATA_DIR: dir, NEXO_DEPOSIT_XPUB: xpub })).toMatchObject({ depositXpub: xpub, depositXpubGenerated: false });
    expect(() => loadConfig({ NEXO_DATA_DIR: dir, NEXO_DEPOSIT_XPUB: node.extendedKey })).toThrow(ConfigError);
    expect(() => loadConfig({ NEXO_DATA_DIR: dir, NEXO_DEPOSIT_XPUB: 'xpub-nope' })).toThrow(/NEXO_DEPOSIT_XPUB/);
  });

  it('generates nothing in the distributed mode, where every instance must derive the same addresses', () => {
    const keys = { NEXO_CIPHER_KEYS: `k1:${'ab'.repeat(32)}`, NEXO_PHONE_PEPPER: 'cd'.repeat(32) };
    expect(loadConfig({ NEXO_DATA_DIR: dir, ESDB_URL: 'esdb://localhost:2113?tls=false', ...keys }).depositXpub).toBeUndefined();
    // Compose passes an unset variable as '': the same as unset.
    expect(loadConfig({ NEXO_DATA_DIR: dir, ESDB_URL: 'esdb://localhost:2113?tls=false', NEXO_DEPOSIT_XPUB: '', ...keys }).depositXpub).toBeUndefined();
    // Chains that take deposits with no xpub to derive addresses from: refused at start, naming it.
    const local = { slug: 'local', rpcUrls: ['http://127.0.0.1:8545'], tokens: [{ symbol: 'USDT', contract: '0x' + 'ab'.repeat(20), decimals: 6 }] };
    expect(() => loadConfig({ NEXO_DATA_DIR: dir, ESDB_URL: 'esdb://localhost:2113?tls=false', NEXO_CHAINS: JSON.stringify([local]), ...keys })).toThrow(
      /NEXO_DEPOSIT_XPUB: required where NEXO_CHAINS takes deposits/,
    );
  });

  it('reads the chains and names a bad one', () => {
    const local = { slug: 'local', rpcUrls: ['http://127.0.0.1:8545'], tokens: [{ symbol: 'USDT', contract: '0x' + 'ab'.repeat(20), decimals: 6 }] };
    expect(loadConfig({ NEXO_DATA_DIR: dir, NEXO_CHAINS: JSON.stringify([local]) }).chains.map((c) => c.slug)).toEqual(['local']);
    expect(loadConfig({ NEXO_DATA_DIR: dir }).chains).toEqual([]);
    expect(() => loadConfig({ NEXO_DATA_DIR: dir, NEXO_CHAINS: '[{"slug":"local"}]' })).toThrow(ConfigError);
  });
});
