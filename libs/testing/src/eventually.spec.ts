import { until } from './eventually.js';

describe('until', () => {
  it('returns the first value other than undefined or false, null and 0 included', async () => {
    let n = 0;
    expect(await until('the third probe', () => (++n === 3 ? { n } : undefined), { everyMs: 1 })).toEqual({ n: 3 });
    expect(await until('null', () => null)).toBeNull();
    expect(await until('zero', () => 0)).toBe(0);
  });

  it('waits out false, and a plain condition resolves true', async () => {
    let n = 0;
    expect(await until('the condition', async () => ++n >= 3, { everyMs: 1 })).toBe(true);
    expect(n).toBe(3);
  });

  it('fails after the timeout with the time and what it waited for, read at the end', async () => {
    let seen = 0;
    const started = Date.now();
    const waiting = until(() => `seven, saw ${seen}`, () => ++seen === 7, { timeoutMs: 50, everyMs: 20 });
    await expect(waiting).rejects.toThrow(/^timed out after 50 ms waiting for seven, saw \d+$/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(50);
  });

  it('ends the wait with the error of a probe that throws', async () => {
    await expect(
      until('never', () => {
        throw new Error('probe broke');
      }),
    ).rejects.toThrow('probe broke');
  });
});
