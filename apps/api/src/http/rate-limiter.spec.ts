import { addressBucket, TokenBuckets } from './rate-limiter.js';

describe('addressBucket: one signup bucket per client, not per address it can pick', () => {
  it('keeps IPv4 as it is, and an IPv4-mapped IPv6 address as its IPv4', () => {
    expect(addressBucket('203.0.113.7')).toBe('203.0.113.7');
    expect(addressBucket('::ffff:203.0.113.7')).toBe('203.0.113.7');
  });

  it('groups IPv6 by its /64, however it is written', () => {
    const bucket = '2001:db8:a:b::/64';
    for (const ip of ['2001:db8:a:b::1', '2001:0db8:000a:000b:ffff:ffff:ffff:ffff', '2001:db8:a:b:1:2:3:4', '2001:DB8:A:B::']) expect(addressBucket(ip)).toBe(bucket);
    expect(addressBucket('2001:db8:a:c::1')).not.toBe(bucket);
    expect(addressBucket('::1')).toBe('0:0:0:0::/64');
  });

  it('so walking a /64 does not give fresh buckets', () => {
    const buckets = new TokenBuckets(0, 2, () => 0);
    const takes = ['2001:db8::1', '2001:db8::2', '2001:db8::3'].map((ip) => buckets.take(addressBucket(ip)));
    expect(takes.map((wait) => wait === 0)).toEqual([true, true, false]);
  });
});
