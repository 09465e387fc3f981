import { preferredType } from './negotiation.js';

const LEDGER = ['application/json', 'text/csv'] as const;
const pick = (accept: string | undefined) => preferredType(accept, LEDGER);

describe('preferredType: RFC 9110 proactive negotiation on Accept', () => {
  it('takes the first offered type when there is no Accept header, or an empty one', () => {
    expect(pick(undefined)).toBe('application/json');
    expect(pick('')).toBe('application/json');
    expect(pick('  ')).toBe('application/json');
  });

  it('takes the one type named', () => {
    expect(pick('text/csv')).toBe('text/csv');
    expect(pick('TEXT/CSV; charset=utf-8')).toBe('text/csv');
    expect(pick('application/json')).toBe('application/json');
  });

  it('follows q-values, not the mere mention of a type', () => {
    expect(pick('text/csv;q=0.9, application/json')).toBe('application/json');
    expect(pick('application/json;q=0.5, text/csv;q=0.6')).toBe('text/csv');
    expect(pick('text/csv; q=0, */*')).toBe('application/json');
    expect(pick('application/json;q=0, */*')).toBe('text/csv');
  });

  it('lets */* and type/* stand for what they cover, the most specific range deciding', () => {
    expect(pick('*/*')).toBe('application/json');
    expect(pick('text/*')).toBe('text/csv');
    expect(pick('text/csv, */*;q=0.1')).toBe('text/csv');
    expect(pick('*/*;q=0.1, text/csv;q=0')).toBe('application/json');
    // Same q: the exact match beats the wildcard, then the range listed first wins.
    expect(pick('text/*, application/json')).toBe('application/json');
    expect(pick('text/csv, application/json')).toBe('text/csv');
    expect(pick('application/json, text/csv')).toBe('application/json');
  });

  it('accepts none of them when the header names only other types or refuses all', () => {
    expect(pick('application/xml')).toBeUndefined();
    expect(pick('*/*;q=0')).toBeUndefined();
  });

  it('skips malformed ranges and keeps the rest', () => {
    expect(pick('text/csv;q=2, application/json;q=0.1')).toBe('application/json');
    expect(pick('text/csv;q=abc')).toBeUndefined();
    expect(pick('*/csv, text, application/json;q=0.2')).toBe('application/json');
    expect(pick('text/csv;foo="a,b;q=0", application/json;q=0.5')).toBe('text/csv');
  });
});
