/**
 * The listener and the deposit consumer wired together over the in-process
 * bus and an SQLite store, on the in-memory chain (reorgs, outages and range
 * limits on demand). The ganache tests in ../test cover a real node and HTTP.
 */
import { BusError, type MessageBus, type OutgoingMessage } from '#bus';
import { type ChainConfig, InMemoryChain, parseChainsConfig } from '#chain';
import { DepositNode } from './testing/deposit-node.fixture.js';

const USDT = '0x' + 'aa'.repeat(20);
const USDC18 = '0x' + 'bb'.repeat(20);
const PAYER = '0x' + 'cc'.repeat(20);

function setup(listenerOptions = {}) {
  const client = new InMemoryChain({ finalityDepth: 6 });
  client.setDecimals(USDT, 6);
  client.setDecimals(USDC18, 18);
  const [chain] = parseChainsConfig([
    {
      slug: 'local',
      rpcUrls: ['http://127.0.0.1:1'],
      finalityDepth: 6,
      pollIntervalMs: 100,
      startBlock: 1,
      tokens: [
        { symbol: 'USDT', contract: USDT, decimals: 6 },
        { symbol: 'USDC', contract: USDC18, decimals: 18 },
      ],
    },
  ]) as [ChainConfig];
  return { client, node: new DepositNode(chain, client, listenerOptions) };
}

const credits = async (node: DepositNode, account: string) => (await node.accountEvents(account)).filter((e) => e.type === 'DepositCredited');
const reversals = async (node: DepositNode, account: string) => (await node.accountEvents(account)).filter((e) => e.type === 'DepositReversed');

async function pollUntilCaughtUp(node: DepositNode): Promise<void> {
  for (let i = 0; i < 100; i++) if ((await node.listener!.step()).caughtUp) break;
  await node.settled();
}

describe('chain listener and deposit consumer', () => {
  let node: DepositNode;
  afterEach(async () => {
    await node.dispose();
  });

  it('credits each transfer once across listener and consumer restarts: no gap, no double (I4)', async () => {
    const s = setup();
    node = s.node;
    const a = await node.openAccount('acc_a');
    node.newListener();
    await node.startConsumer();
    s.client.mine([{ token: USDT, from: PAYER, to: a, amount: 1_000_000n }]);
    await pollUntilCaughtUp(node);
    expect(node.balance('acc_a')).toBe(1_000_000n);

    // Published but the cursor not saved (a crash in between): the step is read and published again.
    s.client.mine([{ token: USDT, from: PAYER, to: a, amount: 2_000_000n }]);
    const save = node.db.prepare('UPDATE chain_cursors SET cursor = ? WHERE chain_id = 1337');
    const before = node.db.prepare<[], { cursor: string }>('SELECT cursor FROM chain_cursors').get()!.cursor;
    await node.listener!.step();
    save.run(before);
    await node.restart();
    s.client.mine([{ token: USDT, from: PAYER, to: a, amount: 4_000_000n }]);
    s.client.mineEmpty(3);
    node.newListener();
    await node.startConsumer();
    await pollUntilCaughtUp(node);

    expect(node.balance('acc_a')).toBe(7_000_000n);
    const keys = (await credits(node, 'acc_a')).map((e) => e.type === 'DepositCredited' && `${e.data.txHash}:${e.data.logIndex}`);
    expect(keys).toHaveLength(3);
    expect(new Set(keys).size).toBe(3);
  });

  it('survives an RPC outage: steps fail without moving the cursor, the loop backs off and resumes', async () => {
    const s = setup({ maxBackoffMs: 150 });
    node = s.node;
    const a = await node.openAccount('acc_a');
    node.newListener();
    await node.startConsumer();
    await node.listener!.step();
    s.client.down = true;
    node.listener!.start();
    s.client.mine([{ token: USDT, from: PAYER, to: a, amount: 3_000_000n }]);
    await new Promise((r) => setTimeout(r, 400));
    expect(node.listener!.lastError).toMatch(/connection refused/);
    expect(node.balance('acc_a')).toBe(0n);
    s.client.down = false;
    for (let i = 0; i < 100 && node.balance('acc_a') === 0n; i++) {
      await new Promise((r) => setTimeout(r, 20));
      await node.caughtUp();
    }
    expect(node.balance('acc_a')).toBe(3_000_000n);
    expect(node.logs.some((l) => l.includes('chain listener step failed'))).toBe(true);
  });

  it('keeps its cursor while the bus refuses its steps (Kafka down), and credits the transfer once when the bus takes them again', async () => {
    let refusing = false;
    let refused = 0;
    // The listener's bus: the fixture's, refusing to publish while `refusing`, as the Kafka adapter does with no broker.
    const bus = {
      publish: (topic: string, messages: readonly OutgoingMessage[]) => {
        if (!refusing) return node.bus.publish(topic, messages);
        refused++;
        return Promise.reject(new BusError('unavailable', 'kafka: publishing 1 message(s) to nexo.chain.transfers failed: Closed connection'));
      },
    } as unknown as MessageBus;
    const s = setup({ maxBackoffMs: 150, bus });
    node = s.node;
    const a = await node.openAccount('acc_a');
    node.newListener();
    await node.startConsumer();
    await node.listener!.step();
    const before = await node.listener!.cursor();
    refusing = true;
    node.listener!.start();
    s.client.mine([{ token: USDT, from: PAYER, to: a, amount: 3_000_000n }]);
    for (let i = 0; i < 100 && refused < 3; i++) await new Promise((r) => setTimeout(r, 20));
    expect(refused).toBeGreaterThanOrEqual(3);
    expect(node.listener!.lastError).toMatch(/Closed connection/);
    expect(await node.listener!.cursor()).toEqual(before);
    expect(node.balance('acc_a')).toBe(0n);
    refusing = false;
    for (let i = 0; i < 100 && node.balance('acc_a') === 0n; i++) {
      await new Promise((r) => setTimeout(r, 20));
      await node.caughtUp();
    }
    expect(node.balance('acc_a')).toBe(3_000_000n);
    await pollUntilCaughtUp(node);
    expect(await credits(node, 'acc_a')).toHaveLength(1);
  });

  it('splits a range the node refuses and credits everything in it, 18-decimal dust recorded', async () => {
    const s = setup();
    node = s.node;
    const a = await node.openAccount('acc_a');
    for (let i = 0; i < 12; i++) s.client.mine(i % 4 === 0 ? [{ token: USDC18, from: PAYER, to: a, amount: 1_000_000_123_000_000_000n }] : []);
    s.client.maxLogRange = 2;
    node.newListener();
    await node.startConsumer();
    await pollUntilCaughtUp(node);
    expect(node.balance('acc_a')).toBe(3_000_000n);
    expect((await credits(node, 'acc_a')).map((e) => e.type === 'DepositCredited' && e.data.truncatedUnits)).toEqual([
      '123000000000',
      '123000000000',
      '123000000000',
    ]);
  });

  it('does not miss a deposit to an address assigned after the step read its address list', async () => {
    let known: string[] = [];
    const s = setup({ addresses: () => known });
    node = s.node;
    const a = await node.openAccount('acc_a');
    const b = await node.openAccount('acc_b');
    known = [a.toLowerCase()];
    node.newListener();
    await node.startConsumer();
    await node.listener!.step();
    // B is assigned and paid between the listener reading its list and reading the head.
    s.client.mine([{ token: USDT, from: PAYER, to: b, amount: 5_000_000n }]);
    await node.listener!.step();
    known = [a.toLowerCase(), b.toLowerCase()];
    await pollUntilCaughtUp(node);
    expect(node.balance('acc_b')).toBe(5_000_000n);
  });

  it('reverses a credit whose block a reorg removed, with the watch restored after a restart (I4)', async () => {
    const s = setup();
    node = s.node;
    const a = await node.openAccount('acc_a');
    node.newListener();
    await node.startConsumer();
    s.client.mine([{ token: USDT, from: PAYER, to: a, amount: 9_000_000n }]);
    await pollUntilCaughtUp(node);
    expect(node.balance('acc_a')).toBe(9_000_000n);
    expect(node.consumer!.watched()).toBe(1);

    await node.restart();
    s.client.reorg(1, [[], []]);
    node.newListener();
    await node.startConsumer();
    await pollUntilCaughtUp(node);
    expect(node.balance('acc_a')).toBe(0n);
    expect(await reversals(node, 'acc_a')).toHaveLength(1);
    expect(node.deposits('acc_a').map((d) => d.status)).toEqual(['reversed']);

    // Once final nothing is watched any more, and nothing more happens.
    s.client.mineEmpty(8);
    await pollUntilCaughtUp(node);
    expect(node.consumer!.watched()).toBe(0);
    expect(await reversals(node, 'acc_a')).toHaveLength(1);
  });

  it('refuses to start on a token with other decimals on chain, and does not hold up the start while the node is down', async () => {
    const s = setup();
    node = s.node;
    s.client.setDecimals(USDC18, 6);
    await expect(node.newListener().verifyAtStart(1_000)).rejects.toThrow(/USDC .* has 6 decimals on chain, config says 18/);
    s.client.setDecimals(USDC18, 18);
    s.client.down = true;
    const started = Date.now();
    await node.newListener().verifyAtStart(300);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(node.listener!.ready()).toBe(false);
    expect(node.logs.some((l) => l.includes('cannot read token decimals'))).toBe(true);
  });
});
