import { randomBytes } from 'node:crypto';
import { AesGcmCipher } from './aes-gcm.cipher.js';

describe('AES-256-GCM cipher', () => {
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);

  it('round-trips and never shows the plain text', () => {
    const c = new AesGcmCipher({ k1 }, 'k1');
    const sealed = c.seal('123456');
    expect(sealed.startsWith('k1:')).toBe(true);
    expect(sealed).not.toContain('123456');
    expect(c.open(sealed)).toBe('123456');
    expect(c.seal('123456')).not.toBe(sealed);
  });

  it('opens values sealed under a retired key after rotation', () => {
    const old = new AesGcmCipher({ k1 }, 'k1').seal('+84912345678');
    expect(new AesGcmCipher({ k1, k2 }, 'k2').open(old)).toBe('+84912345678');
  });

  it('refuses tampered values and unknown keys', () => {
    const c = new AesGcmCipher({ k1 }, 'k1');
    const sealed = c.seal('654321');
    const raw = Buffer.from(sealed.slice(3), 'base64url');
    raw[raw.length - 1] ^= 1;
    expect(() => c.open(`k1:${raw.toString('base64url')}`)).toThrow();
    expect(() => new AesGcmCipher({ k2 }, 'k2').open(sealed)).toThrow(/no known key/);
  });

  it('refuses keys of the wrong size', () => {
    expect(() => new AesGcmCipher({ k1: randomBytes(16) }, 'k1')).toThrow(/32 bytes/);
  });
});
