import { createLogger, linesInto } from './logger.js';

describe('createLogger: redaction (I9) and what operators still get', () => {
  const logged = (fields: Record<string, unknown>) => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', destination: linesInto(lines) });
    logger.warn(fields, 'something happened');
    return lines.join('');
  };

  it('censors codes, phones, secrets and keys wherever they slip into a log object', () => {
    const line = logged({ code: '482913', phone: '+84912345678', nested: { secret: 'whsec_x', apiKey: 'nxo_live_abc' }, authorization: 'Bearer nxo_live_abc' });
    for (const leak of ['482913', '+84912345678', 'whsec_x', 'nxo_live_abc']) expect(line).not.toContain(leak);
    expect(JSON.parse(line)).toMatchObject({ code: '[redacted]', phone: '[redacted]', nested: { secret: '[redacted]', apiKey: '[redacted]' } });
  });

  it("keeps an error's system code as error_code (an OTP code is digits and never passes)", () => {
    const refused = JSON.parse(logged({ err: Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:443'), { code: 'ECONNREFUSED' }) }));
    expect(refused.err).toMatchObject({ type: 'Error', message: 'connect ECONNREFUSED 10.0.0.1:443', error_code: 'ECONNREFUSED' });
    expect(refused.err.code).toBeUndefined();
    const digits = logged({ err: Object.assign(new Error('x'), { code: '482913' }) });
    expect(digits).not.toContain('482913');
  });
});
