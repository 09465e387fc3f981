import { renderMessage, renderSmsText, renderVoiceSpeech } from './message-text.js';

describe('SMS text', () => {
  it('fills the default Vietnamese template', () => {
    expect(renderSmsText('482913')).toBe('Ma xac thuc cua ban la 482913. Khong chia se ma nay voi bat ky ai.');
  });

  it('uses the account template and every {code} in it, with no $-pattern surprises', () => {
    expect(renderSmsText('1234', 'ACME: {code} la ma cua ban ({code})')).toBe('ACME: 1234 la ma cua ban (1234)');
    expect(renderSmsText('1234', 'Ma $& {code}')).toBe('Ma $& 1234');
  });

  it('refuses a code that is not 4-10 digits, without echoing it', () => {
    expect(() => renderSmsText('12a4')).toThrow(/4-10 digits$/);
    expect(() => renderSmsText('123')).toThrow(RangeError);
    expect(() => renderVoiceSpeech('12345678901')).toThrow(RangeError);
  });
});

describe('voice speech', () => {
  it('reads the digits one by one, twice, in Vietnamese', () => {
    expect(renderVoiceSpeech('1907')).toBe('Mã xác thực của bạn là: một, chín, không, bảy. Xin nhắc lại: một, chín, không, bảy.');
  });

  it("reads them twice in the account's words too: its template around the first reading", () => {
    expect(renderVoiceSpeech('2468', 'ACME xin chào. Mã của bạn là {code}.')).toBe('ACME xin chào. Mã của bạn là hai, bốn, sáu, tám. Xin nhắc lại: hai, bốn, sáu, tám.');
    // A template that does not end a sentence still gets a pause before the repeat.
    expect(renderVoiceSpeech('2468', 'Mã OTP của bạn là {code}')).toBe('Mã OTP của bạn là hai, bốn, sáu, tám. Xin nhắc lại: hai, bốn, sáu, tám.');
    expect(renderVoiceSpeech('2468', 'Mã OTP:\n{code}\nCảm ơn quý khách')).toBe('Mã OTP:\nhai, bốn, sáu, tám\nCảm ơn quý khách. Xin nhắc lại: hai, bốn, sáu, tám.');
  });

  it('renders the channel-specific part of a submit, in the account templates or the defaults', () => {
    expect(renderMessage('sms', '1234')).toEqual({ channel: 'sms', text: renderSmsText('1234'), digits: '1234' });
    expect(renderMessage('voice', '5678')).toEqual({ channel: 'voice', speech: renderVoiceSpeech('5678'), digits: '5678' });
    const template = { sms: 'ACME {code}' };
    expect(renderMessage('sms', '1234', template)).toEqual({ channel: 'sms', text: 'ACME 1234', digits: '1234' });
    expect(renderMessage('voice', '5678', template)).toEqual({ channel: 'voice', speech: renderVoiceSpeech('5678'), digits: '5678' });
  });

  it('sends the default text instead of a template stored under older rules that today refuse it (a link, an invisible character)', () => {
    const stored = { sms: 'Tai khoan bi khoa. Xac minh tai https://evil.example/login ma {code}', voice: 'v\u200Bí của bạn: {code}' };
    expect(renderMessage('sms', '1234', stored)).toEqual({ channel: 'sms', text: renderSmsText('1234'), digits: '1234' });
    expect(renderMessage('voice', '5678', stored)).toEqual({ channel: 'voice', speech: renderVoiceSpeech('5678'), digits: '5678' });
  });
});
