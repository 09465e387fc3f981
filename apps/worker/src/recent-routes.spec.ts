import { RecentRoutes } from './recent-routes.js';
import type { RouteLookup } from './receipts.consumer.js';

describe('RecentRoutes', () => {
  const projected: RouteLookup = {
    find: (provider, id) => (provider === 'http-a' && id === 'old' ? { otpId: 'otp_old', accountId: 'acc_old' } : undefined),
    accountOf: (otpId) => (otpId === 'otp_old' ? 'acc_old' : undefined),
  };

  it('finds a route submitted by this process before the read model has it, and falls back to the read model', () => {
    const recent = new RecentRoutes();
    const lookup = recent.over(projected);
    expect(lookup.find('sim', 'm1')).toBeUndefined();
    recent.submitted('sim', 'm1', 'otp_1', 'acc_1');
    expect(lookup.find('sim', 'm1')).toEqual({ otpId: 'otp_1', accountId: 'acc_1' });
    expect(lookup.accountOf('otp_1')).toBe('acc_1');
    // The same message id at another provider is another message.
    expect(lookup.find('http-a', 'm1')).toBeUndefined();
    expect(lookup.find('http-a', 'old')).toEqual({ otpId: 'otp_old', accountId: 'acc_old' });
    expect(lookup.accountOf('otp_old')).toBe('acc_old');
  });

  it('keeps at most its capacity, forgetting the oldest first', () => {
    const recent = new RecentRoutes(3);
    const lookup = recent.over({ find: () => undefined, accountOf: () => undefined });
    for (let i = 1; i <= 5; i++) recent.submitted('sim', `m${i}`, `otp_${i}`, 'acc');
    expect([1, 2, 3, 4, 5].map((i) => lookup.find('sim', `m${i}`)?.otpId)).toEqual([undefined, undefined, 'otp_3', 'otp_4', 'otp_5']);
    expect(lookup.accountOf('otp_2')).toBeUndefined();
    expect(lookup.accountOf('otp_5')).toBe('acc');
  });
});
