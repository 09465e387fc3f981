import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { recordCommitLevels } from '#testing';
import { commitDurably } from './sqlite.durability.js';

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
