/**
 * Money is integer micro-USD (`bigint`) inside, a digit string in events and
 * a 6-place decimal string in the API. Stablecoins credit 1:1 with USD.
 * There is no float anywhere on this path: every conversion is integer maths.
 */
export type Micros = bigint;

export const MICROS_PER_USD = 1_000_000n;
const USD_DECIMALS = 6;

const DIGITS = /^-?\d+$/;
const DECIMAL = /^(-?)(\d+)(?:\.(\d{1,6}))?$/;

/** Parses a stored digit string (`"22000"`) into micros. */
export function microsFromDigits(digits: string): Micros {
  if (!DIGITS.test(digits)) throw new RangeError(`not an integer amount: ${JSON.stringify(digits)}`);
  return BigInt(digits);
}

/** The stored form of an amount: a plain digit string. */
export function microsToDigits(micros: Micros): string {
  return micros.toString();
}

/** Parses `"0.022"` or `"12.340000"` (at most 6 places, no rounding) into micros. */
export function parseUsd(text: string): Micros {
  const m = DECIMAL.exec(text.trim());
  if (!m) throw new RangeError(`not a USD amount with at most 6 decimals: ${JSON.stringify(text)}`);
  const [, sign, whole, frac = ''] = m;
  const value = BigInt(whole) * MICROS_PER_USD + BigInt(frac.padEnd(USD_DECIMALS, '0'));
  return sign === '-' ? -value : value;
}

/** Formats micros as the API's decimal string with 6 places: `22000n` → `"0.022000"`. */
export function formatUsd(micros: Micros): string {
  const negative = micros < 0n;
  const abs = negative ? -micros : micros;
  const whole = abs / MICROS_PER_USD;
  const frac = (abs % MICROS_PER_USD).toString().padStart(USD_DECIMALS, '0');
  return `${negative ? '-' : ''}${whole}.${frac}`;
}

export interface TokenConversion {
  micros: Micros;
  /** Token base units dropped because they are finer than one micro-USD (always ≥ 0). */
  truncatedUnits: bigint;
}

/**
 * Converts an ERC-20 amount in base units to micro-USD. Tokens with more than
 * 6 decimals (BSC's 18-decimal USDT/USDC) lose their dust: the conversion
 * truncates towards zero and reports what it dropped so the ledger can record it.
 */
export function tokenUnitsToMicros(units: bigint, decimals: number): TokenConversion {
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > 36) throw new RangeError(`bad token decimals: ${decimals}`);
  if (units < 0n) throw new RangeError('token amount must not be negative');
  if (decimals <= USD_DECIMALS) {
    return { micros: units * 10n ** BigInt(USD_DECIMALS - decimals), truncatedUnits: 0n };
  }
  const scale = 10n ** BigInt(decimals - USD_DECIMALS);
  return { micros: units / scale, truncatedUnits: units % scale };
}

/** Converts micro-USD to token base units (exact: micros are never finer than a token unit). */
export function microsToTokenUnits(micros: Micros, decimals: number): bigint {
  if (decimals >= USD_DECIMALS) return micros * 10n ** BigInt(decimals - USD_DECIMALS);
  const scale = 10n ** BigInt(USD_DECIMALS - decimals);
  if (micros % scale !== 0n) throw new RangeError(`amount ${micros} micros is finer than a ${decimals}-decimal token unit`);
  return micros / scale;
}
