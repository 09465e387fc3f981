import { parseReceiptCallback, parseReference, reference, signBody, verifyReceiptSignature } from './http.protocol.js';

const SECRET = 'a-shared-secret-of-some-length';
const NOW = 1_714_560_000_000;

describe('receipt callback signature', () => {
  const body = JSON.stringify({ message_id: 'm1', reference: 'otp_1:2', status: 'DELIVRD' });
  const header = signBody(SECRET, body, NOW);

  it('accepts the exact body signed with the shared secret', () => {
    expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(verifyReceiptSignature(SECRET, body, header, { nowMs: NOW })).toBe(true);
    expect(verifyReceiptSignature(SECRET, Buffer.from(body), header, { nowMs: NOW })).toBe(true);
  });

  it('rejects a tampered body, another secret, a stale timestamp, or a malformed header', () => {
    expect(verifyReceiptSignature(SECRET, body.replace('DELIVRD', 'UNDELIV'), header, { nowMs: NOW })).toBe(false);
    expect(verifyReceiptSignature('another-secret-entirely', body, header, { nowMs: NOW })).toBe(false);
    expect(verifyReceiptSignature(SECRET, body, header, { nowMs: NOW + 301_000 })).toBe(false);
    expect(verifyReceiptSignature(SECRET, body, undefined)).toBe(false);
    expect(verifyReceiptSignature(SECRET, body, 'v1=abc')).toBe(false);
    expect(verifyReceiptSignature(SECRET, body, header.replace(/t=\d+/, 't=x'), { nowMs: NOW })).toBe(false);
  });

  it('accepts any of several secrets during a rotation', () => {
    expect(verifyReceiptSignature(['new-secret-xxxxxxxxxx', SECRET], body, header, { nowMs: NOW })).toBe(true);
  });
});

describe('receipt callback parsing', () => {
  const parse = (obj: unknown, sign = true) => {
    const raw = JSON.stringify(obj);
    return parseReceiptCallback('agg', SECRET, raw, sign ? signBody(SECRET, raw, NOW) : 't=1,v1=00', { nowMs: NOW });
  };

  it('normalizes a receipt and recovers the otp from our reference', () => {
    expect(parse({ message_id: 'm1', reference: reference('otp_1', 2), status: 'DELIVRD', extra: 'ignored' })).toEqual({
      ok: true,
      receipt: {
        provider: 'agg',
        providerMessageId: 'm1',
        status: 'delivered',
        raw: '{"message_id":"m1","status":"DELIVRD"}',
        at: new Date(NOW).toISOString(),
        otpId: 'otp_1',
        attempt: 2,
      },
    });
  });

  it('acknowledges intermediate statuses without a receipt, and refuses bad signatures and bodies', () => {
    expect(parse({ message_id: 'm1', status: 'ENROUTE' })).toEqual({ ok: true, receipt: null });
    expect(parse({ message_id: 'm1', status: 'WEIRD' })).toEqual({ ok: true, receipt: null, unknownStatus: 'WEIRD' });
    expect(parse({ message_id: 'm1', status: 'FAILED' })).toMatchObject({ ok: true, receipt: { status: 'undelivered' } });
    expect(parse({ message_id: 'm1', status: 'DELIVRD' }, false)).toEqual({ ok: false, reason: 'bad_signature' });
    expect(parse({ status: 'DELIVRD' })).toEqual({ ok: false, reason: 'invalid_body' });
    const raw = 'not json';
    expect(parseReceiptCallback('agg', SECRET, raw, signBody(SECRET, raw, NOW), { nowMs: NOW })).toEqual({ ok: false, reason: 'invalid_body' });
  });

  it('parses only well-formed references', () => {
    expect(parseReference('abc:1')).toEqual({ otpId: 'abc', attempt: 1 });
    expect(parseReference('abc:0')).toBeUndefined();
    expect(parseReference('a:b:1')).toBeUndefined();
    expect(parseReference(undefined)).toBeUndefined();
  });
});
