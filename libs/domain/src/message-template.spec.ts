import {
  checkSmsTemplate,
  checkVoiceTemplate,
  DEFAULT_SMS_TEMPLATE,
  DEFAULT_VOICE_TEMPLATE,
  effectiveTemplate,
  findFlaggedWords,
  SmsTemplateSchema,
  smsSize,
  VoiceTemplateSchema,
} from './message-template.js';

describe('the default templates', () => {
  it('fit one GSM-7 segment with the longest code and pass their own checks', () => {
    expect(smsSize(DEFAULT_SMS_TEMPLATE.replace('{code}', '0000000000'))).toEqual({ encoding: 'gsm7', used: 70, limit: 160 });
    expect(checkSmsTemplate(DEFAULT_SMS_TEMPLATE)).toEqual([]);
    expect(checkVoiceTemplate(DEFAULT_VOICE_TEMPLATE)).toEqual([]);
  });

  it('stand in for each channel the account has no template of', () => {
    expect(effectiveTemplate(undefined)).toEqual({ sms: DEFAULT_SMS_TEMPLATE, voice: DEFAULT_VOICE_TEMPLATE });
    expect(effectiveTemplate({ sms: 'ACME {code}' })).toEqual({ sms: 'ACME {code}', voice: DEFAULT_VOICE_TEMPLATE });
  });
});

describe('SMS template validation', () => {
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
    // Glued onto a brand, as exchanges write them.
    expect(findFlaggedWords('NexoWallet eWallet VNCrypto MyExchange NexoCoin ABCUSDT')).toEqual(['crypto', 'usdt', 'coin', 'wallet', 'exchange']);
  });

  it('does not flag innocent words that merely contain a flagged one', () => {
    // "bitcoinless" is flagged for what it contains (bitcoin, and coin inside it).
    expect(findFlaggedWords('vì vậy, vi phạm, sản phẩm, Ethan, method, bitcoinless')).toEqual(['bitcoin', 'coin']);
    expect(findFlaggedWords('Xin vui long nhap ma {code} vao ung dung')).toEqual([]);
  });

  it('refuses other placeholders, control characters and templates that would not fit one segment', () => {
    expect(checkSmsTemplate('{code} {name}')).toEqual([{ code: 'unknown_placeholder', placeholder: '{name}' }]);
    expect(checkSmsTemplate('{code}\u0007')).toEqual([{ code: 'control_characters' }]);
    // C1 controls too (invisible, and they would turn the SMS into UCS-2), and a Windows line end.
    expect(checkSmsTemplate('Ma {code}\u0085NexoPay')).toEqual([{ code: 'control_characters' }]);
    expect(checkSmsTemplate('Ma OTP:\r\n{code}')).toEqual([{ code: 'control_characters' }]);
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

describe('voice template validation', () => {
  it('takes words around one {code}', () => {
    expect(checkVoiceTemplate('ACME xin chào. Mã của bạn là {code}.')).toEqual([]);
  });

  it('refuses {code} twice (the call repeats the digits itself), none, flagged words and control characters', () => {
    expect(checkVoiceTemplate('{code} {code}')).toEqual([{ code: 'repeated_code' }]);
    expect(checkVoiceTemplate('Mã của bạn')).toEqual([{ code: 'missing_code' }]);
    expect(checkVoiceTemplate('Mã ví của bạn là {code}')).toEqual([{ code: 'flagged_word', word: 'ví' }]);
    expect(checkVoiceTemplate('{code}\u0000')).toEqual([{ code: 'control_characters' }]);
  });

  it('refuses markup a voice upstream could take as SSML (tags, entities); an ampersand in words is text', () => {
    expect(checkVoiceTemplate('<speak>Ma {code}</speak>')).toEqual([{ code: 'markup', text: '<' }]);
    expect(checkVoiceTemplate('Ma {code} <audio src="x"/>')).toEqual([{ code: 'markup', text: '<' }]);
    expect(checkVoiceTemplate('Ma {code} &#60;break/&#62;')).toEqual([{ code: 'markup', text: '&#60;' }]);
    expect(checkVoiceTemplate('A & B: ma {code}')).toEqual([]);
    // SMS text is never read as markup.
    expect(checkSmsTemplate('Ma <b>{code}</b>')).toEqual([]);
  });

  it('counts characters, not SMS segments: accents cost nothing more', () => {
    expect(checkVoiceTemplate(`{code} ${'â'.repeat(193)}`)).toEqual([]);
    expect(checkVoiceTemplate(`{code} ${'â'.repeat(194)}`)).toEqual([{ code: 'too_long', used: 201, limit: 200 }]);
    // One message, the template check's own.
    expect(VoiceTemplateSchema.safeParse(`{code} ${'a'.repeat(194)}`).error?.issues.map((i) => i.message)).toEqual(['longer than 200 characters (201)']);
  });
});

describe('a template hides nothing from the filter: no invisible characters, no look-alike letters', () => {
  const invisible = (...codepoints: string[]) => ({ code: 'invisible_characters', codepoints });

  it('refuses invisible and format characters, which split a flagged word for the filter and not for the eye', () => {
    // Stripped for the word check too: both reasons are given.
    expect(checkSmsTemplate('v\u200Bí {code}')).toEqual([{ code: 'flagged_word', word: 'ví' }, invisible('U+200B')]);
    expect(checkSmsTemplate('Wal\u200blet code {code}')).toEqual([{ code: 'flagged_word', word: 'wallet' }, invisible('U+200B')]);
    expect(checkSmsTemplate('Cryp\u00ADto {code}')).toEqual([{ code: 'flagged_word', word: 'crypto' }, invisible('U+00AD')]);
    expect(checkVoiceTemplate('Mã v\u2060í của bạn là {code}')).toEqual([{ code: 'flagged_word', word: 'ví' }, invisible('U+2060')]);
    // Right-to-left override: "tellaw" shows as "wallet".
    expect(checkSmsTemplate('Ma {code} \u202Etellaw\u202C')).toEqual([invisible('U+202E', 'U+202C')]);
    // Combining grapheme joiner and variation selectors are not Cf, but render as nothing all the same.
    expect(checkSmsTemplate('Wal\u034Flet\uFE0F {code}')).toEqual([{ code: 'flagged_word', word: 'wallet' }, invisible('U+034F', 'U+FE0F')]);
    // A hair space, a no-break space, a line separator: spaces and breaks other than " " and \n.
    expect(checkSmsTemplate('Wal\u200Alet {code}\u00A0\u2028')).toEqual([invisible('U+200A', 'U+00A0', 'U+2028')]);
  });

  it('names the character by its code point, never echoing it', () => {
    const r = SmsTemplateSchema.safeParse('Ma {code}\u200B');
    expect(r.error?.issues.map((i) => i.message)).toEqual(['contains invisible or format characters (U+200B); only visible text and plain spaces are allowed']);
  });

  it('reads fullwidth and styled letters as the plain ones they show', () => {
    expect(findFlaggedWords('ＷＡＬＬＥＴ {code} 𝐜𝐨𝐢𝐧')).toEqual(['coin', 'wallet']);
  });

  it('refuses Cyrillic or Greek letters beside Latin ones (wаllet with a Cyrillic а), and keeps Vietnamese', () => {
    expect(checkSmsTemplate('Your wаllet code {code}')).toEqual([{ code: 'mixed_scripts', codepoint: 'U+0430' }]);
    expect(checkVoiceTemplate('Mã cοin của bạn là {code}')).toEqual([{ code: 'mixed_scripts', codepoint: 'U+03BF' }]);
    // {code} is ours: a template in one other script is not a mix.
    expect(checkSmsTemplate('Ваш код {code}')).toEqual([]);
    expect(checkSmsTemplate('Mã xác thực của bạn là {code}')).toEqual([]);
    expect(checkVoiceTemplate('ACME xin chào. Mã đăng nhập của bạn là {code}.')).toEqual([]);
    expect(checkSmsTemplate('ACME\nYour verification code is {code}. Do not share it.')).toEqual([]);
  });
});

describe('a template carries no link: a phishing text under our sender ID gets it blocked', () => {
  const link = (text: string) => [{ code: 'link', text }];

  it('refuses schemes, www. and bare domains, with or without a path', () => {
    expect(checkSmsTemplate('Your account is locked. Verify now at https://evil.example/login code {code}')).toEqual(link('https://'));
    expect(checkVoiceTemplate('Vào HTTP://evil.example nhập {code}')).toEqual(link('http://'));
    expect(checkSmsTemplate('Vao www.nexo-pay.vn nhap {code}')).toEqual(link('www.nexo'));
    expect(checkSmsTemplate('Ma {code} tai evil.example/login')).toEqual(link('evil.example'));
    expect(checkSmsTemplate('{code} bit.ly/x')).toEqual(link('bit.ly'));
    expect(checkSmsTemplate('Xac minh tai 45.12.33.7/login ma {code}')).toEqual(link('45.12.33.7'));
    expect(checkSmsTemplate('{code} http 45.12.33.7.')).toEqual(link('45.12.33.7'));
    // As a phone shows it: fullwidth folded, digits filled in, invisible characters gone.
    expect(checkSmsTemplate('{code} ｅｖｉｌ．ｅｘａｍｐｌｅ')).toEqual(link('evil.example'));
    expect(checkSmsTemplate('Vao evil{code}.example')).toEqual(link('evil0000000000.example'));
  });

  it('keeps ordinary sentences: a full stop followed by a space, or by digits, is no address', () => {
    expect(checkSmsTemplate('Ma OTP: {code}. Het han sau 5 phut.')).toEqual([]);
    expect(checkSmsTemplate('{code} la ma OTP cua ban, gia 5.000 VND. Cam on!')).toEqual([]);
    expect(checkSmsTemplate('{code} la ma OTP, phi 1.000.000 VND.')).toEqual([]);
    expect(checkSmsTemplate(DEFAULT_SMS_TEMPLATE)).toEqual([]);
    expect(checkVoiceTemplate(DEFAULT_VOICE_TEMPLATE)).toEqual([]);
    expect(SmsTemplateSchema.safeParse('Ma {code} tai bit.ly/x').error?.issues.map((i) => i.message)).toEqual([
      'templates cannot contain links or web addresses ("bit.ly"; a full stop not followed by a space reads as one)',
    ]);
  });
});
