/**
 * Deposit scanning throughput: 10,000 blocks holding 50,000 Transfer logs to
 * 1,000 deposit addresses, read by the LogScanner through the ethers
 * ChainClient, against the same logs read by a bare eth_getLogs loop (plain
 * fetch, same ranges, same filters, same address chunks): the ceiling the RPC
 * allows. Both run in the same process against the same node, alternately,
 * best of ROUNDS each, so the ratio holds on a noisy machine.
 *
 * All 1,000 addresses go in one query (the adapter's default chunk is 500,
 * for hosted RPCs' limits): ganache's cost is per log scanned and query, not
 * per address in the list, so one chunk halves both sides' time.
 *
 * How the chain is built (ganache 7.9 in-process, on 127.0.0.1):
 * - a TransferSpray contract (test-tokens.contracts.ts) stands in for the
 *   token: one call emits a Transfer log per address it is given, without
 *   moving balances, so 100 deposits cost one transaction;
 * - 500 such transactions, each mined in its own block and followed by
 *   19 empty blocks (evm_mine { blocks: 19 }), give 10,000 blocks with
 *   100 transfers in every 20th block;
 * - the 1,000 recipients are derived from an xpub like real deposit
 *   addresses; each receives 50 transfers.
 *
 * Run: npx tsc -p tsconfig.build.json && node dist/bench/chain.bench.js
 */
import { HDNodeWallet, Mnemonic, toQuantity, zeroPadValue } from 'ethers';
import { EthersChainClient, LogScanner, TRANSFER_TOPIC, deriveDepositAddress, startCursor } from '../libs/chain/src/index.js';
import { LocalChain, sprayInterface } from '../libs/chain/src/testing/ganache.local-chain.js';

const BLOCKS = 10_000;
const ADDRESSES = 1_000;
const PER_TX = 100;
const TXS = 500;
const GAP = BLOCKS / TXS - 1;
const RANGE = 2_000;
const CHUNK = 1_000;
const ROUNDS = 3;

const out = (line: string): void => {
  process.stdout.write(line + '\n');
};

async function main(): Promise<void> {
  const t0 = performance.now();
  const chain = await LocalChain.start();
  const xpub = HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase('test test test test test test test test test test test junk'), "m/44'/60'/0'/0").neuter()
    .extendedKey;
  const addresses = Array.from({ length: ADDRESSES }, (_, i) => deriveDepositAddress(xpub, i));
  const spray = await chain.deploy('TransferSpray', [6]);
  const from = (await chain.head()) + 1;
  for (let i = 0; i < TXS; i++) {
    const start = (i * PER_TX) % ADDRESSES;
    const batch = addresses.slice(start, start + PER_TX);
    await chain.send(chain.wallets[0]!, spray, sprayInterface.encodeFunctionData('spray', [batch, 1_000_000n]), 1_500_000n);
    await chain.mine(GAP);
  }
  const to = await chain.head();
  const blocks = to - from + 1;
  out(`chain built: blocks ${from}..${to} (${blocks}), ${TXS * PER_TX} transfers to ${ADDRESSES} addresses, in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // Finality far behind: the scanner keeps no hashes for the bulk and records only the newest few, as in a catch-up.
  const client = new EthersChainClient({ chainId: chain.chainId, rpcUrls: [chain.url], useFinalizedTag: false, finalityDepth: 12, addressChunkSize: CHUNK });

  const scanOnce = async (): Promise<{ ms: number; transfers: number }> => {
    const scanner = new LogScanner(client, { tokens: [spray], maxBlockRange: RANGE });
    let cursor = startCursor(from);
    let transfers = 0;
    const t = performance.now();
    for (;;) {
      const step = await scanner.step(cursor, addresses);
      transfers += step.transfers.length;
      cursor = step.newCursor;
      if (step.caughtUp) break;
    }
    return { ms: performance.now() - t, transfers };
  };

  const topics = addresses.map((a) => zeroPadValue(a.toLowerCase(), 32));
  const rawOnce = async (): Promise<{ ms: number; transfers: number }> => {
    let transfers = 0;
    let id = 1;
    const t = performance.now();
    for (let start = from; start <= to; start += RANGE) {
      const end = Math.min(to, start + RANGE - 1);
      for (let c = 0; c < topics.length; c += CHUNK) {
        const body = JSON.stringify({
          jsonrpc: '2.0',
          id: id++,
          method: 'eth_getLogs',
          params: [{ fromBlock: toQuantity(start), toBlock: toQuantity(end), address: [spray], topics: [TRANSFER_TOPIC, null, topics.slice(c, c + CHUNK)] }],
        });
        const res = await fetch(chain.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        transfers += ((await res.json()) as { result: unknown[] }).result.length;
      }
    }
    return { ms: performance.now() - t, transfers };
  };

  let bestScan = Number.POSITIVE_INFINITY;
  let bestRaw = Number.POSITIVE_INFINITY;
  for (let r = 0; r < ROUNDS; r++) {
    const raw = await rawOnce();
    const scan = await scanOnce();
    if (raw.transfers !== TXS * PER_TX || scan.transfers !== TXS * PER_TX) {
      throw new Error(`expected ${TXS * PER_TX} transfers, raw read ${raw.transfers}, scanner ${scan.transfers}`);
    }
    bestRaw = Math.min(bestRaw, raw.ms);
    bestScan = Math.min(bestScan, scan.ms);
    out(`round ${r + 1}: bare eth_getLogs ${raw.ms.toFixed(0)} ms, scanner ${scan.ms.toFixed(0)} ms`);
  }
  const rate = (ms: number) => `${((blocks / ms) * 1000).toFixed(0)} blocks/s, ${(((TXS * PER_TX) / ms) * 1000).toFixed(0)} transfers/s`;
  out(`ceiling (bare eth_getLogs loop, ${RANGE}-block ranges, ${CHUNK}-address chunks): ${rate(bestRaw)}`);
  out(`scanner (LogScanner + EthersChainClient, same ranges and chunks):        ${rate(bestScan)}`);
  out(`scanner / ceiling: ${(bestRaw / bestScan).toFixed(2)}`);

  client.close();
  await chain.close();
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
