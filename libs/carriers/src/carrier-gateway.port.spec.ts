import { logThrottle } from './carrier-gateway.port.js';

describe('logThrottle', () => {
  it('lets a key through once per period, each key on its own', () => {
    const may = logThrottle(60_000);
    expect(may('a', 0)).toBe(true);
    expect(may('a', 59_999)).toBe(false);
    expect(may('b', 59_999)).toBe(true);
    expect(may('a', 60_000)).toBe(true);
  });
});
