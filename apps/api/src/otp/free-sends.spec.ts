import { FreeSendsPerPhone } from './free-sends.js';

describe('FreeSendsPerPhone', () => {
  const DAY = 86_400_000;

  it('allows `perDay` sends to a phone per UTC day, then none until the next day; other phones are counted apart', () => {
    let now = 5 * DAY + 1_000;
    const free = new FreeSendsPerPhone(2, () => now);
    for (let i = 0; i < 2; i++) {
      expect(free.allowed('a')).toBe(true);
      free.record('a');
    }
    expect(free.allowed('a')).toBe(false);
    expect(free.allowed('b')).toBe(true);
    now = 6 * DAY;
    expect(free.allowed('a')).toBe(true);
  });

  it('allows none at 0, even to a phone never counted', () => {
    expect(new FreeSendsPerPhone(0).allowed('a')).toBe(false);
  });

  it('forgets the phones counted longest ago past its bound, never more than that', () => {
    const free = new FreeSendsPerPhone(1, () => 0, 2);
    free.record('a');
    free.record('b');
    free.record('c');
    expect([free.allowed('a'), free.allowed('b'), free.allowed('c')]).toEqual([true, false, false]);
  });
});
