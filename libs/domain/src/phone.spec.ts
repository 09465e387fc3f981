import fc from 'fast-check';
import { type Carrier, CARRIERS, type Channel, DEFAULT_CARRIER_CHANNELS, maskPhone, parseVnMobile, pickChannel } from './phone.js';

const VINAPHONE_0912 = { e164: '+84912345678', national: '0912345678', carrier: 'vinaphone' };

describe('parseVnMobile: normalization', () => {
  it.each([
    '+84 912 345 678',
    '+84912345678',
    '0912345678',
    '84912345678',
    '0912-345-678',
    '(091) 234 5678',
    '091.234.5678',
    '0084912345678',
    '0084 912 345 678',
    '(+84) 912-345-678',
    '  0912345678\t',
    '+84\u00a0912\u00a0345\u00a0678',
    '+84 (0) 912 345 678',
    '840912345678',
  ])('reads %j as +84912345678', (input) => {
    expect(parseVnMobile(input)).toEqual(VINAPHONE_0912);
  });

  it('gives the same number whatever usual form it came in', () => {
    const nationalDigits = fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 7, maxLength: 7 });
    fc.assert(
      fc.property(fc.constantFrom('32', '86', '91', '90', '52', '59', '87', '55'), nationalDigits, (prefix, rest) => {
        const subscriber = `${prefix}${rest}`;
        const expected = parseVnMobile(`0${subscriber}`);
        expect(expected?.e164).toBe(`+84${subscriber}`);
        for (const form of [`+84${subscriber}`, `84${subscriber}`, `0084${subscriber}`, `+84 ${prefix} ${rest.slice(0, 3)} ${rest.slice(3)}`]) {
          expect(parseVnMobile(form)).toEqual(expected);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('parseVnMobile: rejects what is not a Vietnamese mobile', () => {
  it.each([
    ['Hanoi landline 024', '02438123456'],
    ['HCMC landline 028', '+84 28 3822 1234'],
    ['a 10-digit 02x number', '0243812345'],
    ['a pre-2018 11-digit mobile', '01234567890'],
    ['an unassigned prefix', '0951234567'],
    ['an unassigned prefix (0x)', '0412345678'],
    ['too short', '091234567'],
    ['too short after +84', '+8491234567'],
    ['too long', '09123456789'],
    ['too long after +84', '+849123456789'],
    ['too long with 84', '849123456789'],
    ['another country', '+1 415 555 0123'],
    ['a bare subscriber number', '912345678'],
    ['letters', '09l2345678'],
    ['only letters', 'abcdefghij'],
    ['full-width digits', '０９１２３４５６７８'],
    ['Arabic-Indic digits', '٠٩١٢٣٤٥٦٧٨'],
    ['Devanagari digits', '०९१२३४५६७८'],
    ['a plus in the middle', '84+912345678'],
    ['empty', ''],
    ['blank', '   '],
    ['the country code alone', '+84'],
    ['very long input', `0912345678${' '.repeat(10_000)}`],
    ['very long digits', '0'.repeat(100_000)],
  ])('rejects %s (%j)', (_why, input) => {
    expect(parseVnMobile(input)).toBeNull();
  });

  it('rejects input that is not a string at all (untrusted JSON)', () => {
    expect(parseVnMobile(912345678 as unknown as string)).toBeNull();
    expect(parseVnMobile(undefined as unknown as string)).toBeNull();
  });

  it('never throws on arbitrary input', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (input) => {
        const parsed = parseVnMobile(input);
        if (parsed) expect(parsed.e164).toMatch(/^\+84\d{9}$/);
      }),
      { numRuns: 300 },
    );
  });
});

describe('parseVnMobile: carrier prefix table', () => {
  // REFERENCE.md, from libphonenumber 84.txt after the 2018 conversion.
  const TABLE: Record<Carrier, string[]> = {
    viettel: ['032', '033', '034', '035', '036', '037', '038', '039', '086', '096', '097', '098'],
    vinaphone: ['081', '082', '083', '084', '085', '088', '091', '094'],
    mobifone: ['070', '076', '077', '078', '079', '089', '090', '093'],
    vietnamobile: ['052', '056', '058', '092'],
    gmobile: ['059', '099'],
    itelecom: ['087'],
    reddi: ['055'],
  };
  const rows = Object.entries(TABLE).flatMap(([carrier, prefixes]) => prefixes.map((p) => [p, carrier] as const));

  it.each(rows)('%s maps to %s', (prefix, carrier) => {
    expect(parseVnMobile(`${prefix}1234567`)).toEqual({
      e164: `+84${prefix.slice(1)}1234567`,
      national: `${prefix}1234567`,
      carrier,
    });
    expect(parseVnMobile(`+84${prefix.slice(1)}7654321`)?.carrier).toBe(carrier);
  });

  it('knows every carrier and no prefix outside the table', () => {
    expect(Object.keys(TABLE).sort()).toEqual([...CARRIERS].sort());
    const known = new Set(rows.map(([p]) => p));
    for (let n = 0; n < 100; n++) {
      const prefix = `0${String(n).padStart(2, '0')}`;
      if (!known.has(prefix)) expect(parseVnMobile(`${prefix}1234567`)).toBeNull();
    }
  });
});

describe('parseVnMobile: carrier overrides (number portability)', () => {
  const overrides = new Map<string, Carrier>([['+84912345678', 'viettel']]);

  it('takes the override over the prefix for that number, whatever its input form', () => {
    expect(parseVnMobile('0912345678', overrides)?.carrier).toBe('viettel');
    expect(parseVnMobile('+84 912 345 678', overrides)?.carrier).toBe('viettel');
  });

  it('leaves other numbers on their prefix carrier', () => {
    expect(parseVnMobile('0912345679', overrides)?.carrier).toBe('vinaphone');
  });

  it('does not make a non-mobile valid', () => {
    expect(parseVnMobile('02438123456', new Map([['+842438123456', 'viettel']]))).toBeNull();
  });
});

describe('maskPhone (I9: no full phone number outside the sealed field)', () => {
  it('keeps country code, two digits and the last three', () => {
    expect(maskPhone('+84912345678')).toBe('+8491****678');
  });

  it('hides the middle four digits of every valid number', () => {
    const subscriber = fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: 7, maxLength: 7 });
    fc.assert(
      fc.property(subscriber, (rest) => {
        const { e164 } = parseVnMobile(`091${rest}`)!;
        const masked = maskPhone(e164);
        expect(masked).toMatch(/^\+8491\*{4}\d{3}$/);
        expect(masked.endsWith(rest.slice(4))).toBe(true);
      }),
      { numRuns: 100 },
    );
  });
});

describe('pickChannel', () => {
  it.each<[Carrier, Channel]>([
    ['viettel', 'voice'],
    ['vinaphone', 'voice'],
    ['vietnamobile', 'voice'],
    ['mobifone', 'sms'],
  ])('auto on %s picks %s (voice where the carrier has it, else SMS)', (carrier, channel) => {
    expect(pickChannel(carrier, 'auto')).toBe(channel);
  });

  it.each<[Carrier, Channel]>([
    ['viettel', 'sms'],
    ['viettel', 'voice'],
    ['vinaphone', 'sms'],
    ['vinaphone', 'voice'],
    ['vietnamobile', 'sms'],
    ['vietnamobile', 'voice'],
    ['mobifone', 'sms'],
  ])('%s takes an explicit %s', (carrier, channel) => {
    expect(pickChannel(carrier, channel)).toBe(channel);
  });

  it('has no voice route to Mobifone', () => {
    expect(pickChannel('mobifone', 'voice')).toBeNull();
  });

  it.each<Carrier>(['gmobile', 'itelecom', 'reddi'])('has no route at all to %s until one is configured', (carrier) => {
    expect(pickChannel(carrier, 'auto')).toBeNull();
    expect(pickChannel(carrier, 'sms')).toBeNull();
    expect(pickChannel(carrier, 'voice')).toBeNull();
  });

  it('follows a configured routing table', () => {
    const routes = { ...DEFAULT_CARRIER_CHANNELS, gmobile: ['sms'], viettel: ['sms'] } as const;
    expect(pickChannel('gmobile', 'auto', routes)).toBe('sms');
    expect(pickChannel('gmobile', 'voice', routes)).toBeNull();
    expect(pickChannel('viettel', 'auto', routes)).toBe('sms');
  });
});
