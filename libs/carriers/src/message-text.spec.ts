import {
  DEFAULT_SMS_TEMPLATE,
  SmsTemplateSchema,
  checkSmsTemplate,
  findFlaggedWords,
  renderMessage,
  renderSmsText,
  renderVoiceSpeech,
  smsSize,
} from './message-text.js';

describe('SMS text', () => {
  it('fills the default Vietnamese template, which fits one GSM-7 segment and passes its own checks', () => {
    const text = renderSmsText('482913');
    expect(text).toBe('Ma xac thuc cua ban la 482913. Khong chia se ma nay voi bat ky ai.');
    expect(smsSize(text)).toEqual({ encoding: 'gsm7', used: text.length, limit: 160 });
    expect(checkSmsTemplate(DEFAULT_SMS_TEMPLATE)).toEqual([]);
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

describe('template validation', () => {
  it('refuses a template without {code}', () => {
    expect(checkSmsTemplate('Ma cua ban')).toEqual([{ code: 'missing_code' }]);
  });

  it('refuses words carrier filters flag, in any case or Unicode form', () => {
    const flagged = (t: string) => checkSmsTemplate(t).filter((p) => p.code === 'flagged_word');
    expect(flagged('Nap tien vao ví {code}')).toEqual([{ code: 'flagged_word', word: 'ví' }]);
    expect(flagged('Ma {code} cho SÀN cua ban')).toEqual([{ code: 'flagged_word', word: 'sàn' }]);
    expect(flagged('Ma {code} tiền ảo'.normalize('NFD'))).toEqual([{ code: 'flagged_word', word: 'tiền ảo' }]);
    expect(flagged('Your Crypto Wallet code {code}').map((p) => 'word' in p && p.word)).toEqual(['crypto', 'wallet']);
    expect(flagged('Exchange code {code}')).toHaveLength(1);
    expect(flagged('Cryptocurrency {code}')).toHaveLength(1);
    expect(flagged('{code} USDT')).toHaveLength(1);
  });

  it('does not flag innocent words that merely contain a flagged one', () => {
    expect(findFlaggedWords('vì vậy, vi phạm, sản phẩm, Ethan, method, bitcoinless')).toEqual(['bitcoin']);
    expect(findFlaggedWords('Xin vui long nhap ma {code} vao ung dung')).toEqual([]);
  });

  it('refuses other placeholders, control characters and templates that would not fit one segment', () => {
    expect(checkSmsTemplate('{code} {name}')).toEqual([{ code: 'unknown_placeholder', placeholder: '{name}' }]);
    expect(checkSmsTemplate('{code}\u0007')).toEqual([{ code: 'control_characters' }]);
    expect(checkSmsTemplate(`{code} ${'x'.repeat(150)}`)).toEqual([{ code: 'too_long', used: 161, limit: 160 }]);
    // Diacritics switch the message to UCS-2, 70 characters a segment.
    expect(checkSmsTemplate('Mã xác thực của bạn tại ACME là {code}. Vui lòng không chia sẻ mã này với bất kỳ ai.')).toEqual([
      { code: 'too_long', used: 88, limit: 70 },
    ]);
    // Exactly 70 with a 10-digit code: the accented default wording still fits.
    expect(checkSmsTemplate('Mã xác thực của bạn là {code}. Không chia sẻ mã này với bất kỳ ai.')).toEqual([]);
  });

  it('exposes the same rules as a zod schema for the API edge', () => {
    expect(SmsTemplateSchema.safeParse('Ma {code}').success).toBe(true);
    const bad = SmsTemplateSchema.safeParse('Nap vi {code} san');
    expect(bad.success).toBe(true); // unaccented "vi"/"san" alone are ordinary words
    const worse = SmsTemplateSchema.safeParse('Ví của bạn');
    expect(worse.success).toBe(false);
    expect(worse.error?.issues.map((i) => i.message)).toEqual([
      'template must contain {code}',
      'carriers filter messages containing "ví"',
    ]);
  });
});

describe('voice speech', () => {
  it('reads the digits one by one, twice, in Vietnamese', () => {
    expect(renderVoiceSpeech('1907')).toBe('Mã xác thực của bạn là: một, chín, không, bảy. Xin nhắc lại: một, chín, không, bảy.');
  });

  it('renders the channel-specific part of a submit', () => {
    expect(renderMessage('sms', '1234')).toEqual({ channel: 'sms', text: renderSmsText('1234'), digits: '1234' });
    expect(renderMessage('voice', '5678')).toEqual({ channel: 'voice', speech: renderVoiceSpeech('5678'), digits: '5678' });
  });
});
