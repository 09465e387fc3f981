import type { ScanResult, Transfer } from '#chain';
import { ChainStepMessage, stepMessages, transfersOf } from './transfers.message.js';

const h = (n: number) => '0x' + n.toString(16).padStart(64, '0');
const t = (block: number, logIndex: number): Transfer => ({
  chainId: 56,
  token: '0x' + 'aa'.repeat(20),
  from: '0x' + 'cc'.repeat(20),
  to: '0x' + '01'.repeat(20),
  amount: 10n ** 30n + BigInt(logIndex),
  txHash: h(1000 + block),
  logIndex,
  blockNumber: block,
  blockHash: h(block),
});

function step(transfers: Transfer[]): ScanResult {
  return {
    transfers,
    newCursor: { nextBlock: 13, recent: [{ number: 12, hash: h(12) }] },
    reorgedBlocks: [{ number: 9, hash: h(99) }],
    head: 12,
    finalizedHead: 0,
    safeHead: 12,
    caughtUp: true,
    interrupted: false,
  };
}

describe('chain step messages', () => {
  it('carry a step whole when it is small, amounts beyond 2^53 exact', () => {
    const [m, ...rest] = stepMessages(56, step([t(10, 0), t(11, 0)]));
    expect(rest).toEqual([]);
    const parsed = ChainStepMessage.parse(JSON.parse(JSON.stringify(m)));
    expect(parsed).toMatchObject({ chainId: 56, head: 12, scannedTo: 12, part: 1, parts: 1, reorgedBlocks: [{ number: 9, hash: h(99) }] });
    expect(transfersOf(parsed)).toEqual([t(10, 0), t(11, 0)]);
  });

  it('split a big step into parts of whole blocks, the reorg in the first, the view in each', () => {
    const transfers = [t(10, 0), t(10, 1), t(10, 2), t(11, 0), t(12, 0), t(12, 1)];
    const parts = stepMessages(56, step(transfers), 3);
    expect(parts.map((p) => p.transfers.map((x) => x.blockNumber))).toEqual([[10, 10, 10], [11, 12, 12]]);
    expect(parts.map((p) => [p.part, p.parts, p.reorgedBlocks.length, p.scannedTo])).toEqual([
      [1, 2, 1, 12],
      [2, 2, 0, 12],
    ]);
  });

  it('keep a block larger than a part whole', () => {
    const parts = stepMessages(56, step([t(10, 0), t(10, 1), t(10, 2), t(11, 0)]), 2);
    expect(parts.map((p) => p.transfers.length)).toEqual([3, 1]);
  });

  it('are validated: a float amount or an upper-case hash is refused', () => {
    const [m] = stepMessages(56, step([t(10, 0)]));
    expect(ChainStepMessage.safeParse({ ...m, transfers: [{ ...m!.transfers[0], amount: 1.5 }] }).success).toBe(false);
    expect(ChainStepMessage.safeParse({ ...m, canonical: [{ number: 1, hash: '0x' + 'AB'.repeat(32) }] }).success).toBe(false);
  });
});
