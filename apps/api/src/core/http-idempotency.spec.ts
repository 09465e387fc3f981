import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AesGcmCipher } from '#security';
import { recordCommitLevels } from '#testing';
import { ConcurrencyError, type EventData, type ExpectedRevision, type RecordedEvent } from '#eventstore';
import { HttpIdempotency, type IdempotentJob } from './http-idempotency.js';

/**
 * The part of a shared log (EventStoreDB) the claims use, in memory. `ageOut()` drops every event
 * and keeps the revisions, as `$maxAge` does: reads find nothing, appends must go after them.
 */
function sharedLog() {
  const streams = new Map<string, { revision: bigint; events: RecordedEvent[] }>();
  const expiring = new Map<string, number>();
  return {
    expiring,
    ageOut: () => streams.forEach((s) => (s.events = [])),
    async append(streamId: string, events: readonly EventData[], expected: ExpectedRevision) {
      const s = streams.get(streamId);
      const actual = s?.revision;
      const ok = expected === 'no_stream' ? actual === undefined : expected === actual;
      if (!ok) throw new ConcurrencyError(streamId, expected, actual);
      const next = s ?? { revision: -1n, events: [] };
      for (const e of events) {
        next.revision += 1n;
        next.events.push({ streamId, revision: next.revision, position: 0n, id: 'x', type: e.type, data: e.data, metadata: undefined, created: new Date().toISOString() });
      }
      streams.set(streamId, next);
      return { nextExpectedRevision: next.revision, position: 0n };
    },
    async lastEvent(streamId: string) {
      return streams.get(streamId)?.events.at(-1);
    },
    async expireAfter(streamId: string, ms: number) {
      expiring.set(streamId, ms);
    },
  };
}

/** A job whose plan is `plan` and whose answer is `answer(plan)`, counting its runs. */
function job<P, T>(plan: P, answer: (p: P) => T | Promise<T>): IdempotentJob<P, T> & { performed: P[]; planned: number } {
  const j = {
    performed: [] as P[],
    planned: 0,
    plan: () => {
      j.planned++;
      return plan;
    },
    perform: async (p: P) => {
      j.performed.push(p);
      return answer(p);
    },
  };
  return j;
}

describe('HttpIdempotency', () => {
  const cipher = new AesGcmCipher({ k1: randomBytes(32) }, 'k1');
  let db: Database.Database;
  beforeEach(() => {
    db = new Database(':memory:');
  });
  afterEach(() => db.close());
  const stored = () => db.prepare<[], { body: string | null; plan: string | null }>('SELECT body, plan FROM http_idempotency').all();

  it('stores the answer sealed, and a replay gets it back', async () => {
    const idem = new HttpIdempotency(db, cipher);
    const first = await idem.run('signup', 'k', 'h', job({}, () => ({ api_key: 'nxo_live_secret' })));
    expect(JSON.stringify(stored())).not.toContain('nxo_live_secret');
    const replay = job({}, () => ({ api_key: 'other' }));
    expect(await idem.run('signup', 'k', 'h', replay)).toEqual(first);
    expect([replay.planned, replay.performed]).toEqual([0, []]);
  });

  it('stores the claim with its plan and then the answer durably on a NORMAL file: both commits fsync the WAL (a power loss must not forget an account the log keeps)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nexo-idem-'));
    const file = new Database(join(dir, 'state.db'));
    try {
      file.pragma('journal_mode = WAL');
      file.pragma('synchronous = NORMAL');
      const idem = new HttpIdempotency(file, cipher);
      const commits = recordCommitLevels(file);
      await idem.run('signup', 'k', 'h', job({}, () => ({ api_key: 'nxo_live_secret' })));
      commits.restore();
      expect(commits.levels).toEqual([2, 2]);
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
    expect(JSON.stringify(stored())).not.toContain('nxo_live_old');
    expect(await idem.run('keys', 'old', 'h', job({}, () => ({ api_key: 'new' })))).toEqual({ api_key: 'nxo_live_old' });
  });

  it('makes a twin that arrives while the first runs wait for its answer; runs the same plan itself if the first failed', async () => {
    const idem = new HttpIdempotency(db, cipher);
    let finish!: (v: { n: number }) => void;
    const slow = job({ id: 1 }, () => new Promise<{ n: number }>((r) => (finish = r)));
    const first = idem.run('keys', 'k', 'h', slow);
    const twin = job({ id: 2 }, () => ({ n: 2 }));
    const second = idem.run('keys', 'k', 'h', twin);
    await expect(idem.run('keys', 'k', 'other', job({ id: 3 }, () => ({ n: 0 })))).rejects.toMatchObject({ code: 'idempotency_conflict' });
    finish({ n: 1 });
    expect(await Promise.all([first, second])).toEqual([{ n: 1 }, { n: 1 }]);
    expect([twin.planned, twin.performed]).toEqual([0, []]);

    const failing = job({ id: 'f' }, () => Promise.reject(new Error('boom')));
    const failed = idem.run('keys', 'f', 'h', failing);
    const retry = job({ id: 'other' }, (p) => ({ ran: p }));
    const retried = idem.run('keys', 'f', 'h', retry);
    await expect(failed).rejects.toThrow('boom');
    expect(await retried).toEqual({ ran: { id: 'f' } });
  });

  describe('I7 across crashes: a claim left without an answer is finished from its stored plan', () => {
    it('after a restart (a new instance on the same file), the retry runs the first plan, not a new one, and answers as the first would have', async () => {
      const cutShort = job({ accountId: 'acc_1', apiKey: 'nxo_live_planned' }, () => new Promise<never>(() => undefined));
      void new HttpIdempotency(db, cipher).run('signup', 'k', 'h', cutShort);
      expect(JSON.stringify(stored())).not.toContain('nxo_live_planned');

      const restarted = new HttpIdempotency(db, cipher);
      const admitted: string[] = [];
      const retry = { ...job({ accountId: 'acc_2', apiKey: 'nxo_live_new' }, (p) => ({ ok: true, ...p })), admit: () => void admitted.push('retry') };
      expect(await restarted.run('signup', 'k', 'h', retry)).toEqual({ ok: true, accountId: 'acc_1', apiKey: 'nxo_live_planned' });
      expect([retry.planned, admitted]).toEqual([0, []]);
      // The answer replaces the plan, and replays get it.
      expect(stored()).toEqual([{ body: expect.any(String), plan: null }]);
      expect(await restarted.run('signup', 'k', 'h', job({}, () => ({})))).toEqual({ ok: true, accountId: 'acc_1', apiKey: 'nxo_live_planned' });
      await expect(restarted.run('signup', 'k', 'h2', job({}, () => ({})))).rejects.toMatchObject({ code: 'idempotency_conflict' });
    });

    it('an error keeps the claim (the work may have appended): the retry runs the same plan', async () => {
      const idem = new HttpIdempotency(db, cipher);
      await expect(idem.run('keys', 'k', 'h', job({ keyId: 'key_1' }, () => Promise.reject(new Error('caught-up timeout'))))).rejects.toThrow('caught-up timeout');
      await expect(idem.run('keys', 'k', 'h2', job({}, () => ({})))).rejects.toMatchObject({ code: 'idempotency_conflict' });
      const retry = job({ keyId: 'key_2' }, (p) => p);
      expect(await idem.run('keys', 'k', 'h', retry)).toEqual({ keyId: 'key_1' });
      expect(retry.performed).toEqual([{ keyId: 'key_1' }]);
    });

    it('a refusal before the claim (admit) claims nothing: the next request plans anew', async () => {
      const idem = new HttpIdempotency(db, cipher);
      const refused = {
        ...job({ n: 1 }, (p) => p),
        admit: () => {
          throw new Error('rate_limited');
        },
      };
      await expect(idem.run('signup', 'k', 'h', refused)).rejects.toThrow('rate_limited');
      expect([refused.planned, stored()]).toEqual([0, []]);
      expect(await idem.run('signup', 'k', 'h', job({ n: 2 }, (p) => p))).toEqual({ n: 2 });
    });

    it('a claim an older version left without a plan stays 409: what its request did is unknown', async () => {
      db.exec(`CREATE TABLE http_idempotency (scope TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, body TEXT, created_at INTEGER NOT NULL,
        PRIMARY KEY (scope, key)) WITHOUT ROWID`);
      db.prepare('INSERT INTO http_idempotency VALUES (?, ?, ?, NULL, ?)').run('signup', 'old', 'h', Date.now());
      const idem = new HttpIdempotency(db, cipher);
      const retry = job({}, () => ({}));
      await expect(idem.run('signup', 'old', 'h', retry)).rejects.toMatchObject({ code: 'idempotency_conflict' });
      expect(retry.performed).toEqual([]);
    });
  });

  describe('with a log shared by several API replicas (distributed mode)', () => {
    it('takes the claim in the log first, sealed, and asks for it to expire with the retention; another replica answers with the claimed plan', async () => {
      const log = sharedLog();
      const other = new Database(':memory:');
      try {
        const first = await new HttpIdempotency(db, cipher, Date.now, log).run('signup', 'k', 'h', job({ key: 'nxo_live_secret' }, (p) => p));
        expect([...log.expiring.values()]).toEqual([48 * 3600 * 1000]);
        const [stream] = [...log.expiring.keys()];
        expect(JSON.stringify((await log.lastEvent(stream))?.data)).not.toContain('nxo_live_secret');
        const retry = job({ key: 'nxo_live_other' }, (p) => p);
        expect(await new HttpIdempotency(other, cipher, Date.now, log).run('signup', 'k', 'h', retry)).toEqual(first);
        expect([retry.planned, retry.performed]).toEqual([0, [{ key: 'nxo_live_secret' }]]);
        await expect(new HttpIdempotency(other, cipher, Date.now, log).run('signup', 'k', 'h2', job({}, (p) => p))).rejects.toMatchObject({ code: 'idempotency_conflict' });
      } finally {
        other.close();
      }
    });

    it('a claim past the retention is taken again, also once its events aged out of the log, and a stale local answer is no answer', async () => {
      const log = sharedLog();
      let now = Date.now();
      const idem = new HttpIdempotency(db, cipher, () => now, log);
      expect(await idem.run('signup', 'k', 'h', job({ n: 1 }, (p) => p))).toEqual({ n: 1 });
      now += 49 * 3600 * 1000;
      expect(await idem.run('signup', 'k', 'other body', job({ n: 2 }, (p) => p))).toEqual({ n: 2 });
      now += 49 * 3600 * 1000;
      log.ageOut();
      expect(await idem.run('signup', 'k', 'h', job({ n: 3 }, (p) => p))).toEqual({ n: 3 });
    });

    it('the same request twice at once in one process takes one claim and answers both alike', async () => {
      const log = sharedLog();
      const idem = new HttpIdempotency(db, cipher, Date.now, log);
      const a = job({ n: 1 }, (p) => p);
      const b = job({ n: 2 }, (p) => p);
      const answers = await Promise.all([idem.run('keys', 'k', 'h', a), idem.run('keys', 'k', 'h', b)]);
      expect(answers).toEqual([{ n: 1 }, { n: 1 }]);
      expect([a.planned + b.planned, a.performed.length + b.performed.length]).toEqual([1, 1]);
    });
  });
});
