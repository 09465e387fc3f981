/**
 * `npm run dev:chain`: a local EVM chain for trying the whole prepaid flow on
 * one machine. Ganache on 127.0.0.1:8545 (chain id 1337) from the well-known
 * development mnemonic, a USDT test token with 6 decimals and a USDC one with
 * 18 (as on BNB Smart Chain, so the truncation of dust shows), and
 * `data/dev-chain.json`, the chains config to start the service with:
 *
 *   NEXO_CHAINS_FILE=data/dev-chain.json npm start
 *
 * Transactions are mined at once, and an empty block follows every couple of
 * seconds so that confirmations and finality move as on a real chain. The
 * chain is kept in `data/dev-chain-db`: a restart continues the same chain
 * (a fresh one would look like a reorg of everything to the service's cursor);
 * `--reset` starts over, and then delete the service's data too.
 *
 * Development only: the mnemonic is public and so are its keys.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import ganache from 'ganache';
import { ContractFactory, HDNodeWallet, JsonRpcProvider, Mnemonic, Network, NonceManager } from 'ethers';
import { testContracts } from '../../../../libs/chain/src/testing/test-tokens.contracts.js';
import { DEV_CHAIN_ID, DEV_MNEMONIC, type DevChainEntry, devChainFile, devDataDir, readDevChain } from './dev-chain.shared.js';

const out = (text: string) => process.stdout.write(`${text}\n`);

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '8545' }, 'block-seconds': { type: 'string', default: '2' }, reset: { type: 'boolean', default: false } } });
  const port = Number(values.port);
  const blockSeconds = Number(values['block-seconds']);
  const dataDir = devDataDir();
  const dbPath = join(dataDir, 'dev-chain-db');
  const configFile = devChainFile(dataDir);
  if (values.reset) {
    rmSync(dbPath, { recursive: true, force: true });
    rmSync(configFile, { force: true });
  }
  mkdirSync(dbPath, { recursive: true });

  const server = ganache.server({
    logging: { quiet: true },
    chain: { chainId: DEV_CHAIN_ID, hardfork: 'shanghai' },
    miner: { instamine: 'eager' },
    wallet: { mnemonic: DEV_MNEMONIC, totalAccounts: 5, defaultBalance: 10_000 },
    database: { dbPath },
  });
  await server.listen(port, '127.0.0.1');
  const url = `http://127.0.0.1:${port}`;
  const network = Network.from(DEV_CHAIN_ID);
  const provider = new JsonRpcProvider(url, network, { staticNetwork: network, cacheTimeout: -1 });
  const deployer = HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(DEV_MNEMONIC)).connect(provider);

  let local: DevChainEntry | undefined;
  if (existsSync(configFile)) {
    local = readDevChain(configFile);
    // Tokens of another chain (its db deleted, the config kept) are not on this one: deploy again.
    const present = await Promise.all(local.tokens.map(async (t) => (await provider.getCode(t.contract)) !== '0x'));
    if (local.tokens.length === 0 || present.includes(false)) local = undefined;
  }
  if (!local) {
    const { abi, bytecode } = testContracts().TestToken;
    const signer = new NonceManager(deployer);
    const factory = new ContractFactory(abi as never, bytecode, signer);
    const supply = 10n ** 12n;
    const usdt = await (await factory.deploy('Test Tether USD', 'USDT', 6, supply * 10n ** 6n)).waitForDeployment();
    const usdc = await (await factory.deploy('Test USD Coin (18 decimals)', 'USDC', 18, supply * 10n ** 18n)).waitForDeployment();
    local = {
      slug: 'local',
      rpcUrls: [url],
      pollIntervalMs: 1000,
      startBlock: (await provider.getBlockNumber()) + 1,
      tokens: [
        { symbol: 'USDT', contract: await usdt.getAddress(), decimals: 6 },
        { symbol: 'USDC', contract: await usdc.getAddress(), decimals: 18 },
      ],
    };
    writeFileSync(configFile, JSON.stringify([local], null, 2) + '\n');
  }

  const timer = setInterval(() => {
    provider.send('evm_mine', []).catch((e: unknown) => process.stderr.write(`mining failed: ${String(e)}\n`));
  }, blockSeconds * 1000);

  out(`local chain ${DEV_CHAIN_ID} on ${url}, block ${await provider.getBlockNumber()}; an empty block every ${blockSeconds} s`);
  for (const t of local.tokens) out(`  ${t.symbol.padEnd(5)} ${t.contract} (${t.decimals} decimals), held by ${deployer.address}`);
  out(`chains config: ${configFile}`);
  out('');
  out(`start the service:  NEXO_CHAINS_FILE=${configFile} npm start`);
  out(`sign up, then ask:  curl -H "Authorization: Bearer <api_key>" "http://127.0.0.1:3000/api/v1/deposit-address?chain=local"`);
  out(`send a deposit:     npm run dev:deposit -- --account <account_id> --amount 10`);

  const stop = async () => {
    clearInterval(timer);
    provider.destroy();
    await server.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((error: unknown) => {
  process.stderr.write(`dev-chain failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
