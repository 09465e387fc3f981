import fc from 'fast-check';
import { isoTime } from './iso-time.js';

describe('isoTime', () => {
  it('is toISOString for any time, in any order of calls', () => {
    const anyMs = fc.oneof(
      fc.integer({ min: 0, max: 253_402_300_799_999 }),
      // Around now, within a day or two: repeats, same day, the next one.
      fc.integer({ min: 1_795_000_000_000, max: 1_795_200_000_000 }),
      // What the fast path leaves to toISOString: before 1970, six-digit years, fractions.
      fc.integer({ min: -8_640_000_000_000_000, max: 8_640_000_000_000_000 }),
      fc.double({ min: 0, max: 2e12, noNaN: true }),
    );
    fc.assert(
      fc.property(fc.array(anyMs, { minLength: 1, maxLength: 50 }), (times) => {
        for (const ms of times) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
      }),
      { numRuns: 2_000 },
    );
  });

  it('the edges of a day, of a year and of the fast path', () => {
    for (const ms of [0, 86_399_999, 86_400_000, 951_782_400_000 - 1, 951_782_400_000, 253_402_300_799_999, 253_402_300_800_000, -1]) {
      expect(isoTime(ms)).toBe(new Date(ms).toISOString());
      expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    }
  });

  it('throws on an invalid time, as toISOString does', () => {
    expect(() => isoTime(Number.NaN)).toThrow(RangeError);
    expect(() => isoTime(8.64e15 + 1)).toThrow(RangeError);
    expect(isoTime(1_000)).toBe('1970-01-01T00:00:01.000Z');
  });
});
