/**
 * What the finance CLI refuses, so that a typo never reads as a result: an account the log never
 * opened, an option or argument the command does not take, a time that is not ISO, and a rebuild
 * that would write read models into the log's own file. Each is exit 2 with one line saying why.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { acct, credited, opened, sent, tempStore, type TempStore } from '../../../libs/projections/src/testing/events.js';
import { ledger } from './ledger-test-kit.js';

const T = '2026-03-02T10:00:00.000Z';

describe('ledger command lines that cannot mean what they say', () => {
  let t: TempStore;
  beforeEach(async () => {
    t = tempStore('nexo-args-');
    await t.put(acct('A'), opened('A', 1), credited(1, 100_000n, T), sent('o1', T));
  });
  afterEach(() => t.dispose());

  it('export and replay of an account the log never opened: exit 2 naming it, not an empty statement', async () => {
    for (const argv of [
      ['export', '--account', 'acc_typo', '--month', '2026-03'],
      ['replay', '--account', 'acc_typo'],
    ]) {
      const r = await ledger(...argv, '--db', t.file);
      expect({ argv, code: r.code, out: r.out, err: r.err }).toEqual({ argv, code: 2, out: expect.not.stringContaining('acc_typo,'), err: `no account acc_typo in SQLite ${t.file}\n` });
    }
    expect((await ledger('export', '--account', 'A', '--month', '2026-03', '--db', t.file)).code).toBe(0);
  });

  it('an option or argument the command does not take is refused, not ignored', async () => {
    const cases: [string[], string][] = [
      [['verify', 'extra'], 'verify does not take extra'],
      [['export', '--account', 'A', '--month', '2026-03', '--until', '2026-03-01'], 'export does not take --until'],
      [['replay', '--month', '2026-03'], 'replay does not take --month'],
      [['rebuild', 'money', 'otps'], 'rebuild does not take otps'],
    ];
    for (const [argv, message] of cases) {
      const r = await ledger(...argv, '--db', t.file);
      expect({ argv, code: r.code, first: r.err.split('\n')[0] }).toEqual({ argv, code: 2, first: message });
    }
  });

  it('--until takes ISO dates and times only (Date.parse alone reads "1" as the year 2001)', async () => {
    for (const until of ['1', 'yesterday', '2026-3-1']) {
      const r = await ledger('replay', '--until', until, '--db', t.file);
      expect({ until, code: r.code }).toEqual({ until, code: 2 });
      expect(r.err).toMatch(/^--until is not an ISO time/);
    }
    for (const until of ['2026-03-02', '2026-03-02T10:00:00Z', '2026-03-02T17:00:00+07:00']) {
      expect({ until, code: (await ledger('replay', '--until', until, '--db', t.file)).code }).toEqual({ until, code: expect.any(Number) });
      expect((await ledger('replay', '--until', until, '--db', t.file)).err).toBe('');
    }
  });

  it("rebuild never creates read models inside the log's own file: without a read-model file beside it, it asks for one", async () => {
    const r = await ledger('rebuild', 'money', '--db', t.file);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^cannot open the sources: no read-model file beside .*--read-models <file>\n$/);
    const db = new Database(t.file, { readonly: true });
    try {
      expect(db.prepare("SELECT name FROM sqlite_master WHERE name IN ('balances', 'projection_checkpoints')").all()).toEqual([]);
    } finally {
      db.close();
    }
    const named = join(t.dir, 'models.db');
    const ok = await ledger('rebuild', 'money', '--db', t.file, '--read-models', named);
    expect(ok.code).toBe(0);
    expect(existsSync(named)).toBe(true);
  });

  it('a log that cannot be opened is named in the one-line answer', async () => {
    const missing = join(t.dir, 'nope', 'nexo.dbx');
    const r = await ledger('verify', '--db', missing);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(new RegExp(`^cannot open the sources: the log at ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(--db\\): [^\\n]+\\n$`));
  });
});
