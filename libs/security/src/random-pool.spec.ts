import { pooledRandomBytes } from './random-pool.js';

describe('pooledRandomBytes', () => {
  it('hands out every byte once: 100,000 12-byte values across many refills are all distinct', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100_000; i++) seen.add(pooledRandomBytes(12).toString('hex'));
    expect(seen.size).toBe(100_000);
  });

  it('returns copies of the requested size, larger than the pool too', () => {
    const a = pooledRandomBytes(16);
    const before = a.toString('hex');
    for (let i = 0; i < 1_000; i++) pooledRandomBytes(7);
    expect(a.toString('hex')).toBe(before);
    expect(pooledRandomBytes(10_000)).toHaveLength(10_000);
    expect(pooledRandomBytes(1)).toHaveLength(1);
  });

  it('is not all zeros (the wipe happens after the copy)', () => {
    const bytes = Buffer.concat(Array.from({ length: 64 }, () => pooledRandomBytes(8)));
    expect(bytes.some((b) => b !== 0)).toBe(true);
  });
});
