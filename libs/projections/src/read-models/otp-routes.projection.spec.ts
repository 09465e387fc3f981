import { Projector } from '../projector.js';
import { tempStore, type TempStore } from '../testing/events.js';
import { findOtpByProviderMessage, otpRoutesProjection } from './otp-routes.projection.js';
import { otpsProjection } from './otps.projection.js';

const AT = '2026-03-01T00:00:00.000Z';
const routed = (provider: string, providerMessageId: string, accountId: string) => ({
  type: 'Routed',
  data: { attempt: 1, provider, carrier: 'viettel', channel: 'sms', providerMessageId, at: AT },
  metadata: { accountId },
});

describe('otp routes projection: which OTP a provider message id belongs to', () => {
  let t: TempStore;
  beforeAll(async () => {
    t = tempStore();
    await t.put('otp-otp_old', routed('smsc', '1000', 'A'));
    await t.put('otp-otp_other', routed('agg', '1000', 'B'));
    // The SMSC's counter started over: it hands out 1000 again, for a newer message.
    await t.put('otp-otp_new', routed('smsc', '1000', 'C'));
    await new Projector({ store: t.store, db: t.store.db, projections: [otpRoutesProjection, otpsProjection()] }).catchUp();
  });
  afterAll(() => t.dispose());

  it('finds the OTP per provider, and the newest message holds an id handed out again', () => {
    expect(findOtpByProviderMessage(t.store.db, 'smsc', '1000')).toEqual({ otpId: 'otp_new', accountId: 'C' });
    expect(findOtpByProviderMessage(t.store.db, 'agg', '1000')).toEqual({ otpId: 'otp_other', accountId: 'B' });
    expect(findOtpByProviderMessage(t.store.db, 'smsc', '999')).toBeUndefined();
  });
});
