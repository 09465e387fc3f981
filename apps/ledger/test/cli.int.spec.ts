import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { defaultProjections, openLocalDb, Projector, type Projection } from '#projections';
import { dumpTables } from '../../../libs/projections/src/testing/dump.js';
import { ensureBuilt, repoRoot } from '../../../libs/projections/src/testing/ensure-built.js';
import { ledgerProcess } from './ledger-test-kit.js';
import { acct, credited, delivered, isoAt, opened, refunded, sent, tempStore, type TempStore } from '../../../libs/projections/src/testing/events.js';

const T = '2026-06-01T00:00:00.000Z';

const dumpAll = (db: Database.Database, ps: Projection[]) => Object.fromEntries(ps.map((p) => [p.name, dumpTables(db, p)]));

describe('the built ledger CLI against the file of a running embedded service', () => {
  let t: TempStore;
  let live: Projector;
  let readModels: Database.Database;
  beforeAll(async () => {
    ensureBuilt(['apps/ledger/src', 'libs/projections/src']);
    t = tempStore('nexo-cli-');
    // The embedded layout: the log in nexo.db, the read models in read-models.db beside it.
    readModels = openLocalDb(join(dirname(t.file), 'read-models.db'));
    live = new Projector({ store: t.store, db: readModels, projections: defaultProjections() });
    live.start();
    await t.put(acct('A'), opened('A'), credited(1, 10_000_000n, T));
    for (let i = 0; i < 200; i++) await t.put(acct('A'), sent(`o${i}`, isoAt(T, i)), i % 4 ? delivered(`o${i}`, isoAt(T, i + 5)) : refunded(`o${i}`, isoAt(T, i + 600)));
    await live.waitUntilCaughtUp();
  }, 120_000);
  afterAll(async () => {
    await live?.stop();
    readModels?.close();
    await t?.dispose();
  });

  it('replay reads the live file read-only and exits 0 when it matches', async () => {
    // 10 USD credited, 150 of 200 OTPs delivered at 0.022 (the refunded 50 cost nothing): 6.700000.
    const r = await ledgerProcess('replay', '--db', t.file);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^A\s+6\.700000\s+0\s+0\.000000\s+6\.700000 \/ 0 \/ 0\.000000\s+ok$/m);
    expect(r.code).toBe(0);
  });

  it('rebuild swaps a read model in while the service keeps appending and projecting', async () => {
    const appending = (async () => {
      for (let i = 200; i < 400; i++) await t.put(acct('A'), sent(`o${i}`, isoAt(T, i)), delivered(`o${i}`, isoAt(T, i + 3)));
    })();
    const r = await ledgerProcess('rebuild', 'otps', '--db', t.file);
    await appending;
    expect(r.stdout).toMatch(/rebuilt otps: \d+ events .* swapped in at position \d+/);
    expect(r.code).toBe(0);
    await live.waitUntilCaughtUp();
    const fresh = new Database(':memory:');
    await new Projector({ store: t.store, db: fresh, projections: defaultProjections() }).catchUp();
    expect(dumpAll(readModels, defaultProjections())).toEqual(dumpAll(fresh, defaultProjections()));
  });

  it('verify exits 1 on a double refund written to the log, naming stream and revision', async () => {
    const revision = await t.store.streamRevision(acct('A'));
    await t.put(acct('A'), refunded('o0', isoAt(T, 9_999)));
    await live.waitUntilCaughtUp();
    const r = await ledgerProcess('verify', '--db', t.file);
    expect(r.stdout).toContain(`I2 account-A@${(revision as bigint) + 1n} `);
    expect(r.stdout).toContain('otp o0 refunded after it was already refunded');
    expect(r.code).toBe(1);
  });

  it('exits 2 when the file does not exist', async () => {
    const r = await ledgerProcess('verify', '--db', join(t.dir, 'missing.db'));
    expect(r.stderr).toMatch(/cannot open the sources/);
    expect(r.code).toBe(2);
  });
});
