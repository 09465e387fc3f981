/**
 * Deposit addresses, one per account and chain, derived from an extended
 * public key (BIP-32). The service holds only the xpub: it can see where money
 * arrives but can never move it. Sweeping is done elsewhere with the key that
 * stays offline.
 *
 * The xpub is expected at the external-chain level of a BIP-44 account,
 * m/44'/60'/0'/0, so that address `index` is m/44'/60'/0'/0/index: the one
 * any standard wallet shows for that mnemonic. One index serves every EVM
 * chain, as EVM addresses do not depend on the chain.
 */
import { HDNodeWallet } from 'ethers';
import { ChainError } from './chain-client.port.js';

/** Indexes at and above 2^31 are hardened: deriving them needs the private key. */
export const MAX_DEPOSIT_INDEX = 2 ** 31 - 1;

const parsed = new Map<string, ReturnType<typeof HDNodeWallet.fromExtendedKey>>();

function parentNode(xpub: string): ReturnType<typeof HDNodeWallet.fromExtendedKey> {
  let node = parsed.get(xpub);
  if (node) return node;
  try {
    node = HDNodeWallet.fromExtendedKey(xpub);
  } catch (e) {
    throw new ChainError('invalid_config', 'deposit xpub is not a valid extended public key', false, {}, { cause: e });
  }
  if (node instanceof HDNodeWallet) {
    // An xprv parses too, and would put a spending key in the service's memory and config.
    throw new ChainError('invalid_config', 'deposit key is an extended private key; configure the xpub only', false);
  }
  parsed.set(xpub, node);
  return node;
}

/** The EIP-55 address for deposit index `index` under `xpub`. Pure and deterministic. */
export function deriveDepositAddress(xpub: string, index: number): string {
  if (!Number.isInteger(index) || index < 0 || index > MAX_DEPOSIT_INDEX) {
    throw new RangeError(`deposit index must be an integer in [0, ${MAX_DEPOSIT_INDEX}] (non-hardened), got ${index}`);
  }
  return parentNode(xpub).deriveChild(index).address;
}
