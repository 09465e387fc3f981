import { HDNodeWallet, Mnemonic } from 'ethers';
import { deriveDepositAddress, MAX_DEPOSIT_INDEX } from './deposit-address.js';

// The well-known development mnemonic (Hardhat, Foundry): its first addresses are published everywhere.
const PHRASE = 'test test test test test test test test test test test junk';
const mnemonic = Mnemonic.fromPhrase(PHRASE);
const externalChain = HDNodeWallet.fromMnemonic(mnemonic, "m/44'/60'/0'/0");
const XPUB = externalChain.neuter().extendedKey;

describe('deriveDepositAddress', () => {
  it('gives the addresses any wallet shows for the mnemonic at m/44\'/60\'/0\'/0/i', () => {
    expect(XPUB.startsWith('xpub')).toBe(true);
    expect(deriveDepositAddress(XPUB, 0)).toBe('0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266');
    expect(deriveDepositAddress(XPUB, 1)).toBe('0x70997970C51812dc3A010C7d01b50e0d17dc79C8');
    expect(deriveDepositAddress(XPUB, 2)).toBe('0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC');
  });

  it('matches the private-key derivation for far indexes, without the private key', () => {
    for (const i of [17, 4242, MAX_DEPOSIT_INDEX]) {
      expect(deriveDepositAddress(XPUB, i)).toBe(HDNodeWallet.fromMnemonic(mnemonic, `m/44'/60'/0'/0/${i}`).address);
    }
  });

  it('gives distinct addresses per index', () => {
    const addresses = new Set(Array.from({ length: 50 }, (_, i) => deriveDepositAddress(XPUB, i)));
    expect(addresses.size).toBe(50);
  });

  it('refuses hardened and malformed indexes', () => {
    expect(() => deriveDepositAddress(XPUB, MAX_DEPOSIT_INDEX + 1)).toThrow(/non-hardened/);
    expect(() => deriveDepositAddress(XPUB, -1)).toThrow(RangeError);
    expect(() => deriveDepositAddress(XPUB, 1.5)).toThrow(RangeError);
  });

  it('refuses an extended private key: the service must never hold one', () => {
    expect(() => deriveDepositAddress(externalChain.extendedKey, 0)).toThrow(/private key/);
  });

  it('refuses something that is not an extended key', () => {
    expect(() => deriveDepositAddress('xpub-not-really', 0)).toThrow(/not a valid extended public key/);
  });
});
