/**
 * The scanner against the in-memory chain (the port's no-server adapter):
 * exact control of reorgs, refusals and outages. The ganache tests repeat
 * the main cases on a real node.
 */
import fc from 'fast-check';
import { InMemoryChain, type MemoryTransfer } from './adapters/memory.chain-client.js';
import { type ChainError, type Transfer } from './chain-client.port.js';
import { LogScanner, type ScanCursor, ScanCursorSchema, type ScanResult, startCursor } from './log-scanner.js';

const TOKEN = '0x' + 'aa'.repeat(20);
const OTHER_TOKEN = '0x' + 'bb'.repeat(20);
const SENDER = '0x' + 'cc'.repeat(20);
const addr = (i: number) => '0x' + (i + 1).toString(16).padStart(40, '0');
const WATCHED = [addr(0), addr(1), addr(2)];
const STRANGER = addr(99);

const pay = (to: string, amount: bigint, token = TOKEN): MemoryTransfer => ({ token, from: SENDER, to, amount });
const keyOf = (t: Transfer) => `${t.blockHash}:${t.logIndex}`;

/** Steps until caught up; returns every result. */
async function drain(scanner: LogScanner, cursor: ScanCursor, addresses = WATCHED, maxSteps = 1000): Promise<{ cursor: ScanCursor; steps: ScanResult[] }> {
  const steps: ScanResult[] = [];
  for (let i = 0; i < maxSteps; i++) {
    const r = await scanner.step(cursor, addresses);
    steps.push(r);
    cursor = r.newCursor;
    if (r.caughtUp) return { cursor, steps };
  }
  throw new Error('scanner did not catch up');
}

/** The canonical incoming transfers to the watched addresses, as the scanner should have them. */
const expected = (chain: InMemoryChain, upTo = chain.height) => {
  const watched = new Set(WATCHED);
  return chain.canonicalTransfers().filter((t) => t.blockNumber <= upTo && t.token.toLowerCase() === TOKEN && watched.has(t.to.toLowerCase()));
};

/** What a consumer holds after applying steps in order: transfers minus those in reorged blocks. */
function applySteps(steps: readonly ScanResult[], into = new Map<string, Transfer>()): Map<string, Transfer> {
  for (const s of steps) {
    const dropped = new Set(s.reorgedBlocks.map((b) => b.hash));
    for (const [k, t] of into) if (dropped.has(t.blockHash)) into.delete(k);
    for (const t of s.transfers) {
      if (into.has(keyOf(t))) throw new Error(`transfer reported twice: ${keyOf(t)}`);
      into.set(keyOf(t), t);
    }
  }
  return into;
}

describe('LogScanner', () => {
  it('reads incoming transfers of the configured tokens to the watched addresses, once, in chain order', async () => {
    const chain = new InMemoryChain({ finalityDepth: 5 });
    chain.mine([pay(WATCHED[0]!, 5n), pay(STRANGER, 7n), pay(WATCHED[1]!, 6n, OTHER_TOKEN)]);
    chain.mineEmpty(3);
    chain.mine([pay(WATCHED[2]!, 8n), pay(WATCHED[0]!, 9n)]);
    const scanner = new LogScanner(chain, { tokens: [TOKEN], maxBlockRange: 100 });

    const first = await scanner.step(startCursor(0), WATCHED);
    expect(first.transfers.map((t) => [t.to, t.amount, t.logIndex])).toEqual([
      [WATCHED[0], 5n, 0],
      [WATCHED[2], 8n, 0],
      [WATCHED[0], 9n, 1],
    ]);
    expect(first.newCursor.nextBlock).toBe(chain.height + 1);
    expect(first.caughtUp).toBe(true);
    expect(ScanCursorSchema.safeParse(first.newCursor).success).toBe(true);
    // Hashes are kept for the blocks that are not final yet, and only those.
    expect(first.newCursor.recent.map((b) => b.number)).toEqual([1, 2, 3, 4, 5]);

    const again = await scanner.step(first.newCursor, WATCHED);
    expect(again.transfers).toEqual([]);
    expect(again.reorgedBlocks).toEqual([]);
  });

  it('reads only blocks with the required confirmations', async () => {
    const chain = new InMemoryChain();
    chain.mine([pay(WATCHED[0]!, 1n)]);
    chain.mine([pay(WATCHED[0]!, 2n)]);
    chain.mine([pay(WATCHED[0]!, 3n)]);
    const scanner = new LogScanner(chain, { tokens: [TOKEN], maxBlockRange: 100, confirmations: 2 });
    const r = await scanner.step(startCursor(0), WATCHED);
    expect(r.safeHead).toBe(2);
    expect(r.transfers.map((t) => t.amount)).toEqual([1n, 2n]);
    chain.mineEmpty(1);
    expect((await scanner.step(r.newCursor, WATCHED)).transfers.map((t) => t.amount)).toEqual([3n]);
  });

  it('halves a refused range down to what the node accepts, and learns it', async () => {
    const chain = new InMemoryChain({ maxLogRange: 3 });
    for (let i = 0; i < 40; i++) chain.mine([pay(WATCHED[i % 3]!, BigInt(i))]);
    const scanner = new LogScanner(chain, { tokens: [TOKEN], maxBlockRange: 64 });
    const { steps } = await drain(scanner, startCursor(0));
    expect([...applySteps(steps).values()]).toEqual(expected(chain));
    expect(scanner.currentRange).toBeLessThanOrEqual(3);
  });

  it('splits the address list when even one block returns too many logs', async () => {
    const chain = new InMemoryChain({ maxResults: 2 });
    chain.mine(WATCHED.flatMap((a) => [pay(a, 1n), pay(a, 2n)]));
    chain.mine([pay(WATCHED[0]!, 3n)]);
    const scanner = new LogScanner(chain, { tokens: [TOKEN], maxBlockRange: 10 });
    const { steps } = await drain(scanner, startCursor(0));
    const got = [...applySteps(steps).values()];
    expect(got).toEqual(expected(chain));
    expect(got.map((t) => t.logIndex)).toEqual([0, 1, 2, 3, 4, 5, 0]);
  });

  it('fails plainly when one block for one address is still refused', async () => {
    const chain = new InMemoryChain({ maxResults: 1 });
    chain.mine([pay(WATCHED[0]!, 1n), pay(WATCHED[0]!, 2n)]);
    const scanner = new LogScanner(chain, { tokens: [TOKEN], maxBlockRange: 10 });
    await expect(scanner.step(startCursor(0), WATCHED)).rejects.toMatchObject({ code: 'range_too_large' });
  });

  it('on a reorg, reports the blocks it had read that are gone and reads the new ones from the fork point', async () => {
    const chain = new InMemoryChain({ finalityDepth: 20 });
    chain.mine([pay(WATCHED[0]!, 1n)]);
    const kept = chain.mine([pay(WATCHED[1]!, 2n)]);
    const lost1 = chain.mine([pay(WATCHED[2]!, 3n)]);
    const lost2 = chain.mine([]);
    const scanner = new LogScanner(chain, { tokens: [TOKEN], maxBlockRange: 100 });
    const first = await scanner.step(startCursor(1), WATCHED);
    expect(first.transfers.map((t) => t.amount)).toEqual([1n, 2n, 3n]);

    chain.reorg(2, [[pay(WATCHED[0]!, 30n)], [], [pay(WATCHED[1]!, 40n)]]);
    const second = await scanner.step(first.newCursor, WATCHED);
    expect(second.reorgedBlocks).toEqual([
      { number: lost1.number, hash: lost1.hash },
      { number: lost2.number, hash: lost2.hash },
    ]);
    expect(second.transfers.map((t) => [t.blockNumber, t.amount])).toEqual([
      [kept.number + 1, 30n],
      [kept.number + 3, 40n],
    ]);
    expect(second.newCursor.nextBlock).toBe(chain.height + 1);
    expect([...applySteps([first, second]).values()]).toEqual(expected(chain).filter((t) => t.blockNumber >= 1));
  });

  it('refuses to guess when a reorg goes deeper than the kept hashes and the finalized head', async () => {
    const chain = new InMemoryChain({ finalityDepth: 50 });
    chain.mineEmpty(10);
    const scanner = new LogScanner(chain, { tokens: [TOKEN], maxBlockRange: 100, reorgWindow: 3 });
    const r = await scanner.step(startCursor(0), WATCHED);
    expect(r.newCursor.recent).toHaveLength(3);
    chain.reorg(5, [[], [], [], [], [], []]);
    const err = (await scanner.step(r.newCursor, WATCHED).catch((e: unknown) => e)) as ChainError;
    expect(err.code).toBe('deep_reorg');
    expect(err.retryable).toBe(false);
  });

  it('does not take a lagging node for a reorg', async () => {
    const chain = new InMemoryChain({ finalityDepth: 20 });
    chain.mineEmpty(5);
    const scanner = new LogScanner(chain, { tokens: [TOKEN], maxBlockRange: 100 });
    const r = await scanner.step(startCursor(0), WATCHED);
    chain.lag = 3;
    const behind = await scanner.step(r.newCursor, WATCHED);
    expect(behind.reorgedBlocks).toEqual([]);
    expect(behind.transfers).toEqual([]);
    expect(behind.newCursor).toEqual(r.newCursor);
  });

  it('drops a range read while the chain changed under it, then reads it again on the new chain', async () => {
    const chain = new InMemoryChain({ finalityDepth: 20 });
    chain.mine([pay(WATCHED[0]!, 1n)]);
    chain.mine([pay(WATCHED[1]!, 2n)]);
    const scanner = new LogScanner(chain, { tokens: [TOKEN], maxBlockRange: 100 });
    chain.beforeGetLogs = () => {
      chain.beforeGetLogs = undefined;
      chain.reorg(1, [[pay(WATCHED[2]!, 3n)]]);
    };
    const torn = await scanner.step(startCursor(1), WATCHED);
    expect(torn.interrupted).toBe(true);
    expect(torn.transfers).toEqual([]);
    expect(torn.newCursor.nextBlock).toBe(1);
    const { steps } = await drain(scanner, torn.newCursor);
    expect([...applySteps([torn, ...steps]).values()].map((t) => t.amount)).toEqual([1n, 3n]);
  });

  it('leaves the cursor as it was when the node is down, and resumes without gap or double', async () => {
    const chain = new InMemoryChain({ finalityDepth: 4 });
    for (let i = 0; i < 30; i++) chain.mine([pay(WATCHED[i % 3]!, BigInt(i + 1))]);
    const scanner = new LogScanner(chain, { tokens: [TOKEN], maxBlockRange: 5, maxBlocksPerStep: 5 });
    const first = await scanner.step(startCursor(0), WATCHED);
    chain.down = true;
    await expect(scanner.step(first.newCursor, WATCHED)).rejects.toMatchObject({ code: 'rpc_unavailable', retryable: true });
    chain.down = false;
    const { steps } = await drain(scanner, first.newCursor);
    expect([...applySteps([first, ...steps]).values()]).toEqual(expected(chain));
  });

  it('property: whatever the reorgs, refusals and outages, the consumer ends with exactly the canonical transfers', async () => {
    type Op =
      | { kind: 'mine'; blocks: Array<Array<[number, number]>> }
      | { kind: 'reorg'; depth: number; blocks: Array<Array<[number, number]>> }
      | { kind: 'scan' }
      | { kind: 'outage' };
    const blocksArb = fc.array(fc.array(fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 1, max: 1000 })), { maxLength: 4 }), {
      minLength: 1,
      maxLength: 6,
    });
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constant('mine' as const), blocks: blocksArb }),
      fc.record({ kind: fc.constant('reorg' as const), depth: fc.integer({ min: 1, max: 6 }), blocks: blocksArb }),
      fc.constant({ kind: 'scan' as const }),
      fc.constant({ kind: 'outage' as const }),
    );
    // Recipients 3 and 4 are strangers: their transfers must never show up.
    const toTransfers = (block: Array<[number, number]>) => block.map(([who, amount]) => pay(who < 3 ? WATCHED[who]! : addr(who + 50), BigInt(amount)));

    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 1, maxLength: 25 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 3 }),
        async (ops, maxLogRange, confirmations) => {
          const chain = new InMemoryChain({ finalityDepth: 12, maxLogRange });
          chain.mineEmpty(8);
          const scanner = new LogScanner(chain, { tokens: [TOKEN], maxBlockRange: 16, maxBlocksPerStep: 7, confirmations, reorgWindow: 32 });
          let cursor = startCursor(1);
          let highest = chain.height;
          const held = new Map<string, Transfer>();
          const scan = async () => {
            const r = await scanner.step(cursor, WATCHED);
            applySteps([r], held);
            cursor = r.newCursor;
          };
          for (const op of ops) {
            if (op.kind === 'mine') for (const b of op.blocks) chain.mine(toTransfers(b));
            else if (op.kind === 'reorg') {
              // Never below what was once final: that is what finality means.
              const depth = Math.min(op.depth, chain.height - 1, chain.height - (highest - chain.finalityDepth));
              if (depth >= 1) chain.reorg(depth, op.blocks.map(toTransfers));
            }
            else if (op.kind === 'scan') await scan();
            else {
              chain.down = true;
              await expect(scanner.step(cursor, WATCHED)).rejects.toMatchObject({ retryable: true });
              chain.down = false;
            }
            highest = Math.max(highest, chain.height);
          }
          for (let i = 0; i < 200; i++) {
            const r = await scanner.step(cursor, WATCHED);
            applySteps([r], held);
            cursor = r.newCursor;
            if (r.caughtUp) break;
          }
          // Caught up to the safe head; a chain that got shorter may leave the cursor above it, never below.
          expect(cursor.nextBlock).toBeGreaterThanOrEqual(chain.height - confirmations + 2);
          const want = expected(chain, cursor.nextBlock - 1).filter((t) => t.blockNumber >= 1);
          const got = [...held.values()].sort((a, b) => a.blockNumber - b.blockNumber || a.logIndex - b.logIndex);
          expect(got).toEqual(want);
        },
      ),
      { numRuns: 150 },
    );
  });
});
