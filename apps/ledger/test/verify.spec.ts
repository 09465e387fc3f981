import { Projector, defaultProjections } from '#projections';
import { acct, credited, delivered, opened, otpStream, refunded, reversed, routed, sent, tempStore, type TempStore } from '../../../libs/projections/src/testing/events.js';
import { ledger } from './ledger-test-kit.js';

const day = (d: string) => `2026-03-${d}T10:00:00.000Z`;

async function project(t: TempStore): Promise<void> {
  await new Projector({ store: t.store, db: t.store.db, projections: defaultProjections() }).catchUp();
}

describe('ledger verify', () => {
  let t: TempStore;
  beforeEach(() => {
    t = tempStore('nexo-verify-');
  });
  afterEach(() => t.dispose());

  it('passes a clean log and its read models', async () => {
    await t.put(acct('A'), opened('A', 1), credited(1, 100_000n, day('01')), sent('o1', day('02')), sent('o2', day('02'), { fundedBy: 'test_credit' }));
    await t.put(otpStream('o1'), routed('o1', day('02')));
    await t.put(acct('A'), delivered('o1', day('03')), refunded('o2', day('03'), { fundedBy: 'test_credit' }));
    await project(t);
    const r = await ledger('verify', '--db', t.file);
    expect(r.err).toBe('');
    expect(r.out).toMatch(/0 violations/);
    expect(r.code).toBe(0);
  });

  it('I2: catches a double refund written to the log, with its stream and revision', async () => {
    await t.put(acct('A'), opened('A'), credited(1, 100_000n, day('01')), sent('o1', day('02')), refunded('o1', day('03')));
    // Bypasses the decider, which would refuse it: revision 5 of account-A.
    await t.put(acct('A'), refunded('o1', day('04')));
    await project(t);
    const r = await ledger('verify', '--db', t.file);
    expect(r.code).toBe(1);
    expect(r.out).toContain('I2 account-A@5 (position 6): otp o1 refunded after it was already refunded');
    expect(r.out).toMatch(/1 violation$/m);
  });

  it('I1: catches a live read model that drifted from the log', async () => {
    await t.put(acct('A'), opened('A'), credited(1, 100_000n, day('01')), sent('o1', day('02')));
    await project(t);
    t.store.db.prepare("UPDATE balances SET pending = 0 WHERE account_id = 'A'").run();
    const r = await ledger('verify', '--db', t.file);
    expect(r.code).toBe(1);
    expect(r.out).toContain('I1 account-A@3 (position 4): pending 0.000000 in the read model, 0.022000 from the log');
  });

  it('I3, I4, I5: overdraft and sends while negative, double credit, reversal of nothing, test credits beyond the grant', async () => {
    await t.put(acct('A'), opened('A', 1), credited(1, 30_000n, day('01')), credited(1, 30_000n, day('01')), reversed(7, day('01')));
    await t.put(acct('A'), sent('o1', day('02')), sent('o2', day('02')));
    await t.put(acct('A'), sent('t1', day('02'), { fundedBy: 'test_credit' }), sent('t2', day('02'), { fundedBy: 'test_credit' }));
    await t.put(acct('A'), reversed(1, day('03')), sent('o3', day('04'), { fundedBy: 'test_credit' }));
    const r = await ledger('verify', '--db', t.file);
    expect(r.code).toBe(1);
    const lines = r.out.split('\n').filter((l) => /^I\d/.test(l));
    expect(lines.map((l) => l.split(':')[0])).toEqual([
      'I4 account-A@2 (position 3)',
      'I4 account-A@3 (position 4)',
      'I3 account-A@7 (position 8)',
      'I3 account-A@9 (position 10)',
      'I3 account-A@11 (position 12)',
      'I5 account-A@11 (position 12)',
      'I3 account-A@14 (position 15)',
      'I5 account-A@14 (position 15)',
    ]);
    expect(lines[2]).toContain('otp o2 charged 22000 with a balance of 8000');
    expect(lines[3]).toContain('otp t1 charged while the balance is negative (-14000 micro-USD)');
    expect(lines[5]).toContain('otp t2 funded by a test credit beyond the 1 granted');
  });

  it('I2: a refund that does not return what was charged, and a delivery of an OTP never charged', async () => {
    await t.put(acct('A'), opened('A'), credited(1, 100_000n, day('01')), sent('o1', day('02')));
    await t.put(acct('A'), refunded('o1', day('03'), { price: 50_000n }), delivered('ghost', day('03')));
    const r = await ledger('verify', '--db', t.file);
    expect(r.code).toBe(1);
    expect(r.out).toContain('I2 account-A@4 (position 5): otp o1 refund of 50000 to balance does not return its charge of 22000 from balance');
    expect(r.out).toContain('I2 account-A@5 (position 6): otp ghost delivered but never charged to this account');
  });
});
