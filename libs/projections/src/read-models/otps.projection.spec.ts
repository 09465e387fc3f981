import { Projector } from '../projector.js';
import { monthlyStats } from './delivery-stats.queries.js';
import { getOtp, openOtpsDueBefore, recentOtps } from './otp-status.queries.js';
import { otpsProjection } from './otps.projection.js';
import { acct, delivered, isoAt, opened, otpStream, receipt, refunded, routed, sent, tempStore, type TempStore } from '../testing/events.js';

const T = '2026-03-10T10:00:00.000Z';
const at = (s: number) => isoAt(T, s);

/** The histogram's promise: within √1.05 − 1 of the exact nearest-rank figure. */
function expectNear(actual: number | null, exact: number): void {
  expect(actual).not.toBeNull();
  expect(Math.abs((actual as number) - exact) / exact).toBeLessThanOrEqual(0.0247);
}

describe('otps projection: OTP status, open OTPs and monthly stats, hand-computed', () => {
  let t: TempStore;
  beforeAll(async () => {
    t = tempStore();
    const a = acct('A');
    await t.put(a, opened('A'));
    await t.put(a, sent('x1', at(0), { carrier: 'viettel', channel: 'voice' }));
    await t.put(otpStream('x1'), routed('x1', at(2)), receipt('x1', at(5)));
    await t.put(a, delivered('x1', at(6)));
    await t.put(a, sent('x2', at(0)), sent('x3', at(0), { carrier: 'viettel' }));
    await t.put(otpStream('x2'), routed('x2', at(1)));
    await t.put(a, refunded('x2', at(600), { reason: 'expired' }));
    // I2 breach written straight to the log: a delivery after the refund changes neither status nor stats.
    await t.put(a, delivered('x2', at(601)));
    await t.put(a, sent('x4', at(10), { carrier: 'mobifone' }));
    await t.put(otpStream('x4'), routed('x4', at(11)));
    await t.put(a, delivered('x4', at(40)));
    await t.put(a, sent('x5', '2026-03-31T23:59:50.000Z', { carrier: 'viettel', channel: 'voice' }));
    await t.put(a, delivered('x5', '2026-04-01T00:00:10.000Z'));
    await t.put(a, sent('x6', at(1)));
    await t.put(otpStream('x6'), routed('x6', at(2), 1), routed('x6', at(5), 2));
    await t.put(acct('B'), opened('B'), sent('y1', at(0), { carrier: 'viettel', channel: 'voice' }), delivered('y1', at(3)));
    const p = new Projector({ store: t.store, db: t.store.db, projections: [otpsProjection()] });
    await p.catchUp();
  });
  afterAll(() => t.dispose());

  it('a delivered OTP has the fields of GET /api/v1/otp/:id and its history', () => {
    expect(getOtp(t.store.db, 'A', 'x1')).toEqual({
      id: 'x1',
      phoneMasked: '+8491****678',
      carrier: 'viettel',
      channel: 'voice',
      status: 'delivered',
      priceMicros: 22_000n,
      fundedBy: 'balance',
      createdAt: at(0),
      routedAt: at(2),
      deliveredAt: at(6),
      history: [
        { status: 'queued', at: at(0) },
        { status: 'routed', at: at(2) },
        { status: 'delivered', at: at(6) },
      ],
    });
  });

  it('I2: the first settlement is final; a refund carries its reason', () => {
    expect(getOtp(t.store.db, 'A', 'x2')).toMatchObject({ status: 'refunded', refundReason: 'expired', refundedAt: at(600) });
    expect(getOtp(t.store.db, 'A', 'x2')?.deliveredAt).toBeUndefined();
    expect(getOtp(t.store.db, 'A', 'x3')?.history).toEqual([{ status: 'queued', at: at(0) }]);
    // A second routing attempt is not a new status.
    expect(getOtp(t.store.db, 'A', 'x6')?.history).toEqual([
      { status: 'queued', at: at(1) },
      { status: 'routed', at: at(2) },
    ]);
  });

  it("another account's OTP id is not found", () => {
    expect(getOtp(t.store.db, 'B', 'x1')).toBeUndefined();
    expect(getOtp(t.store.db, 'A', 'nope')).toBeUndefined();
  });

  it("lists an account's newest OTPs first, ties by id, only its own, in the shape of getOtp", () => {
    expect(recentOtps(t.store.db, 'A', 4).map((o) => o.id)).toEqual(['x5', 'x4', 'x6', 'x3']);
    expect(recentOtps(t.store.db, 'A', 100).map((o) => o.id)).toEqual(['x5', 'x4', 'x6', 'x3', 'x2', 'x1']);
    expect(recentOtps(t.store.db, 'A', 100)[5]).toEqual(getOtp(t.store.db, 'A', 'x1'));
    expect(recentOtps(t.store.db, 'B', 100).map((o) => o.id)).toEqual(['y1']);
    expect(recentOtps(t.store.db, 'C', 100)).toEqual([]);
  });

  it('lists open OTPs by expiry deadline (request time + 600 s), earliest first', () => {
    const deadline = (s: number) => Date.parse(at(s));
    expect(openOtpsDueBefore(t.store.db, deadline(599))).toEqual([]);
    expect(openOtpsDueBefore(t.store.db, deadline(600))).toEqual([{ otpId: 'x3', accountId: 'A', status: 'queued', deadlineMs: deadline(600) }]);
    expect(openOtpsDueBefore(t.store.db, new Date(deadline(601))).map((o) => [o.otpId, o.status])).toEqual([
      ['x3', 'queued'],
      ['x6', 'routed'],
    ]);
    expect(openOtpsDueBefore(t.store.db, deadline(601), 1)).toHaveLength(1);
  });

  it("an account's month: counts, rate over settled OTPs, percentiles, by carrier and by channel", () => {
    const s = monthlyStats(t.store.db, '2026-03', { accountId: 'A' });
    // x1..x6 sent; x1, x4, x5 delivered (6 s, 30 s, 20 s); x2 refunded; x3, x6 in flight.
    expect(s).toMatchObject({ month: '2026-03', sent: 6, delivered: 3, refunded: 1, in_flight: 2, delivery_rate: 0.75, target: 0.9 });
    expectNear(s.p50_delivery_seconds, 20);
    expectNear(s.p95_delivery_seconds, 30);
    expect(Object.keys(s.by_carrier)).toEqual(['mobifone', 'viettel', 'vinaphone']);
    expect(s.by_carrier.viettel).toMatchObject({ sent: 3, delivered: 2, refunded: 0, in_flight: 1, delivery_rate: 1 });
    expectNear(s.by_carrier.viettel.p50_delivery_seconds, 6);
    expectNear(s.by_carrier.viettel.p95_delivery_seconds, 20);
    expect(s.by_carrier.vinaphone).toMatchObject({
      sent: 2,
      delivered: 0,
      refunded: 1,
      in_flight: 1,
      delivery_rate: 0,
      p50_delivery_seconds: null,
      p95_delivery_seconds: null,
    });
    expect(s.by_carrier.mobifone).toMatchObject({ sent: 1, delivered: 1, in_flight: 0 });
    expectNear(s.by_carrier.mobifone.p50_delivery_seconds, 30);
    expect(s.by_channel.voice).toMatchObject({ sent: 2, delivered: 2, refunded: 0, in_flight: 0, delivery_rate: 1 });
    expect(s.by_channel.sms).toMatchObject({ sent: 4, delivered: 1, refunded: 1, in_flight: 2, delivery_rate: 0.5 });
  });

  it('all traffic adds the other accounts; an OTP counts in the month it was requested', () => {
    const s = monthlyStats(t.store.db, '2026-03');
    expect(s).toMatchObject({ sent: 7, delivered: 4, refunded: 1, in_flight: 2, delivery_rate: 0.8 });
    expectNear(s.p50_delivery_seconds, 6);
    expectNear(s.p95_delivery_seconds, 30);
    expect(s.by_carrier.viettel).toMatchObject({ sent: 4, delivered: 3 });
    expect(monthlyStats(t.store.db, '2026-04', { accountId: 'A' })).toMatchObject({
      sent: 0,
      delivered: 0,
      in_flight: 0,
      delivery_rate: null,
      p50_delivery_seconds: null,
      by_carrier: {},
    });
  });
});
