/**
 * What the user reads or hears. Carrier filters in Vietnam drop messages that
 * mention virtual currency, wallets or exchanges (REFERENCE.md), so account
 * templates are checked against those words before they are accepted.
 */
import { z } from 'zod';
import type { Channel } from '#domain';

/**
 * Without diacritics on purpose: plain ASCII stays in GSM-7 (160 chars per
 * segment instead of 70 in UCS-2), and unaccented brandname OTPs are the norm.
 * "Your verification code is {code}. Do not share this code with anyone."
 */
export const DEFAULT_SMS_TEMPLATE = 'Ma xac thuc cua ban la {code}. Khong chia se ma nay voi bat ky ai.';
export const CODE_PLACEHOLDER = '{code}';

const CODE = /^\d{4,10}$/;
const WORST_CODE = '0000000000';

/** `prefix: true` also matches longer words starting with it (crypto → cryptocurrency). */
const FLAGGED: readonly { word: string; prefix?: boolean }[] = [
  { word: 'crypto', prefix: true },
  { word: 'bitcoin', prefix: true },
  { word: 'btc' },
  { word: 'eth' },
  { word: 'ethereum' },
  { word: 'usdt' },
  { word: 'usdc' },
  { word: 'coin', prefix: true },
  { word: 'wallet', prefix: true },
  { word: 'exchange', prefix: true },
  { word: 'binance' },
  { word: 'blockchain', prefix: true },
  { word: 'nft', prefix: true },
  { word: 'airdrop', prefix: true },
  { word: 'ví' },
  { word: 'sàn' },
  { word: 'tiền ảo' },
  { word: 'tien ao' },
  { word: 'tiền điện tử' },
  { word: 'tien dien tu' },
  { word: 'tiền mã hóa' },
  { word: 'tiền mã hoá' },
  { word: 'tien ma hoa' },
  { word: 'ví điện tử' },
  { word: 'vi dien tu' },
  { word: 'san giao dich' },
];
export const FLAGGED_WORDS: readonly string[] = FLAGGED.map((f) => f.word);

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const FLAGGED_RE = FLAGGED.map((f) => ({
  word: f.word,
  // \p{L}\p{N} boundaries, not \b: \b treats "í" in "ví" as a non-word character.
  re: new RegExp(`(?<![\\p{L}\\p{N}])${escape(f.word).replace(/ /g, '\\s+')}${f.prefix ? '' : '(?![\\p{L}\\p{N}])'}`, 'u'),
}));

/** Flagged words found in a text, compared NFC-normalized and lower-cased so decomposed accents do not slip through. */
export function findFlaggedWords(text: string): string[] {
  const t = text.normalize('NFC').toLowerCase();
  return FLAGGED_RE.filter((f) => f.re.test(t)).map((f) => f.word);
}

// GSM 03.38 basic set; the extension set costs two septets.
const GSM7_BASIC = /^[@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&'()*+,\-./0-9:;<=>?¡A-ZÄÖÑÜ§¿a-zäöñüà]$/;
const GSM7_EXT = /^[\f^{}\\[~\]|€]$/;

/** Characters or septets one SMS segment carries, and what this text uses. */
export function smsSize(text: string): { encoding: 'gsm7' | 'ucs2'; used: number; limit: number } {
  let septets = 0;
  for (const ch of text) {
    if (GSM7_BASIC.test(ch)) septets += 1;
    else if (GSM7_EXT.test(ch)) septets += 2;
    else return { encoding: 'ucs2', used: [...text].reduce((n, c) => n + (c.codePointAt(0)! > 0xffff ? 2 : 1), 0), limit: 70 };
  }
  return { encoding: 'gsm7', used: septets, limit: 160 };
}

export type TemplateProblem =
  | { code: 'missing_code' }
  | { code: 'unknown_placeholder'; placeholder: string }
  | { code: 'flagged_word'; word: string }
  | { code: 'too_long'; used: number; limit: number }
  | { code: 'control_characters' };

/** Empty when the template is usable. It must fit one segment with a 10-digit code: split OTPs arrive late or in pieces. */
export function checkSmsTemplate(template: string): TemplateProblem[] {
  const problems: TemplateProblem[] = [];
  if (!template.includes(CODE_PLACEHOLDER)) problems.push({ code: 'missing_code' });
  for (const m of template.matchAll(/\{[^}]*\}/g)) {
    if (m[0] !== CODE_PLACEHOLDER) problems.push({ code: 'unknown_placeholder', placeholder: m[0].slice(0, 32) });
  }
  for (const word of findFlaggedWords(template)) problems.push({ code: 'flagged_word', word });
  if (/[\u0000-\u0009\u000b-\u001f\u007f]/.test(template)) problems.push({ code: 'control_characters' });
  const size = smsSize(fill(template, WORST_CODE));
  if (size.used > size.limit) problems.push({ code: 'too_long', used: size.used, limit: size.limit });
  return problems;
}

/** For the API edge (per-account template): refuses what `checkSmsTemplate` refuses. */
export const SmsTemplateSchema = z
  .string()
  .min(1)
  .max(320)
  .superRefine((t, ctx) => {
    for (const p of checkSmsTemplate(t)) ctx.addIssue({ code: 'custom', message: describe(p), params: p });
  });

function describe(p: TemplateProblem): string {
  switch (p.code) {
    case 'missing_code':
      return `template must contain ${CODE_PLACEHOLDER}`;
    case 'unknown_placeholder':
      return `unknown placeholder ${p.placeholder}; only ${CODE_PLACEHOLDER} is supported`;
    case 'flagged_word':
      return `carriers filter messages containing "${p.word}"`;
    case 'too_long':
      return `does not fit one SMS with a 10-digit code (${p.used}/${p.limit})`;
    case 'control_characters':
      return 'control characters are not allowed';
  }
}

// split/join rather than String.replace: a replacement string would give `$&` and friends a meaning.
const fill = (template: string, code: string): string => template.split(CODE_PLACEHOLDER).join(code);

function assertCode(code: string): void {
  // The message never echoes the value: it is the OTP.
  if (!CODE.test(code)) throw new RangeError('OTP code must be 4-10 digits');
}

/** The SMS text, from the account's template when it has one. Templates are checked when stored, not here. */
export function renderSmsText(code: string, template: string = DEFAULT_SMS_TEMPLATE): string {
  assertCode(code);
  return fill(template, code);
}

export const VI_DIGITS: readonly string[] = ['không', 'một', 'hai', 'ba', 'bốn', 'năm', 'sáu', 'bảy', 'tám', 'chín'];

/**
 * Speech for a text-to-speech call: the digits one by one, twice, with
 * accents (a TTS engine mispronounces unaccented Vietnamese). Commas make the
 * engine pause between digits so they are not read as one number.
 */
export function renderVoiceSpeech(code: string): string {
  assertCode(code);
  const digits = [...code].map((d) => VI_DIGITS[Number(d)]).join(', ');
  return `Mã xác thực của bạn là: ${digits}. Xin nhắc lại: ${digits}.`;
}

/** The channel-specific part of a SubmitRequest. */
export function renderMessage(
  channel: Channel,
  code: string,
  smsTemplate?: string,
): { channel: 'sms'; text: string; digits: string } | { channel: 'voice'; speech: string; digits: string } {
  return channel === 'sms'
    ? { channel, text: renderSmsText(code, smsTemplate), digits: code }
    : { channel, speech: renderVoiceSpeech(code), digits: code };
}
