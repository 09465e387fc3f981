/**
 * Deposits end to end on a real local chain (ganache over HTTP): the ethers
 * client, the scanner, the watch, and the account decider folding the
 * resulting commands. Only the bus and the event store are left out (they
 * are not this lib's). Reorgs are real: evm_snapshot / evm_revert, then a
 * different history mined on top.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HDNodeWallet, Mnemonic } from 'ethers';
import { EthersChainClient } from './adapters/ethers.chain-client.js';
import { type ChainConfig, parseChainsConfig, scannerOptionsFor } from './chain.config.js';
import { deriveDepositAddress } from './deposit-address.js';
import { ScanCursorSchema } from './log-scanner.js';
import { withRetry } from './retry.backoff.js';
import { DepositHarness } from './testing/deposit-harness.fixture.js';
import { forwarderInterface, LocalChain } from './testing/ganache.local-chain.js';
import { type RpcProxy, startRpcProxy } from './testing/json-rpc.proxy.js';

const XPUB = HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase('test test test test test test test test test test test junk'), "m/44'/60'/0'/0").neuter()
  .extendedKey;
let nextIndex = 0;
/** Fresh deposit addresses per test, so tests share a chain without seeing each other's deposits. */
const accounts = (n: number) => Array.from({ length: n }, () => deriveDepositAddress(XPUB, nextIndex++));

let chain: LocalChain;
let proxy: RpcProxy;
let config: ChainConfig;
let usdt: string;
let usdc18: string;
let forwarder: string;
const clients: EthersChainClient[] = [];
let tmp: string;

function client(url = chain.url): EthersChainClient {
  const c = new EthersChainClient({
    chainId: config.chainId,
    rpcUrls: [url],
    useFinalizedTag: config.useFinalizedTag,
    finalityDepth: config.finalityDepth,
    requestTimeoutMs: 2000,
  });
  clients.push(c);
  return c;
}

async function harness(addresses: string[], over: { url?: string; maxBlockRange?: number; maxBlocksPerStep?: number } = {}, ledger?: DepositHarness['ledger']) {
  return new DepositHarness(
    client(over.url),
    addresses,
    {
      ...scannerOptionsFor(config),
      ...(over.maxBlockRange ? { maxBlockRange: over.maxBlockRange } : {}),
      maxBlocksPerStep: over.maxBlocksPerStep,
      startBlock: (await chain.head()) + 1,
      decimals: new Map(config.tokens.map((t) => [t.contract, t.decimals])),
    },
    ledger,
  );
}

const credits = (h: DepositHarness, address: string) => h.ledger.events(address).filter((e) => e.type === 'DepositCredited');
const reversals = (h: DepositHarness, address: string) => h.ledger.events(address).filter((e) => e.type === 'DepositReversed');

beforeAll(async () => {
  chain = await LocalChain.start();
  proxy = await startRpcProxy(chain.url);
  tmp = mkdtempSync(join(tmpdir(), 'nexo-chain-'));
  usdt = await chain.deployToken('USDT', 6);
  usdc18 = await chain.deployToken('USDC', 18);
  forwarder = await chain.deploy('Forwarder', []);
  await chain.transfer(usdt, chain.wallets[0]!, forwarder, 10n ** 12n);
  await chain.transfer(usdt, chain.wallets[0]!, chain.wallets[1]!.address, 10n ** 12n);
  [config] = parseChainsConfig([
    {
      slug: 'local',
      rpcUrls: [chain.url],
      tokens: [
        { symbol: 'USDT', contract: usdt, decimals: 6 },
        { symbol: 'USDC', contract: usdc18, decimals: 18 },
      ],
    },
  ]) as [ChainConfig];
});

afterAll(async () => {
  for (const c of clients) c.close();
  await proxy.close();
  await chain.close();
  rmSync(tmp, { recursive: true, force: true });
});

afterEach(() => {
  proxy.down = false;
  proxy.maxLogRange = undefined;
  proxy.downAfterLogs = undefined;
});

describe('deposits on a local chain', () => {
  it('credits a single deposit after one confirmation, exactly once (I4), 6-decimal units 1:1 in micro-USD', async () => {
    const [a] = accounts(1) as [string];
    const h = await harness([a]);
    const sent = await chain.transfer(usdt, chain.wallets[0]!, a, 25_500_000n);
    const r = await chain.minedReceipt(sent.hash);
    await h.poll();
    expect(h.ledger.balance(a)).toBe(25_500_000n);
    await chain.mine(3);
    await h.poll();
    expect(credits(h, a).map((e) => e.data)).toEqual([
      expect.objectContaining({ txHash: sent.hash, logIndex: 0, blockNumber: r.blockNumber, blockHash: r.blockHash, amount: '25500000', token: usdt }),
    ]);
  });

  it('credits an 18-decimal token in micro-USD and records the dust it drops', async () => {
    const [a] = accounts(1) as [string];
    const h = await harness([a]);
    await chain.transfer(usdc18, chain.wallets[0]!, a, 10_123_456_789_000_000_000n);
    await h.poll();
    expect(h.ledger.balance(a)).toBe(10_123_456n);
    expect(credits(h, a)[0]!.data).toMatchObject({ amount: '10123456', truncatedUnits: '789000000000' });
  });

  it('credits many deposits of one block to several accounts, including ones paid out by a contract', async () => {
    const [a, b, c] = accounts(3) as [string, string, string];
    const h = await harness([a, b, c]);
    await chain.pauseMining();
    await chain.transfer(usdt, chain.wallets[0]!, a, 1_000_000n);
    await chain.transfer(usdc18, chain.wallets[0]!, b, 2n * 10n ** 18n);
    await chain.send(chain.wallets[1]!, forwarder, forwarderInterface.encodeFunctionData('forward', [usdt, [c, a], [3_000_000n, 4_000_000n]]), 300_000n);
    await chain.mine();
    await chain.resumeMining();
    await h.poll();
    expect([h.ledger.balance(a), h.ledger.balance(b), h.ledger.balance(c)]).toEqual([5_000_000n, 2_000_000n, 3_000_000n]);
    const all = [a, b, c].flatMap((x) => credits(h, x).map((e) => e.data));
    expect(all).toHaveLength(4);
    expect(new Set(all.map((d) => d.blockNumber)).size).toBe(1);
    expect(new Set(all.map((d) => `${d.txHash}:${d.logIndex}`)).size).toBe(4);
  });

  it('reverses a credited transfer that a reorg removed (I1: balance back to what the chain holds)', async () => {
    const [a] = accounts(1) as [string];
    const h = await harness([a]);
    const snap = await chain.snapshot();
    const sent = await chain.transfer(usdt, chain.wallets[0]!, a, 7_000_000n);
    const r = await chain.minedReceipt(sent.hash);
    await h.poll();
    expect(h.ledger.balance(a)).toBe(7_000_000n);

    await chain.revert(snap);
    await chain.mine(3);
    const steps = await h.poll();
    expect(steps.flatMap((s) => s.reorgedBlocks)).toContainEqual({ number: r.blockNumber, hash: r.blockHash });
    expect(h.ledger.balance(a)).toBe(0n);
    expect(reversals(h, a).map((e) => e.data)).toEqual([expect.objectContaining({ txHash: sent.hash, logIndex: 0 })]);
  });

  it('credits once a transfer mined again in another block, at another logIndex, after a reorg', async () => {
    const [a, b] = accounts(2) as [string, string];
    const h = await harness([a, b]);
    const snap = await chain.snapshot();
    const x = await chain.signTransfer(usdt, chain.wallets[0]!, a, 9_000_000n);
    await chain.sendRaw(x.raw);
    const first = await chain.minedReceipt(x.hash);
    await h.poll();
    expect(h.ledger.balance(a)).toBe(9_000_000n);

    // The other history: an empty block, then a block where another deposit comes first and the same signed transaction after it.
    await chain.revert(snap);
    await chain.mine();
    await chain.pauseMining();
    await chain.transfer(usdt, chain.wallets[1]!, b, 1_000_000n);
    await chain.sendRaw(x.raw);
    await chain.mine();
    await chain.resumeMining();
    const again = await chain.minedReceipt(x.hash);
    expect(again.blockNumber).toBe(first.blockNumber + 1);

    const steps = await h.poll();
    expect(steps.flatMap((s) => s.reorgedBlocks)).toContainEqual({ number: first.blockNumber, hash: first.blockHash });
    const moved = h.relocated.find((r) => r.to.txHash === x.hash)!;
    expect(moved.to.logIndex).toBe(1);
    expect(moved.from.logIndex).toBe(0);
    expect(h.ledger.balance(a)).toBe(9_000_000n);
    expect(credits(h, a)).toHaveLength(1);
    expect(reversals(h, a)).toEqual([]);
    expect(h.ledger.balance(b)).toBe(1_000_000n);
  });

  it('waits out an RPC outage and resumes from its cursor without gap or double', async () => {
    const [a] = accounts(1) as [string];
    const h = await harness([a], { url: proxy.url, maxBlocksPerStep: 3 });
    for (let i = 1; i <= 4; i++) await chain.transfer(usdt, chain.wallets[0]!, a, BigInt(i) * 1_000_000n);
    await h.poll();
    proxy.down = true;
    for (let i = 5; i <= 9; i++) await chain.transfer(usdt, chain.wallets[0]!, a, BigInt(i) * 1_000_000n);
    const failures: number[] = [];
    await withRetry(() => h.poll(), {
      initialMs: 20,
      onRetry: (_e, attempt) => {
        failures.push(attempt);
        if (attempt === 2) proxy.down = false;
      },
    });
    expect(failures).toEqual([1, 2]);
    expect(h.ledger.balance(a)).toBe(45_000_000n);
    expect(credits(h, a)).toHaveLength(9);
    expect(h.duplicates).toEqual([]);
  });

  it('reads ranges an RPC refuses in halves, down to what it accepts', async () => {
    const [a, b] = accounts(2) as [string, string];
    const h = await harness([a, b], { url: proxy.url, maxBlockRange: 64 });
    for (let i = 0; i < 12; i++) await chain.transfer(usdt, chain.wallets[0]!, i % 2 ? a : b, 1_000_000n);
    await chain.mine(20);
    proxy.maxLogRange = 3;
    await h.poll();
    expect([h.ledger.balance(a), h.ledger.balance(b)]).toEqual([6_000_000n, 6_000_000n]);
    expect(h.scanner.currentRange).toBeLessThanOrEqual(3);
  });

  it('restarted in the middle of a range, continues from its persisted cursor: each deposit credited once', async () => {
    const [a, b] = accounts(2) as [string, string];
    const file = join(tmp, 'cursor.json');
    const first = await harness([a, b], { url: proxy.url, maxBlockRange: 16, maxBlocksPerStep: 16 });
    writeFileSync(file, JSON.stringify(first.cursor));
    const amounts = Array.from({ length: 30 }, (_, i) => BigInt(i + 1) * 100_000n);
    for (const [i, amount] of amounts.entries()) await chain.transfer(usdt, chain.wallets[0]!, i % 2 ? a : b, amount);
    proxy.maxLogRange = 4;

    // The listener persists its cursor after each step, and dies in the middle of the second step's sub-ranges.
    proxy.downAfterLogs = 8;
    let crashed = false;
    while (!crashed) {
      try {
        await first.step();
        writeFileSync(file, JSON.stringify(first.cursor));
      } catch {
        crashed = true;
      }
    }
    const persisted = ScanCursorSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
    expect(persisted.nextBlock).toBeGreaterThan((await chain.head()) - 30);
    expect(credits(first, a).length + credits(first, b).length).toBeGreaterThan(0);

    proxy.down = false;
    const second = await harness([a, b], { url: proxy.url, maxBlockRange: 16, maxBlocksPerStep: 16 }, first.ledger);
    second.cursor = persisted;
    await second.poll();
    const paid = (odd: boolean) => amounts.filter((_, i) => (i % 2 === 1) === odd).reduce((s, x) => s + x, 0n);
    expect([second.ledger.balance(a), second.ledger.balance(b)]).toEqual([paid(true), paid(false)]);
    expect(credits(second, a).length + credits(second, b).length).toBe(30);
    expect(second.duplicates).toEqual([]);
  });
});
