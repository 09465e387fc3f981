import fc from 'fast-check';
import {
  formatUsd,
  MICROS_PER_USD,
  microsFromDigits,
  microsToDigits,
  microsToTokenUnits,
  parseUsd,
  tokenUnitsToMicros,
} from './money.js';

describe('parseUsd', () => {
  it.each([
    ['0.022', 22_000n],
    ['0.022000', 22_000n],
    ['12.340000', 12_340_000n],
    ['1', 1_000_000n],
    ['0', 0n],
    ['0.000001', 1n],
    ['007.5', 7_500_000n],
    ['  3.5\n', 3_500_000n],
    ['-0.5', -500_000n],
    ['-0', 0n],
    ['123456789012345678901234.123456', 123456789012345678901234_123456n],
  ])('parses %j as %s micros', (text, micros) => {
    expect(parseUsd(text)).toBe(micros);
  });

  it.each([
    '0.0220001',
    '1.1234567',
    '0.0000001',
    '',
    '   ',
    '.5',
    '5.',
    '+1',
    '1,5',
    '1 000',
    '1e3',
    '1e-3',
    '0x10',
    'NaN',
    'Infinity',
    'abc',
    '1.2.3',
    '--1',
    '١٫٥',
    '１',
  ])('rejects %j instead of rounding or guessing', (text) => {
    expect(() => parseUsd(text)).toThrow(RangeError);
  });

  it('adds like integers, not like floats', () => {
    expect(parseUsd('0.1') + parseUsd('0.2')).toBe(parseUsd('0.3'));
  });
});

describe('formatUsd', () => {
  it.each([
    [22_000n, '0.022000'],
    [0n, '0.000000'],
    [1n, '0.000001'],
    [12_340_000n, '12.340000'],
    [MICROS_PER_USD, '1.000000'],
    [123456789012345678901234_123456n, '123456789012345678901234.123456'],
  ])('formats %s micros as %j', (micros, text) => {
    expect(formatUsd(micros)).toBe(text);
  });

  it.each([
    [-1n, '-0.000001'],
    [-22_000n, '-0.022000'],
    [-1_500_000n, '-1.500000'],
    [-MICROS_PER_USD, '-1.000000'],
  ])('formats a negative balance %s as %j (sign before the whole part)', (micros, text) => {
    expect(formatUsd(micros)).toBe(text);
  });

  it('round-trips every amount through its API form', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }), (micros) => {
        const text = formatUsd(micros);
        expect(text).toMatch(/^-?\d+\.\d{6}$/);
        expect(parseUsd(text)).toBe(micros);
      }),
    );
  });

  it('round-trips every decimal with at most 6 places to its 6-place form', () => {
    const decimal = fc.record({
      negative: fc.boolean(),
      whole: fc.bigInt({ min: 0n, max: 10n ** 24n }),
      frac: fc.string({ unit: fc.constantFrom(...'0123456789'), maxLength: 6 }),
    });
    fc.assert(
      fc.property(decimal, ({ negative, whole, frac }) => {
        const text = `${negative ? '-' : ''}${whole}${frac ? `.${frac}` : ''}`;
        const micros = parseUsd(text);
        const zero = micros === 0n;
        expect(formatUsd(micros)).toBe(`${negative && !zero ? '-' : ''}${whole}.${frac.padEnd(6, '0')}`);
      }),
    );
  });
});

describe('stored digit strings', () => {
  it('round-trip', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }), (micros) => {
        expect(microsFromDigits(microsToDigits(micros))).toBe(micros);
      }),
    );
    expect(microsToDigits(22_000n)).toBe('22000');
  });

  it.each(['1.5', '', ' 1', '1e3', '0x1', '+1', '١'])('rejects %j', (digits) => {
    expect(() => microsFromDigits(digits)).toThrow(RangeError);
  });
});

describe('tokenUnitsToMicros', () => {
  it('is exact for 6-decimal tokens (USDT/USDC on Ethereum, Tron, Polygon)', () => {
    expect(tokenUnitsToMicros(1_500_000n, 6)).toEqual({ micros: 1_500_000n, truncatedUnits: 0n });
    expect(tokenUnitsToMicros(1n, 6)).toEqual({ micros: 1n, truncatedUnits: 0n });
    expect(tokenUnitsToMicros(0n, 6)).toEqual({ micros: 0n, truncatedUnits: 0n });
  });

  it('truncates 18-decimal dust towards zero and reports exactly what it dropped', () => {
    expect(tokenUnitsToMicros(1_500_000_000_000_000_000n, 18)).toEqual({ micros: 1_500_000n, truncatedUnits: 0n });
    expect(tokenUnitsToMicros(1_234_567_890_123_456_789n, 18)).toEqual({
      micros: 1_234_567n,
      truncatedUnits: 890_123_456_789n,
    });
    expect(tokenUnitsToMicros(999_999_999_999n, 18)).toEqual({ micros: 0n, truncatedUnits: 999_999_999_999n });
    expect(tokenUnitsToMicros(1_000_000_000_000n, 18)).toEqual({ micros: 1n, truncatedUnits: 0n });
  });

  it('scales up tokens with fewer than 6 decimals', () => {
    expect(tokenUnitsToMicros(150n, 2)).toEqual({ micros: 1_500_000n, truncatedUnits: 0n });
    expect(tokenUnitsToMicros(3n, 0)).toEqual({ micros: 3_000_000n, truncatedUnits: 0n });
  });

  it.each([-1, 1.5, 37, Number.NaN])('rejects %s decimals', (decimals) => {
    expect(() => tokenUnitsToMicros(1n, decimals)).toThrow(RangeError);
  });

  it('rejects negative token amounts', () => {
    expect(() => tokenUnitsToMicros(-1n, 6)).toThrow(RangeError);
    expect(() => tokenUnitsToMicros(-1n, 18)).toThrow(RangeError);
  });

  it('loses nothing: micros plus dropped units rebuild the token amount', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 40n }), fc.integer({ min: 0, max: 36 }), (units, decimals) => {
        const { micros, truncatedUnits } = tokenUnitsToMicros(units, decimals);
        expect(micros).toBeGreaterThanOrEqual(0n);
        expect(truncatedUnits).toBeGreaterThanOrEqual(0n);
        if (decimals <= 6) {
          expect(truncatedUnits).toBe(0n);
          expect(microsToTokenUnits(micros, decimals)).toBe(units);
        } else {
          const scale = 10n ** BigInt(decimals - 6);
          expect(truncatedUnits).toBeLessThan(scale);
          expect(microsToTokenUnits(micros, decimals) + truncatedUnits).toBe(units);
        }
      }),
    );
  });
});

describe('microsToTokenUnits', () => {
  it('converts to 6- and 18-decimal base units exactly', () => {
    expect(microsToTokenUnits(22_000n, 6)).toBe(22_000n);
    expect(microsToTokenUnits(22_000n, 18)).toBe(22_000_000_000_000_000n);
    expect(microsToTokenUnits(1_500_000n, 2)).toBe(150n);
  });

  it('refuses amounts finer than the token unit rather than rounding', () => {
    expect(() => microsToTokenUnits(1n, 2)).toThrow(RangeError);
    expect(() => microsToTokenUnits(1_500_001n, 0)).toThrow(RangeError);
  });

  it('round-trips through token units at 6 and 18 decimals with nothing dropped', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 10n ** 24n }), fc.constantFrom(6, 18), (micros, decimals) => {
        expect(tokenUnitsToMicros(microsToTokenUnits(micros, decimals), decimals)).toEqual({ micros, truncatedUnits: 0n });
      }),
    );
  });
});
