import { DomainError } from './errors.js';

describe('DomainError', () => {
  it('a refusal carries its code, message and details, and no stack frames (cheap to give by the thousand)', () => {
    const e = new DomainError('insufficient_balance', 'balance 0.000000 does not cover 0.022000', { needed: '0.022000' });
    expect(e).toBeInstanceOf(Error);
    expect(e).toMatchObject({ name: 'DomainError', code: 'insufficient_balance', message: 'balance 0.000000 does not cover 0.022000', details: { needed: '0.022000' } });
    expect(e.stack).toBe('DomainError: balance 0.000000 does not cover 0.022000');
  });

  it('an error of our own code keeps its stack trace, and the limit is left as it was', () => {
    const before = Error.stackTraceLimit;
    const e = new DomainError('invalid_command', 'price must not be negative');
    expect(e.stack).toMatch(/\n\s+at /);
    expect(Error.stackTraceLimit).toBe(before);
    new DomainError('rate_limited', 'wait');
    expect(Error.stackTraceLimit).toBe(before);
    expect(new Error('plain').stack).toMatch(/\n\s+at /);
  });
});
