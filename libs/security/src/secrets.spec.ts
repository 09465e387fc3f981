import { newApiKey, newId, phoneHash, sha256Hex } from './secrets.js';

describe('ids and secrets', () => {
  it('ids sort by creation time and stay unique within a millisecond', () => {
    const a = newId('otp', 1_700_000_000_000);
    const b = newId('otp', 1_700_000_000_001);
    expect(a < b).toBe(true);
    expect(a).toMatch(/^otp_[0-9a-f]{12}[A-Za-z0-9_-]{16}$/);
    const same = new Set(Array.from({ length: 1000 }, () => newId('otp', 42)));
    expect(same.size).toBe(1000);
  });

  it('keys are 32 random bytes, stored only as a hash', () => {
    const k = newApiKey();
    expect(k.key).toMatch(/^nxo_live_[A-Za-z0-9_-]{43}$/);
    expect(k.hash).toBe(sha256Hex(k.key));
    expect(k.key.startsWith(k.prefix)).toBe(true);
    expect(newApiKey().key).not.toBe(k.key);
  });

  it('phone hashes depend on the pepper', () => {
    const p1 = Buffer.alloc(32, 1);
    const p2 = Buffer.alloc(32, 2);
    expect(phoneHash(p1, '+84912345678')).toBe(phoneHash(p1, '+84912345678'));
    expect(phoneHash(p1, '+84912345678')).not.toBe(phoneHash(p2, '+84912345678'));
    expect(phoneHash(p1, '+84912345678')).not.toContain('912345678');
  });
});
