import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { recordCommitLevels } from '#testing';
import { commitDurably, WalSync } from './sqlite.durability.js';

describe('commitDurably', () => {
  let dir: string;
  let db: Database.Database;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nexo-durable-'));
    db = new Database(join(dir, 'state.db'));
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (v INTEGER)');
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const level = () => db.pragma('synchronous', { simple: true });
  const rows = () => db.prepare('SELECT count(*) FROM t').pluck().get();

  it('commits with FULL on a NORMAL connection and gives the connection its level back', () => {
    db.pragma('synchronous = NORMAL');
    const commits = recordCommitLevels(db);
    expect(commitDurably(db, () => db.prepare('INSERT INTO t VALUES (1)').run().changes)).toBe(1);
    db.transaction(() => db.prepare('INSERT INTO t VALUES (2)').run())();
    commits.restore();
    expect(commits.levels).toEqual([2, 1]);
    expect(level()).toBe(1);
    expect(rows()).toBe(2);
  });

  it('leaves a FULL connection as it is, and restores NORMAL when the transaction throws (nothing written)', () => {
    db.pragma('synchronous = FULL');
    expect(commitDurably(db, () => db.prepare('INSERT INTO t VALUES (1)').run().changes)).toBe(1);
    expect(level()).toBe(2);
    db.pragma('synchronous = NORMAL');
    expect(() =>
      commitDurably(db, () => {
        db.prepare('INSERT INTO t VALUES (2)').run();
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(level()).toBe(1);
    expect(rows()).toBe(1);
  });
});

describe('WalSync: the WAL fdatasync\'ed off the event loop, shared by overlapping calls', () => {
  /** A datasync whose runs the test ends one by one. */
  function controlled() {
    const runs: { resolve(): void; reject(e: Error): void }[] = [];
    const datasync = () => new Promise<void>((resolve, reject) => runs.push({ resolve, reject }));
    return { runs, datasync };
  }
  const settled = async (p: Promise<unknown>) => {
    let state = 'pending';
    p.then(
      () => (state = 'resolved'),
      () => (state = 'rejected'),
    );
    await new Promise((r) => setImmediate(r));
    return state;
  };

  it('a call during a running sync waits for the next one, which all such calls share', async () => {
    const { runs, datasync } = controlled();
    const wal = new WalSync(datasync);
    const first = wal.sync();
    const second = wal.sync();
    const third = wal.sync();
    expect(runs).toHaveLength(1);
    runs[0].resolve();
    expect(await settled(first)).toBe('resolved');
    // The first sync may have begun before the later callers wrote: they need one that starts after it.
    expect(await settled(second)).toBe('pending');
    expect(runs).toHaveLength(2);
    runs[1].resolve();
    await Promise.all([second, third]);
    expect(runs).toHaveLength(2);
    // Idle again: the next call starts at once.
    const fourth = wal.sync();
    expect(runs).toHaveLength(3);
    runs[2].resolve();
    await fourth;
  });

  it('a failed sync fails its callers only; those queued behind it get a sync of their own', async () => {
    const { runs, datasync } = controlled();
    const wal = new WalSync(datasync);
    const first = wal.sync();
    const second = wal.sync();
    runs[0].reject(new Error('EIO'));
    await expect(first).rejects.toThrow('EIO');
    await new Promise((r) => setImmediate(r));
    runs[1].resolve();
    await expect(second).resolves.toBeUndefined();
  });

  it('exists for a WAL file only; syncs it and lets go of it at close', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nexo-walsync-'));
    const memory = new Database(':memory:');
    const rollback = new Database(join(dir, 'rollback.db'));
    const wal = new Database(join(dir, 'wal.db'));
    try {
      wal.pragma('journal_mode = WAL');
      expect(WalSync.forConnection(memory)).toBeUndefined();
      expect(WalSync.forConnection(rollback)).toBeUndefined();
      const sync = WalSync.forConnection(wal)!;
      wal.exec('CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1)');
      await sync.sync();
      await sync.sync();
      await sync.close();
    } finally {
      for (const d of [memory, rollback, wal]) d.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
