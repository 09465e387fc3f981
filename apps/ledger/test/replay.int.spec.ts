import Database from 'better-sqlite3';
import { type AccountEvent, accountDecider, accountStream } from '#domain';
import { defaultProjections, getBalance, listBalances, Projector, type Projection } from '#projections';
import { tempStore, type TempStore } from '../../../libs/projections/src/testing/events.js';
import { dumpTables } from '../../../libs/projections/src/testing/dump.js';
import { ledger } from './ledger-test-kit.js';
import { randomRun } from './random-run.js';

const SEED = Number(process.env.NEXO_TEST_SEED ?? 20261125);
// Four hours before a month ends, so the run's OTPs are requested in one month and settled in the next.
const START = Date.parse('2026-03-31T20:00:00.000Z');

const dumpAll = (db: Database.Database, ps: Projection[]) => Object.fromEntries(ps.map((p) => [p.name, dumpTables(db, p)]));

describe(`replay equals live after a randomized run (seed ${SEED})`, () => {
  let t: TempStore;
  let live: Projector;

  beforeAll(async () => {
    t = tempStore('nexo-replay-');
    live = new Projector({ store: t.store, db: t.store.db, projections: defaultProjections(), batchSize: 500 });
    live.start();
    const stats = await randomRun(t.store, { seed: SEED, commands: 4_000, accounts: 12, startMs: START });
    expect(stats.refused).toBeLessThan(stats.commands);
    await live.waitUntilCaughtUp(10_000);
    await live.stop();
  }, 60_000);
  afterAll(() => t.dispose());

  it('`ledger replay` finds no difference with the live read model', async () => {
    const r = await ledger('replay', '--db', t.file);
    expect(r.err).toBe('');
    expect(r.out).toMatch(/12 accounts, 0 differing/);
    expect(r.code).toBe(0);
  });

  it('every read model built live (pages as they came, beside the writers) equals one built from position 0', async () => {
    const fresh = new Database(':memory:');
    await new Projector({ store: t.store, db: fresh, projections: defaultProjections() }).catchUp();
    expect(dumpAll(t.store.db, defaultProjections())).toEqual(dumpAll(fresh, defaultProjections()));
  });

  it("I1: each live balance equals the account decider's state folded from its stream", async () => {
    for (const b of listBalances(t.store.db)) {
      let state = accountDecider.initialState();
      for await (const e of t.store.readStream(accountStream(b.accountId))) state = accountDecider.evolve(state, e as unknown as AccountEvent);
      expect(getBalance(t.store.db, b.accountId)).toEqual({ balance: state.balance, testCreditsLeft: state.testCreditsLeft, pending: state.pending });
    }
  });

  it('`ledger verify` finds the log clean', async () => {
    const r = await ledger('verify', '--db', t.file);
    expect(r.out).toMatch(/0 violations/);
    expect(r.code).toBe(0);
  });

  it('replay --until and --account agree with the statements as of that time', async () => {
    const middle = await t.store.headPosition().then((h) => t.store.readPage(Number(h / 2n), 1)[0]);
    const r = await ledger('replay', '--db', t.file, '--until', middle.created, '--account', 'acc3');
    expect(r.out).toMatch(/recorded by/);
    expect(r.out).toMatch(/1 accounts, 0 differing/);
    expect(r.code).toBe(0);
  });

  it('exits 1 when the live read model drifts', async () => {
    t.store.db.prepare("UPDATE balances SET test_credits_left = test_credits_left + 1 WHERE account_id = 'acc5'").run();
    try {
      const r = await ledger('replay', '--db', t.file, '--account', 'acc5');
      expect(r.out).toMatch(/acc5 .* DIFF/);
      expect(r.code).toBe(1);
    } finally {
      t.store.db.prepare("UPDATE balances SET test_credits_left = test_credits_left - 1 WHERE account_id = 'acc5'").run();
    }
  });
});
