import { readdirSync, readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ensureBuilt } from './testing/ensure-built.js';
import { dumpTables } from './testing/dump.js';
import { acct, credited, delivered, isoAt, opened, sent, tempStore, type TempStore } from './testing/events.js';
import { attachReadModels, openLocalDb } from './local-db.js';
import { Projector } from './projector.js';
import { defaultProjections } from './read-models/all.js';
import { getBalance } from './read-models/balances.queries.js';
import { ThreadedProjector } from './threaded-projector.js';

const T = '2026-06-01T00:00:00.000Z';

describe('ThreadedProjector: the default projections on their own thread, into their own file', () => {
  let t: TempStore;
  let readModelsFile: string;
  let projector: ThreadedProjector | undefined;
  const errors: Error[] = [];
  let restarts = 0;

  const start = () =>
    ThreadedProjector.start({ store: t.store, logFile: t.file, readModelsFile, coalesceMs: 5, onError: (e) => errors.push(e), onRestart: () => restarts++ });

  beforeAll(() => ensureBuilt(['libs/projections/src', 'libs/eventstore/src']));
  beforeEach(() => {
    t = tempStore('nexo-threaded-projector-');
    readModelsFile = join(t.dir, 'read-models.db');
    errors.length = 0;
    restarts = 0;
  });
  afterEach(async () => {
    await projector?.stop();
    projector = undefined;
    await t.dispose();
  });

  it('catches up before start resolves, follows appends made on another thread, and answers read-your-writes', async () => {
    await t.put(acct('A'), opened('A'), credited(1, 10_000_000n, T));
    projector = await start();
    const head = await t.store.headPosition();
    expect(projector.lastLag().events).toBe(0);
    expect(Object.values(projector.checkpoints()).every((p) => p === head)).toBe(true);

    const reader = openLocalDb(join(t.dir, 'state.db'));
    attachReadModels(reader, readModelsFile);
    expect(getBalance(reader, 'A')?.balance).toBe(10_000_000n);

    for (let i = 0; i < 50; i++) await t.put(acct('A'), sent(`o${i}`, isoAt(T, i)), delivered(`o${i}`, isoAt(T, i + 1)));
    const started = performance.now();
    await projector.waitUntilCaughtUp(5_000);
    // Woken by the commit notice, not the store's 200 ms poll; the 5 ms gathering is cut short by the wait.
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(getBalance(reader, 'A')?.balance).toBe(10_000_000n - 50n * 22_000n);
    expect((await projector.lag()).events).toBe(0);
    reader.close();
    expect(errors).toEqual([]);
  });

  it('stops cleanly and resumes from its checkpoints; the tables equal a fresh replay', async () => {
    await t.put(acct('B'), opened('B'), credited(2, 5_000_000n, T));
    projector = await start();
    for (let i = 0; i < 30; i++) await t.put(acct('B'), sent(`p${i}`, isoAt(T, i)));
    await projector.waitUntilCaughtUp();
    await projector.stop();
    for (let i = 30; i < 60; i++) await t.put(acct('B'), sent(`p${i}`, isoAt(T, i)));
    projector = await start();
    await projector.waitUntilCaughtUp();

    const live = new Database(readModelsFile, { readonly: true });
    const fresh = new Database(':memory:');
    await new Projector({ store: t.store, db: fresh, projections: defaultProjections() }).catchUp();
    for (const p of defaultProjections()) expect(dumpTables(live, p)).toEqual(dumpTables(fresh, p));
    live.close();
    fresh.close();
  });

  it('a thread that dies is started again after a second and catches up from its checkpoints', async () => {
    await t.put(acct('C'), opened('C'), credited(3, 5_000_000n, T));
    projector = await start();
    await projector.crash();
    // Appends go on while it is down; its lag shows them.
    for (let i = 0; i < 20; i++) await t.put(acct('C'), sent(`c${i}`, isoAt(T, i)), delivered(`c${i}`, isoAt(T, i + 1)));
    expect((await projector.lag()).events).toBeGreaterThan(0);
    expect(errors.map((e) => e.message)).toEqual(['the projector thread exited (code 1); starting it again in 1000 ms']);
    expect(restarts).toBe(0);
    await projector.waitUntilCaughtUp(5_000);
    expect(restarts).toBe(1);
    expect((await projector.lag()).events).toBe(0);
    const reader = openLocalDb(join(t.dir, 'state.db'));
    attachReadModels(reader, readModelsFile);
    expect(getBalance(reader, 'C')?.balance).toBe(5_000_000n - 20n * 22_000n);
    reader.close();
  });

  it('refuses to start, with the reason, when its file cannot be opened', async () => {
    // Its directory would have to be inside a regular file.
    readModelsFile = join(t.file, 'read-models.db');
    await expect(start()).rejects.toThrow(/EEXIST|ENOTDIR/);
  });

  it('a wait for a position the log never reaches times out with a clear message', async () => {
    projector = await start();
    await expect(projector.waitFor(10_000n, 100)).rejects.toThrow(/did not reach position 10000 within 100 ms/);
  });

  // Linux only: elsewhere lowerThreadPriority is a no-op.
  (process.platform === 'linux' ? it : it.skip)('runs below the priority of the thread that started it, so API work comes first on busy cores', async () => {
    const nices = () =>
      readdirSync('/proc/self/task').map((tid) => {
        const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
      });
    const own = getPriority();
    expect(nices()).not.toContain(Math.min(19, own + 10));
    projector = await start();
    expect(nices()).toContain(Math.min(19, own + 10));
  });
});
