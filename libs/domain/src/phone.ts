/**
 * Vietnamese mobile numbers: normalization and the carrier prefix table.
 * Prefixes give the original carrier (mobile number portability exists);
 * `CarrierOverrides` lets an upstream's answer correct one number.
 */
export const CARRIERS = ['viettel', 'vinaphone', 'mobifone', 'vietnamobile', 'gmobile', 'itelecom', 'reddi'] as const;
export type Carrier = (typeof CARRIERS)[number];

export const CHANNELS = ['sms', 'voice'] as const;
export type Channel = (typeof CHANNELS)[number];
export type RequestedChannel = Channel | 'auto';

/** Two-digit prefixes after the national `0` (libphonenumber 84.txt, after the 2018 conversion). */
const PREFIXES: Record<Carrier, readonly string[]> = {
  viettel: ['32', '33', '34', '35', '36', '37', '38', '39', '86', '96', '97', '98'],
  vinaphone: ['81', '82', '83', '84', '85', '88', '91', '94'],
  mobifone: ['70', '76', '77', '78', '79', '89', '90', '93'],
  vietnamobile: ['52', '56', '58', '92'],
  gmobile: ['59', '99'],
  itelecom: ['87'],
  reddi: ['55'],
};

const CARRIER_BY_PREFIX: ReadonlyMap<string, Carrier> = new Map(
  (Object.entries(PREFIXES) as [Carrier, readonly string[]][]).flatMap(([carrier, ps]) => ps.map((p) => [p, carrier] as const)),
);

/** Channels each carrier takes by default. Mobifone has no voice route; the rest have none until configured. */
export const DEFAULT_CARRIER_CHANNELS: Readonly<Record<Carrier, readonly Channel[]>> = {
  viettel: ['voice', 'sms'],
  vinaphone: ['voice', 'sms'],
  vietnamobile: ['voice', 'sms'],
  mobifone: ['sms'],
  gmobile: [],
  itelecom: [],
  reddi: [],
};

export interface VnMobile {
  /** `+84912345678` */
  e164: string;
  /** `0912345678` */
  national: string;
  carrier: Carrier;
}

const SEPARATORS = /[\s\-().]/g;

/** Normalizes `+84 912 345 678`, `0912-345-678`, `84912345678`; returns null when it is not a VN mobile. */
export function parseVnMobile(input: string, overrides?: ReadonlyMap<string, Carrier>): VnMobile | null {
  if (typeof input !== 'string' || input.length > 32) return null;
  let digits = input.trim().replace(SEPARATORS, '');
  if (digits.startsWith('+84')) digits = digits.slice(3);
  else if (digits.startsWith('0084')) digits = digits.slice(4);
  else if (digits.startsWith('84') && (digits.length === 11 || (digits.length === 12 && digits[2] === '0'))) digits = digits.slice(2);
  else if (digits.startsWith('0') && digits.length === 10) digits = digits.slice(1);
  else return null;
  // `+84 (0) 912 345 678`: the national trunk 0 kept after the country code, as people often write it.
  if (digits.length === 10 && digits.startsWith('0')) digits = digits.slice(1);
  if (!/^\d{9}$/.test(digits)) return null;
  const prefixCarrier = CARRIER_BY_PREFIX.get(digits.slice(0, 2));
  if (!prefixCarrier) return null;
  const e164 = `+84${digits}`;
  return { e164, national: `0${digits}`, carrier: overrides?.get(e164) ?? prefixCarrier };
}

/** `+84912345678` → `+8491****678`: country code, two digits, stars, last three. */
export function maskPhone(e164: string): string {
  return `${e164.slice(0, 5)}${'*'.repeat(Math.max(0, e164.length - 8))}${e164.slice(-3)}`;
}

/**
 * Picks the channel for a request. `auto` prefers voice (rings in 5-10 s) where
 * the carrier has it; returns null when the carrier has no route for the ask.
 */
export function pickChannel(
  carrier: Carrier,
  requested: RequestedChannel,
  routes: Readonly<Record<Carrier, readonly Channel[]>> = DEFAULT_CARRIER_CHANNELS,
): Channel | null {
  const available = routes[carrier] ?? [];
  if (requested === 'auto') return available.includes('voice') ? 'voice' : available.includes('sms') ? 'sms' : null;
  return available.includes(requested) ? requested : null;
}
