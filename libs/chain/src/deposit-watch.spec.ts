import fc from 'fast-check';
import { type AccountState, decideAccount, evolveAccount, initialAccountState } from '#domain';
import { InMemoryChain, type MemoryTransfer } from './adapters/memory.chain-client.js';
import type { Transfer } from './chain-client.port.js';
import { creditDepositCommand } from './deposit.commands.js';
import { type ChainView, type WatchedDeposit, assessDeposits, creditRefOf, withIdentities } from './deposit-watch.js';
import { DepositHarness } from './testing/deposit-harness.fixture.js';

const AT = '2025-01-01T00:00:00Z';
const TOKEN = '0x' + 'aa'.repeat(20);
const ME = '0x0000000000000000000000000000000000000001';
const h = (n: number, fork = 'a') => '0x' + `${fork}${n}`.padStart(64, '0');

function transfer(over: Partial<Transfer> = {}): Transfer {
  return {
    chainId: 1337,
    token: '0xaAaAaAaaAaAaAaaAaAAAAAAAAaaaAaAaAaaAaaAa',
    from: '0x' + 'cc'.repeat(20),
    to: ME,
    amount: 5_000_000n,
    txHash: '0x' + '77'.repeat(32),
    logIndex: 0,
    blockNumber: 10,
    blockHash: h(10),
    ...over,
  };
}

function view(over: Partial<ChainView> & { hashes?: Record<number, string> } = {}): ChainView {
  const { hashes = {}, ...rest } = over;
  return {
    head: 10,
    finalizedHead: 0,
    scannedTo: 10,
    canonical: new Map(Object.entries(hashes).map(([n, x]) => [Number(n), x])),
    orphaned: new Set(),
    ...rest,
  };
}

const entry = (sightings: Transfer[], credits: WatchedDeposit['credits'] = []): WatchedDeposit => ({
  identity: withIdentities([sightings[0]!])[0]!.identity,
  sightings,
  credits,
});
const credited = (t: Transfer, reversed = false) => ({ ...creditRefOf(t), reversed });

describe('deposit watch: when to credit', () => {
  it('credits a canonical transfer once it has the confirmations, not before', () => {
    const t = transfer({ blockNumber: 10 });
    const e = entry([t]);
    expect(assessDeposits([e], view({ head: 11, hashes: { 10: h(10) } }), { confirmations: 3 }).credit).toEqual([]);
    expect(assessDeposits([e], view({ head: 12, hashes: { 10: h(10) } }), { confirmations: 3 }).credit).toEqual([{ identity: e.identity, transfer: t }]);
  });

  it('I4: does not credit what is credited already', () => {
    const t = transfer();
    const d = assessDeposits([entry([t], [credited(t)])], view({ hashes: { 10: h(10) } }), { confirmations: 1 });
    expect(d.credit).toEqual([]);
    expect(d.reverse).toEqual([]);
  });

  it('gives equal transfers in one transaction distinct identities, and a re-mined one its old identity', () => {
    const a = transfer({ logIndex: 3 });
    const b = transfer({ logIndex: 5 });
    const [ia, ib] = withIdentities([b, a]).map((x) => x.identity);
    expect(ia).not.toBe(ib);
    const again = withIdentities([transfer({ logIndex: 0, blockNumber: 12, blockHash: h(12, 'b') }), transfer({ logIndex: 2, blockNumber: 12, blockHash: h(12, 'b') })]);
    expect(again.map((x) => x.identity)).toEqual([ia, ib]);
  });
});

describe('deposit watch: reorgs', () => {
  const t = transfer({ blockNumber: 10, blockHash: h(10, 'a') });

  it('reverses a credit whose block left the chain when the transfer is nowhere on the new chain', () => {
    const d = assessDeposits([entry([t], [credited(t)])], view({ head: 12, scannedTo: 12, hashes: { 10: h(10, 'b') } }), { confirmations: 1 });
    expect(d.reverse).toEqual([{ identity: expect.any(String), credit: creditRefOf(t), reason: expect.stringMatching(/left the canonical chain/) }]);
    expect(d.credit).toEqual([]);
  });

  it('waits for the scanner to read the new chain up to the old height before reversing', () => {
    const orphaned = new Set([`10:${h(10, 'a')}`]);
    const d = assessDeposits([entry([t], [credited(t)])], view({ head: 12, scannedTo: 9, orphaned }), { confirmations: 1 });
    expect(d.reverse).toEqual([]);
  });

  it('keeps the credit of a transfer mined again in another block under another logIndex: credited once', () => {
    const moved = transfer({ blockNumber: 11, blockHash: h(11, 'b'), logIndex: 4 });
    const e = entry([t, moved], [credited(t)]);
    const d = assessDeposits([e], view({ head: 11, scannedTo: 11, hashes: { 10: h(10, 'b'), 11: h(11, 'b') } }), { confirmations: 1 });
    expect(d.credit).toEqual([]);
    expect(d.reverse).toEqual([]);
    expect(d.relocated).toEqual([{ identity: e.identity, credit: creditRefOf(t), now: moved }]);
  });

  it('credits again under the new key a transfer that comes back after its reversal', () => {
    const back = transfer({ blockNumber: 15, blockHash: h(15, 'b'), logIndex: 2 });
    const d = assessDeposits([entry([t, back], [credited(t, true)])], view({ head: 15, scannedTo: 15, hashes: { 10: h(10, 'b'), 15: h(15, 'b') } }), {
      confirmations: 1,
    });
    expect(d.credit.map((c) => c.transfer)).toEqual([back]);
  });

  it('reports, instead of hiding, a comeback under the very key that was reversed (I4 refuses it)', () => {
    const back = transfer({ blockNumber: 15, blockHash: h(15, 'b'), logIndex: 0 });
    const d = assessDeposits([entry([t, back], [credited(t, true)])], view({ head: 15, scannedTo: 15, hashes: { 10: h(10, 'b'), 15: h(15, 'b') } }), {
      confirmations: 1,
    });
    expect(d.credit).toEqual([]);
    expect(d.blocked.map((b) => b.transfer)).toEqual([back]);
  });
});

describe('deposit watch: finality', () => {
  it('stops watching a credit once its block is final, and a transfer seen only in orphaned blocks once those heights are final', () => {
    const kept = transfer();
    const lost = transfer({ txHash: '0x' + '88'.repeat(32), blockHash: h(10, 'x') });
    const e1 = entry([kept], [credited(kept)]);
    const e2 = entry([lost], [credited(lost, true)]);
    const orphaned = new Set([`10:${h(10, 'x')}`]);
    expect(assessDeposits([e1, e2], view({ head: 30, scannedTo: 30, finalizedHead: 9, orphaned }), { confirmations: 1 }).final).toEqual([]);
    expect(assessDeposits([e1, e2], view({ head: 30, scannedTo: 30, finalizedHead: 10, orphaned }), { confirmations: 1 }).final).toEqual([e1.identity, e2.identity]);
  });
});

describe('deposit commands: token units to micro-USD', () => {
  it('credits a 6-decimal token 1:1 and an 18-decimal one with its dust recorded', () => {
    let state: AccountState = evolveAccount(initialAccountState(), { type: 'AccountOpened', data: { accountId: 'acc1', name: 'x', testCredits: 0, at: AT } });
    const six = creditDepositCommand(transfer({ amount: 12_345_678n }), 6, AT);
    const eighteen = creditDepositCommand(transfer({ amount: 1_500_000_000_000_000_123n, logIndex: 1 }), 18, AT);
    expect(six).toMatchObject({ amount: '12345678' });
    expect(six).not.toHaveProperty('truncatedUnits');
    expect(eighteen).toMatchObject({ amount: '1500000', truncatedUnits: '123' });
    for (const cmd of [six, eighteen]) for (const ev of decideAccount(cmd, state)) state = evolveAccount(state, ev);
    expect(state.balance).toBe(13_845_678n);
  });
});

describe('deposit watch on a moving chain (I1, I4)', () => {
  it('property: after reorgs and re-mined transactions, each account is credited exactly what the final chain paid it', async () => {
    const ADDRS = [ME, '0x0000000000000000000000000000000000000002'];
    type Pay = { to: number; amount: number; remine: boolean };
    const payArb = fc.record({ to: fc.integer({ min: 0, max: 1 }), amount: fc.integer({ min: 1, max: 10_000 }), remine: fc.boolean() });
    const blocksArb = (max: number) => fc.array(fc.array(payArb, { maxLength: 3 }), { minLength: 1, maxLength: max });
    const opArb = fc.oneof(
      fc.record({ kind: fc.constant('mine' as const), blocks: blocksArb(3) }),
      fc.record({ kind: fc.constant('reorg' as const), depth: fc.integer({ min: 1, max: 4 }), blocks: blocksArb(5) }),
      fc.constant({ kind: 'scan' as const }),
    );

    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 2 }), async (ops, confirmations) => {
        const chain = new InMemoryChain({ finalityDepth: 8 });
        chain.mineEmpty(4);
        const token = '0xaAaAaAaaAaAaAaaAaAAAAAAAAaaaAaAaAaaAaaAa';
        const harness = new DepositHarness(chain, ADDRS, {
          tokens: [TOKEN],
          maxBlockRange: 5,
          confirmations,
          reorgWindow: 16,
          startBlock: 1,
          decimals: new Map([[token, 6]]),
        });
        let highest = chain.height;
        // Transactions dropped by a reorg, which a later block may include again (same txHash, usually another logIndex).
        const dropped: MemoryTransfer[] = [];
        const toMemory = (p: Pay): MemoryTransfer =>
          (p.remine ? dropped.shift() : undefined) ?? { token: TOKEN, from: '0x' + 'cc'.repeat(20), to: ADDRS[p.to]!, amount: BigInt(p.amount) };

        for (const op of ops) {
          if (op.kind === 'mine') for (const b of op.blocks) chain.mine(b.map(toMemory));
          else if (op.kind === 'reorg') {
            // Never below what was once final: that is what finality means.
            const depth = Math.min(op.depth, chain.height - 1, chain.height - (highest - chain.finalityDepth));
            if (depth >= 1) {
              const gone = chain.canonicalTransfers().filter((t) => t.blockNumber > chain.height - depth);
              dropped.push(...gone.map((t) => ({ token: t.token, from: t.from, to: t.to, amount: t.amount, txHash: t.txHash })));
              chain.reorg(depth, op.blocks.map((b) => b.map(toMemory)));
            }
          } else await harness.poll();
          highest = Math.max(highest, chain.height);
        }
        // Past finality of every height the chain ever had, so every question is settled.
        chain.mineEmpty(Math.max(highest - chain.height, 0) + chain.finalityDepth + confirmations);
        await harness.poll();
        await harness.poll();

        const onChain = chain.canonicalTransfers();
        const stillThere = (t: Transfer) => onChain.some((c) => c.blockHash === t.blockHash && c.logIndex === t.logIndex);
        for (const a of ADDRS) {
          const paid = onChain.filter((t) => t.to === a).reduce((s, t) => s + t.amount, 0n);
          // I4 refuses a transfer that came back under the very key that was reversed: the one loss the ledger cannot avoid.
          const refused = harness.blocked.filter((t) => t.to === a && stillThere(t)).reduce((s, t) => s + t.amount, 0n);
          expect(harness.ledger.balance(a)).toBe(paid - refused);
        }
        expect(harness.watch.size).toBe(0);
        expect(harness.duplicates).toEqual([]);
      }),
      { numRuns: 150 },
    );
  });
});
