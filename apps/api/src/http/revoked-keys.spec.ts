import { KEY_CACHE_MS, RevokedKeys } from './revoked-keys.js';

describe('RevokedKeys: a revoked key is held until the read model refuses it and no cached view of it is left', () => {
  let now = 0;
  const shown = new Set<string>();
  let keys: RevokedKeys;
  beforeEach(() => {
    now = 0;
    shown.clear();
    keys = new RevokedKeys((hash) => shown.has(hash), () => now);
  });
  afterEach(() => keys.stop());

  it('holds a key while the read model does not show it revoked, however long (projections stuck)', () => {
    keys.add('key_1', 'h1');
    for (now = 0; now < 600_000; now += 1_000) keys.prune();
    expect(keys.has('key_1')).toBe(true);
  });

  it('lets go of it only after the cache could still hold a view read before the read model showed it', () => {
    keys.add('key_1', 'h1');
    keys.prune();
    shown.add('h1');
    now = 1_000;
    keys.prune();
    now += KEY_CACHE_MS;
    keys.prune();
    expect(keys.has('key_1')).toBe(true);
    now += KEY_CACHE_MS;
    keys.prune();
    expect({ held: keys.has('key_1'), size: keys.size }).toEqual({ held: false, size: 0 });
  });

  it('stays bounded over many revocations: only those not yet shown, or shown a moment ago, are held', () => {
    for (let i = 0; i < 1_000; i++) {
      keys.add(`key_${i}`, `h${i}`);
      shown.add(`h${i}`);
      now += 100;
      keys.prune();
    }
    // Each is held until 2 × KEY_CACHE_MS after the read model showed it: the last 20 revocations, 100 ms apart.
    expect(keys.size).toBe((2 * KEY_CACHE_MS) / 100);
  });
});
