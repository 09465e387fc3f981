import { ThreadRestarts } from './thread-script.js';

describe('ThreadRestarts: when a service thread that died starts again', () => {
  it('waits 1 s, then twice as long per death in a row up to a minute, and 1 s again after a thread that ran a minute', () => {
    const restarts = new ThreadRestarts();
    const waits = Array.from({ length: 9 }, () => restarts.next(10));
    expect(waits).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    expect(restarts.next(60_000)).toBe(1_000);
    expect(restarts.next(59_999)).toBe(2_000);
  });
});
