import { PhoneLimiter } from './phone-limiter.js';

/** I8: at most one carrier submission per phone per 30 s. */
describe('I8 per-phone limit', () => {
  let t = 0;
  const now = (): number => t;
  beforeEach(() => {
    t = 1_000_000;
  });

  it('allows one submission per phone per 30 s and says how long to wait', () => {
    const l = new PhoneLimiter({ now });
    expect(l.tryAcquire('a')).toEqual({ allowed: true });
    t += 10_000;
    expect(l.tryAcquire('a')).toEqual({ allowed: false, retryAfterMs: 20_000 });
    expect(l.tryAcquire('b')).toEqual({ allowed: true });
    t += 19_999;
    expect(l.tryAcquire('a')).toEqual({ allowed: false, retryAfterMs: 1 });
    t += 1;
    expect(l.tryAcquire('a')).toEqual({ allowed: true });
  });

  it('restore() takes back a window an earlier run opened, until it ends; an ended one is skipped', () => {
    const l = new PhoneLimiter({ now });
    l.restore('gone', t - 30_000);
    l.restore('a', t - 25_000);
    expect(l.size).toBe(1);
    expect(l.tryAcquire('a')).toEqual({ allowed: false, retryAfterMs: 5_000 });
    expect(l.tryAcquire('gone')).toEqual({ allowed: true });
    t += 5_000;
    expect(l.tryAcquire('a')).toEqual({ allowed: true });
  });

  it('check() does not record a submission', () => {
    const l = new PhoneLimiter({ now });
    expect(l.check('a')).toEqual({ allowed: true });
    expect(l.check('a')).toEqual({ allowed: true });
    expect(l.size).toBe(0);
  });

  it('a refused attempt does not extend the window', () => {
    const l = new PhoneLimiter({ now });
    l.tryAcquire('a');
    t += 29_000;
    l.tryAcquire('a');
    t += 1_000;
    expect(l.tryAcquire('a')).toEqual({ allowed: true });
  });

  it('release() forgets a submission that never left', () => {
    const l = new PhoneLimiter({ now });
    l.tryAcquire('a');
    l.release('a');
    expect(l.tryAcquire('a')).toEqual({ allowed: true });
  });

  it('sweeps expired entries, so memory follows the last 30 s only', () => {
    const l = new PhoneLimiter({ now });
    for (let i = 0; i < 1_000; i++) {
      l.tryAcquire(`p${i}`);
      t += 100; // 1000 phones over 100 s
    }
    expect(l.size).toBeLessThanOrEqual(301);
    expect(l.size).toBeGreaterThanOrEqual(299);
    t += 30_000;
    l.check('anything');
    expect(l.size).toBe(0);
  });

  it('a renewed key moves to the back, so the sweep never stops early on it', () => {
    const l = new PhoneLimiter({ now });
    l.tryAcquire('a');
    t += 30_000;
    l.tryAcquire('a'); // renewed, now the youngest
    l.tryAcquire('b');
    t += 30_000;
    l.check('x');
    expect(l.size).toBe(0);
  });

  it('when full of live windows it refuses rather than evict (evicting would allow a second send)', () => {
    const l = new PhoneLimiter({ now, maxEntries: 3 });
    for (const k of ['a', 'b', 'c']) {
      expect(l.tryAcquire(k).allowed).toBe(true);
      t += 1_000;
    }
    expect(l.tryAcquire('d')).toEqual({ allowed: false, retryAfterMs: 27_000 });
    expect(l.tryAcquire('a').allowed).toBe(false);
    t += 27_000;
    expect(l.tryAcquire('d')).toEqual({ allowed: true });
  });

  it('refuses nonsense settings', () => {
    expect(() => new PhoneLimiter({ windowMs: 0 })).toThrow(RangeError);
  });
});
