/**
 * A restarted consumer resumes from a persisted snapshot of its watch: every
 * decision after the restore must be the one the watch that never stopped takes.
 */
import { InMemoryChain, type MemoryTransfer } from './adapters/memory.chain-client.js';
import { type DepositDecisions, DepositWatch, chainViewOf, creditRefOf } from './deposit-watch.js';
import { LogScanner, type ScanCursor, startCursor } from './log-scanner.js';

const TOKEN = '0x' + 'aa'.repeat(20);
const FROM = '0x' + 'cc'.repeat(20);
const A = '0x' + '01'.repeat(20);
const B = '0x' + '02'.repeat(20);
const pay = (to: string, amount: bigint, txHash?: string): MemoryTransfer => ({ token: TOKEN, from: FROM, to, amount, ...(txHash ? { txHash } : {}) });

/** Applies decisions as the consumer does: credits and reversals go through, finals are forgotten. */
function apply(w: DepositWatch, d: DepositDecisions): void {
  for (const c of d.credit) w.credited(c.identity, creditRefOf(c.transfer));
  for (const r of d.reverse) w.reversed(r.identity, r.credit);
  w.forget(d.final);
}

describe('DepositWatch snapshot', () => {
  it('restores to a watch that decides exactly as the one that never stopped, through credit, relocation, reversal and a blocked comeback', async () => {
    const chain = new InMemoryChain({ finalityDepth: 6 });
    chain.setDecimals(TOKEN, 6);
    const scanner = new LogScanner(chain, { tokens: [TOKEN], maxBlockRange: 50, reorgWindow: 32 });
    let cursor: ScanCursor = startCursor(1);
    const live = new DepositWatch({ confirmations: 1 });
    let restored = new DepositWatch({ confirmations: 1 });
    const decisions: DepositDecisions[] = [];

    const step = async () => {
      const s = await scanner.step(cursor, [A, B]);
      cursor = s.newCursor;
      // Through JSON, as the consumer stores it.
      restored = DepositWatch.restore({ confirmations: 1 }, JSON.parse(JSON.stringify(restored.snapshot())));
      for (const w of [live, restored]) w.observe(s);
      const dl = live.assess(chainViewOf(s));
      const dr = restored.assess(chainViewOf(s));
      expect(dr).toEqual(dl);
      apply(live, dl);
      apply(restored, dr);
      decisions.push(dl);
    };

    chain.mine([pay(A, 5_000_000n, '0x' + '11'.repeat(32)), pay(B, 7_000_000n, '0x' + '22'.repeat(32))]);
    await step();
    expect(decisions.at(-1)!.credit).toHaveLength(2);

    // A's transaction is mined again one block later; B's disappears.
    chain.reorg(1, [[], [pay(A, 5_000_000n, '0x' + '11'.repeat(32))]]);
    await step();
    expect(decisions.at(-1)!.relocated).toHaveLength(1);
    expect(decisions.at(-1)!.reverse).toHaveLength(1);

    // B's transaction comes back at the same log index: the ledger key it was reversed under.
    chain.mine([pay('0x' + '03'.repeat(20), 1n), pay(B, 7_000_000n, '0x' + '22'.repeat(32))]);
    await step();
    expect(decisions.at(-1)!.credit).toHaveLength(0);
    expect(decisions.at(-1)!.blocked).toHaveLength(1);

    chain.mineEmpty(10);
    await step();
    expect(live.size).toBe(0);
    expect(restored.snapshot()).toEqual(live.snapshot());
  });

  it('refuses a snapshot that is not one', () => {
    expect(() => DepositWatch.restore({ confirmations: 1 }, { v: 1, entries: [{ identity: 'x', sightings: [{ amount: 1.5 }], credits: [] }], orphaned: [], reversedKeys: [] })).toThrow();
  });
});
