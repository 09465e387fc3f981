import { IDEMPOTENCY_RETENTION_MS } from '#domain';
import { Projector } from '../projector.js';
import { tempStore, type TempStore } from '../testing/events.js';
import { sendIdempotencyProjection, sendIdempotencyRecord } from './send-idempotency.projection.js';

const T0 = Date.parse('2026-03-01T00:00:00.000Z');
const iso = (ms: number) => new Date(T0 + ms).toISOString();
const requested = (otpId: string, atMs: number, key?: string, requestHash?: string) => ({
  type: 'OtpRequested',
  data: { otpId, carrier: 'viettel', channel: 'sms', phoneMasked: '+8498****123', at: iso(atMs), ...(key ? { idempotencyKey: key, requestHash } : {}) },
});

describe('send keys projection: the Idempotency-Keys of sends, for the 48 h they are honoured', () => {
  let t: TempStore;
  const project = () => new Projector({ store: t.store, db: t.store.db, projections: [sendIdempotencyProjection] }).catchUp();
  beforeEach(() => {
    t = tempStore();
  });
  afterEach(() => t.dispose());

  it('keeps each account its own keys, with the hash and the OTP; sends without a key leave nothing', async () => {
    await t.put('account-A', requested('otp_1', 0, 'k1', 'h1'));
    await t.put('account-B', requested('otp_2', 1_000, 'k1', 'h2'));
    await t.put('account-A', requested('otp_3', 2_000));
    await project();
    expect(sendIdempotencyRecord(t.store.db, 'A', 'k1')).toEqual({ requestHash: 'h1', otpId: 'otp_1', atMs: T0 });
    expect(sendIdempotencyRecord(t.store.db, 'B', 'k1')).toEqual({ requestHash: 'h2', otpId: 'otp_2', atMs: T0 + 1_000 });
    expect(sendIdempotencyRecord(t.store.db, 'A', 'k2')).toBeUndefined();
    expect(t.store.db.prepare('SELECT count(*) AS n FROM send_idempotency').get()).toEqual({ n: 2 });
  });

  it('a key sent again after its retention holds the newer send', async () => {
    await t.put('account-A', requested('otp_1', 0, 'k1', 'h1'));
    await t.put('account-A', requested('otp_2', IDEMPOTENCY_RETENTION_MS + 1, 'k1', 'h2'));
    await project();
    expect(sendIdempotencyRecord(t.store.db, 'A', 'k1')).toEqual({ requestHash: 'h2', otpId: 'otp_2', atMs: T0 + IDEMPOTENCY_RETENTION_MS + 1 });
  });

  it('forgets keys past the retention, by the log time, so the table stays the size of 48 h of keyed sends', async () => {
    await t.put('account-A', requested('otp_old', 0, 'old', 'h'));
    await t.put('account-A', ...Array.from({ length: 1_000 }, (_, i) => requested(`otp_${i}`, IDEMPOTENCY_RETENTION_MS + 60_000 + i, `k${i}`, 'h')));
    await project();
    expect(sendIdempotencyRecord(t.store.db, 'A', 'old')).toBeUndefined();
    expect(sendIdempotencyRecord(t.store.db, 'A', 'k0')?.otpId).toBe('otp_0');
    expect(t.store.db.prepare('SELECT count(*) AS n FROM send_idempotency').get()).toEqual({ n: 1_000 });
  });
});
