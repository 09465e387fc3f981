import Database from 'better-sqlite3';
import { defaultProjections, Projector } from '#projections';
import { acct, credited, delivered, opened, refunded, reversed, sent, tempStore, type TempStore } from '../../../libs/projections/src/testing/events.js';
import { ledger } from './ledger-test-kit.js';

describe('ledger export', () => {
  let t: TempStore;
  beforeAll(async () => {
    t = tempStore('nexo-export-');
    await t.put(acct('A'), opened('A', 1), credited(1, 1_000_000n, '2026-02-20T08:00:00.000Z'), sent('o0', '2026-02-21T08:00:00.000Z'));
    await t.put(acct('A'), sent('t1', '2026-03-01T00:00:00.000Z', { fundedBy: 'test_credit' }), sent('o1', '2026-03-02T09:30:00.000Z'));
    await t.put(acct('A'), refunded('o1', '2026-03-02T09:40:00.000Z'), credited(2, 250_000n, '2026-03-15T12:00:00.000Z'));
    await t.put(acct('A'), delivered('o0', '2026-03-16T00:00:00.000Z'), reversed(2, '2026-03-31T23:59:59.999Z'), sent('o2', '2026-04-01T00:00:00.000Z'));
    await new Projector({ store: t.store, db: t.store.db, projections: defaultProjections() }).catchUp();
  });
  afterAll(() => t.dispose());

  const MARCH_CSV = [
    'at,type,amount,balance_after,ref',
    '2026-03-01T00:00:00.000Z,opening,,0.978000,',
    '2026-03-02T09:30:00.000Z,charge,-0.022000,0.956000,o1',
    '2026-03-02T09:40:00.000Z,refund,0.022000,0.978000,o1',
    `2026-03-15T12:00:00.000Z,deposit,0.250000,1.228000,56:0x${'2'.padStart(64, '0')}:0`,
    `2026-03-31T23:59:59.999Z,reversal,-0.250000,0.978000,56:0x${'2'.padStart(64, '0')}:0`,
    '2026-04-01T00:00:00.000Z,closing,,0.978000,',
    '',
  ].join('\r\n');

  it("prints the month's statement as CSV, opening and closing included (the default format)", async () => {
    const r = await ledger('export', '--db', t.file, '--account', 'A', '--month', '2026-03');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toBe(MARCH_CSV);
  });

  it('prints JSON with the same figures', async () => {
    const r = await ledger('export', '--db', t.file, '--account', 'A', '--month', '2026-04', '--format', 'json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({
      account_id: 'A',
      month: '2026-04',
      currency: 'USD',
      opening_balance: '0.978000',
      closing_balance: '0.956000',
      lines: [{ at: '2026-04-01T00:00:00.000Z', type: 'charge', amount: '-0.022000', balance_after: '0.956000', ref: 'o2' }],
    });
  });

  it('folds the account stream itself when the file has no ledger read model', async () => {
    const bare = tempStore('nexo-export-bare-');
    try {
      for await (const e of t.store.readAll()) await bare.put(e.streamId, { type: e.type, data: e.data });
      const r = await ledger('export', '--db', bare.file, '--account', 'A', '--month', '2026-03');
      expect(r.out).toBe(MARCH_CSV);
      const check = new Database(bare.file, { readonly: true });
      expect(check.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'ledger_lines'").get()).toEqual({ n: 0 });
      check.close();
    } finally {
      await bare.dispose();
    }
  });

  it('refuses a bad month or format with exit code 2', async () => {
    expect((await ledger('export', '--db', t.file, '--account', 'A', '--month', '2026-3')).code).toBe(2);
    expect((await ledger('export', '--db', t.file, '--account', 'A', '--month', '2026-03', '--format', 'xml')).code).toBe(2);
    expect((await ledger('export', '--db', t.file, '--month', '2026-03')).code).toBe(2);
  });
});
