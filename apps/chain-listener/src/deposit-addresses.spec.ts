/**
 * Index allocation across processes: two CommandRunners on one store stand
 * for two API instances, each with its own cached state, racing on the
 * `deposit-index-evm` stream. The expected-revision append makes the loser
 * decide again, so no index is handed out twice.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deriveDepositAddress } from '#chain';
import { accountDecider, accountStream, depositIndexStream } from '#domain';
import { CommandRunner, ConcurrencyError, SqliteEventStore } from '#eventstore';
import { depositAddressFor } from './deposit-addresses.js';
import { TEST_XPUB } from './testing/deposit-node.fixture.js';

describe('deposit addresses: one per account, never one index for two accounts', () => {
  let dir: string;
  let store: SqliteEventStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nexo-index-'));
    store = SqliteEventStore.open(join(dir, 'nexo.db'));
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives 40 accounts 40 distinct indexes when two processes allocate at once, each account asking twice', async () => {
    const runners = [new CommandRunner(store, { maxRetries: 50 }), new CommandRunner(store, { maxRetries: 50 })];
    const ids = Array.from({ length: 40 }, (_, i) => `acc_${i}`);
    const at = '2026-03-01T00:00:00.000Z';
    for (const id of ids) await runners[0]!.handle(accountStream(id), accountDecider, { type: 'OpenAccount', accountId: id, name: id, testCredits: 0, at });
    const clock = () => new Date(at);
    let conflicts = 0;
    // The runners append through `appendOpen` (SQLite's group commit), whose appends may be joined.
    const appendOpen = store.appendOpen.bind(store);
    store.appendOpen = (...args) => {
      const open = appendOpen(...args);
      open.result.catch((e: unknown) => {
        if (e instanceof ConcurrencyError && args[0] === depositIndexStream('evm')) conflicts++;
      });
      return open;
    };
    const answers = await Promise.all(
      ids.flatMap((id, i) => [
        depositAddressFor({ runner: runners[i % 2]!, xpub: TEST_XPUB, clock }, id),
        depositAddressFor({ runner: runners[(i + 1) % 2]!, xpub: TEST_XPUB, clock }, id),
      ]),
    );
    ids.forEach((_, i) => expect(answers[2 * i + 1]).toEqual(answers[2 * i]));
    const mine = ids.map((_, i) => answers[2 * i]!);
    expect(new Set(mine.map((a) => a.index)).size).toBe(ids.length);
    expect(new Set(mine.map((a) => a.address)).size).toBe(ids.length);
    for (const a of mine) expect(a.address).toBe(deriveDepositAddress(TEST_XPUB, a.index));

    const events = [];
    for await (const e of store.readStream(depositIndexStream('evm'))) events.push(e);
    expect(events.map((e) => (e.data as { index: number }).index)).toEqual(events.map((e) => Number(e.revision)));
    expect(events.length).toBe(ids.length);
    // The race happened: some allocations lost an append and were decided again.
    expect(conflicts).toBeGreaterThan(0);
  });

  it('refuses when no xpub is configured, and answers an account that has one without it', async () => {
    const runner = new CommandRunner(store);
    const at = '2026-03-01T00:00:00.000Z';
    await runner.handle(accountStream('acc_a'), accountDecider, { type: 'OpenAccount', accountId: 'acc_a', name: 'a', testCredits: 0, at });
    await expect(depositAddressFor({ runner, xpub: undefined, clock: () => new Date(at) }, 'acc_a')).rejects.toThrow(/NEXO_DEPOSIT_XPUB/);
    const first = await depositAddressFor({ runner, xpub: TEST_XPUB, clock: () => new Date(at) }, 'acc_a');
    expect(await depositAddressFor({ runner, xpub: undefined, clock: () => new Date(at) }, 'acc_a')).toEqual(first);
  });
});
