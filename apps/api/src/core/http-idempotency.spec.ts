import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AesGcmCipher } from '#security';
import { recordCommitLevels } from '#testing';
import { HttpIdempotency } from './http-idempotency.js';

describe('HttpIdempotency', () => {
  const cipher = new AesGcmCipher({ k1: randomBytes(32) }, 'k1');
  let db: Database.Database;
  beforeEach(() => {
    db = new Database(':memory:');
  });
  afterEach(() => db.close());
  const stored = () => db.prepare<[], { body: string | null }>('SELECT body FROM http_idempotency').all().map((r) => r.body);

  it('stores the answer sealed, and a replay gets it back', async () => {
    const idem = new HttpIdempotency(db, cipher);
    const first = await idem.run('signup', 'k', 'h', async () => ({ api_key: 'nxo_live_secret' }));
    expect(stored().join()).not.toContain('nxo_live_secret');
    expect(await idem.run('signup', 'k', 'h', async () => ({ api_key: 'other' }))).toEqual(first);
  });

  it('stores the answer durably on a NORMAL file: its commit fsyncs the WAL (a power loss must not forget an account the log keeps)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nexo-idem-'));
    const file = new Database(join(dir, 'state.db'));
    try {
      file.pragma('journal_mode = WAL');
      file.pragma('synchronous = NORMAL');
      const idem = new HttpIdempotency(file, cipher);
      const commits = recordCommitLevels(file);
      await idem.run('signup', 'k', 'h', async () => ({ api_key: 'nxo_live_secret' }));
      commits.restore();
      expect(commits.levels).toEqual([2]);
      expect(file.pragma('synchronous', { simple: true })).toBe(1);
    } finally {
      file.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('seals answers an older version stored in clear, once, at start; replays still answer them', async () => {
    db.exec(`CREATE TABLE http_idempotency (scope TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, body TEXT, created_at INTEGER NOT NULL,
      PRIMARY KEY (scope, key)) WITHOUT ROWID`);
    db.prepare('INSERT INTO http_idempotency VALUES (?, ?, ?, ?, ?)').run('keys', 'old', 'h', JSON.stringify({ api_key: 'nxo_live_old' }), Date.now());
    const idem = new HttpIdempotency(db, cipher);
    expect(stored().join()).not.toContain('nxo_live_old');
    expect(await idem.run('keys', 'old', 'h', async () => ({ api_key: 'new' }))).toEqual({ api_key: 'nxo_live_old' });
  });

  it('makes a twin that arrives while the first runs wait for its answer; runs it itself if the first failed', async () => {
    const idem = new HttpIdempotency(db, cipher);
    let finish!: (v: { n: number }) => void;
    let calls = 0;
    const first = idem.run('keys', 'k', 'h', () => {
      calls++;
      return new Promise<{ n: number }>((r) => (finish = r));
    });
    const twin = idem.run('keys', 'k', 'h', async () => ({ n: ++calls }));
    await expect(idem.run('keys', 'k', 'other', async () => ({ n: 0 }))).rejects.toMatchObject({ code: 'idempotency_conflict' });
    finish({ n: 1 });
    expect(await Promise.all([first, twin])).toEqual([{ n: 1 }, { n: 1 }]);
    expect(calls).toBe(1);

    const failing = idem.run('keys', 'f', 'h', async () => {
      throw new Error('boom');
    });
    const retry = idem.run('keys', 'f', 'h', async () => ({ n: 2 }));
    await expect(failing).rejects.toThrow('boom');
    expect(await retry).toEqual({ n: 2 });
  });
});
