import { Projector, defaultProjections } from '#projections';
import { acct, credited, delivered, opened, otpStream, refunded, reversed, routed, sent, tempStore, type TempStore } from '../../../libs/projections/src/testing/events.js';
import { ledger } from './ledger-test-kit.js';
import { InvariantChecker } from '../src/invariant-checker.js';

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

  it("the log's continuity: an event deleted from the file leaves a gap in positions and in its stream's revisions", async () => {
    await t.put(acct('A'), opened('A', 1), credited(1, 100_000n, day('01')), sent('o1', day('02')), sent('o2', day('02'), { fundedBy: 'test_credit' }));
    await t.put(acct('A'), delivered('o2', day('03')), delivered('o1', day('03')));
    await project(t);
    // The test credit's delivery: the money still adds up without it, only the gap tells.
    t.store.db.prepare("DELETE FROM events WHERE stream_id = 'account-A' AND revision = 6").run();
    const r = await ledger('verify', '--db', t.file);
    expect(r.code).toBe(1);
    expect(r.out.split('\n').filter((l) => /^(I\d|log)/.test(l))).toEqual([
      'log account-A@7 (position 8): revision 6 of this stream missing from the log',
      'log account-A@7 (position 8): position 7 missing from the log',
    ]);
  });

  it('does not hold trimmed coordination streams (phone windows, the relay lease) to revision continuity, only the money streams', () => {
    const checker = new InvariantChecker();
    const at = new Date().toISOString();
    const event = (streamId: string, revision: bigint, position: bigint, type: string) => ({ streamId, revision, position, id: `e${position}`, type, data: { holder: 'otp_a/1', at, position: '0' }, metadata: undefined, created: at });
    // What EventStoreDB's $maxCount leaves: only the streams' last events.
    checker.check(event('phone-window-abc', 41n, 100n, 'PhoneWindowTaken'));
    checker.check(event('relay-lease-relay', 7n, 120n, 'RelayLeaseRenewed'));
    checker.check(event('account-A', 3n, 130n, 'AccountOpened'));
    expect(checker.violations.filter((v) => v.invariant === 'log').map((v) => v.streamId)).toEqual(['account-A']);
  });

  it('I6: an OTP neither delivered nor refunded long past the expiry window, by the log\'s own clock; one still in its window is fine', async () => {
    await t.put(acct('A'), opened('A', 2), sent('lost', day('02'), { fundedBy: 'test_credit' }));
    await t.put(acct('A'), sent('fresh', day('02'), { fundedBy: 'test_credit' }));
    // Recorded 20 minutes before the rest of the log (expiry 10 min + 5 min of grace by default).
    t.store.db.prepare("UPDATE events SET created = created - 1200000 WHERE stream_id = 'account-A' AND revision IN (1, 2)").run();
    const r = await ledger('verify', '--db', t.file);
    expect(r.code).toBe(1);
    const lines = r.out.split('\n').filter((l) => /^I\d/.test(l));
    expect(lines).toEqual([expect.stringMatching(/^I6 account-A@2 \(position 3\): otp lost charged \(recorded .*\) is neither delivered nor refunded 1200 s later/)]);
  });

  it('an event that is not JSON any more is named by position, in one line, and verify could not run (exit 2)', async () => {
    await t.put(acct('A'), opened('A', 1), sent('o1', day('02'), { fundedBy: 'test_credit' }));
    t.store.db.prepare("UPDATE events SET data = '{not json' WHERE position = 2").run();
    const r = await ledger('verify', '--db', t.file);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^ledger verify could not run: event at position 2 \(account-A@1\) cannot be read: .*\n$/);
    expect(r.err).not.toMatch(/\n\s+at /);
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
