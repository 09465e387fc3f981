/**
 * `npm run dev:deposit -- --account <account_id> --amount 10 [--token USDT|USDC]`:
 * sends a test-token transfer on the dev chain (`npm run dev:chain`) from its
 * funded development account to the account's deposit address, which it reads
 * from the embedded service's SQLite file (read-only), so nothing but the
 * account id is needed. The account must have asked for its address once
 * (GET /api/v1/deposit-address?chain=local).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { Contract, HDNodeWallet, JsonRpcProvider, Mnemonic, Network, getAddress } from 'ethers';
import { microsToTokenUnits, parseUsd } from '#domain';
import { depositAddressesOf } from '#projections';
import { EVM_FAMILY } from '../chain-listener.js';
import { DEV_CHAIN_ID, DEV_MNEMONIC, devDataDir, readDevChain } from './dev-chain.shared.js';

const out = (text: string) => process.stdout.write(`${text}\n`);
const USAGE = 'usage: npm run dev:deposit -- --account <account_id> --amount <usd> [--token USDT|USDC] [--db <read-models file>]';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { account: { type: 'string' }, amount: { type: 'string' }, token: { type: 'string', default: 'USDT' }, db: { type: 'string' } },
  });
  if (!values.account || !values.amount) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  let micros: bigint;
  try {
    micros = parseUsd(values.amount);
    if (micros <= 0n) throw new RangeError('not positive');
  } catch {
    process.stderr.write(`--amount must be a positive USD amount with at most 6 decimals, e.g. 10 or 2.5\n`);
    return 2;
  }
  const local = readDevChain();
  const token = local.tokens.find((t) => t.symbol === values.token!.toUpperCase());
  if (!token) {
    process.stderr.write(`--token must be one of ${local.tokens.map((t) => t.symbol).join(', ')}\n`);
    return 2;
  }

  const dbFile = values.db ?? process.env.NEXO_READ_MODELS_FILE ?? join(devDataDir(), 'read-models.db');
  if (!existsSync(dbFile)) {
    process.stderr.write(`no service read models at ${dbFile}: start it with NEXO_CHAINS_FILE=data/dev-chain.json npm start (or pass --db)\n`);
    return 2;
  }
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  let address: string | undefined;
  try {
    const found = depositAddressesOf(db, values.account).find((a) => a.chain === EVM_FAMILY)?.address;
    address = found === undefined ? undefined : getAddress(found);
  } finally {
    db.close();
  }
  if (!address) {
    process.stderr.write(
      `account ${values.account} has no deposit address yet; ask for it once:\n` +
        `  curl -H "Authorization: Bearer <api_key>" "http://127.0.0.1:3000/api/v1/deposit-address?chain=local"\n`,
    );
    return 1;
  }

  const network = Network.from(DEV_CHAIN_ID);
  const provider = new JsonRpcProvider(local.rpcUrls[0], network, { staticNetwork: network, cacheTimeout: -1 });
  try {
    const payer = HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(DEV_MNEMONIC)).connect(provider);
    const erc20 = new Contract(token.contract, ['function transfer(address to, uint256 value) returns (bool)'], payer);
    const units = microsToTokenUnits(micros, token.decimals);
    const tx = await erc20.getFunction('transfer')(address, units);
    const receipt = await tx.wait(1);
    out(`sent ${values.amount} ${token.symbol} (${units} base units) to ${address} for ${values.account}`);
    out(`tx ${tx.hash as string} in block ${receipt?.blockNumber}; credited after ${local.pollIntervalMs} ms at most: GET /api/v1/balance`);
  } finally {
    provider.destroy();
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`dev-deposit failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
