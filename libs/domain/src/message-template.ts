/**
 * What an account may have its users read or hear. Carrier filters in Vietnam drop messages that
 * mention virtual currency, wallets or exchanges (REFERENCE.md), so a template is checked against
 * those words, and against the size of one SMS segment, before the account decider takes it. Free
 * accounts send under our sender ID without KYC, and carriers block a sender ID that carries
 * phishing: so no links, and nothing that hides a word from the filter while a reader still sees it.
 * Rendering for a carrier lives in libs/carriers; these are the rules of what may be stored.
 */
import { z } from 'zod';
import type { Channel } from './phone.js';

export const CODE_PLACEHOLDER = '{code}';

/**
 * Without diacritics on purpose: plain ASCII stays in GSM-7 (160 chars per
 * segment instead of 70 in UCS-2), and unaccented brandname OTPs are the norm.
 * "Your verification code is {code}. Do not share this code with anyone."
 */
export const DEFAULT_SMS_TEMPLATE = 'Ma xac thuc cua ban la {code}. Khong chia se ma nay voi bat ky ai.';
/**
 * The words around the first reading of the digits; the call always reads them a second time after
 * them ("Xin nhắc lại: …"). With accents: a TTS engine mispronounces unaccented Vietnamese.
 */
export const DEFAULT_VOICE_TEMPLATE = 'Mã xác thực của bạn là: {code}.';
/** Characters of a voice template: the call should reach the digits within a few seconds. */
export const VOICE_TEMPLATE_MAX = 200;
/** An account's own templates; a channel left out uses its default. */
export interface MessageTemplate {
  sms?: string;
  voice?: string;
}

/** What the account's users get: its own templates, the defaults where it has none. */
export const effectiveTemplate = (t: MessageTemplate | undefined): Required<MessageTemplate> => ({
  sms: t?.sms ?? DEFAULT_SMS_TEMPLATE,
  voice: t?.voice ?? DEFAULT_VOICE_TEMPLATE,
});

/** Characters of an SMS template before the segment check (which is what really limits it). */
export const SMS_TEMPLATE_MAX = 320;

const WORST_CODE = '0000000000';

/**
 * `inside: true` matches anywhere in a word: brand names glue them on (NexoWallet, ABCExchange,
 * cryptocurrency), and carrier filters match inside words too. The others are whole words only:
 * "eth" or "ví" inside another word (với, method) is not the word. Unaccented "vi" and "san" alone
 * are not on the list: they are too common in plain Vietnamese written without accents.
 */
const FLAGGED: readonly { word: string; inside?: boolean }[] = [
  { word: 'crypto', inside: true },
  { word: 'bitcoin', inside: true },
  { word: 'btc', inside: true },
  { word: 'eth' },
  { word: 'ethereum', inside: true },
  { word: 'usdt', inside: true },
  { word: 'usdc', inside: true },
  { word: 'coin', inside: true },
  { word: 'wallet', inside: true },
  { word: 'exchange', inside: true },
  { word: 'binance', inside: true },
  { word: 'blockchain', inside: true },
  { word: 'nft', inside: true },
  { word: 'airdrop', inside: true },
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
  re: new RegExp(f.inside ? escape(f.word) : `(?<![\\p{L}\\p{N}])${escape(f.word).replace(/ /g, '\\s+')}(?![\\p{L}\\p{N}])`, 'u'),
}));

/** Rendered as nothing (zero-width space, soft hyphen, joiners, bidi controls, variation selectors): a word split by one still reads whole. */
const INVISIBLE = /[\p{Cf}\p{Default_Ignorable_Code_Point}]/gu;
/** What a template may not hold: the invisible, line and paragraph separators, and any space but U+0020 (a hair space splits a word and looks like none). */
const UNSEEN = /[\p{Cf}\p{Default_Ignorable_Code_Point}\p{Zl}\p{Zp}]|(?! )\p{Zs}/gu;

/**
 * The text as a filter should read it: without invisible characters, NFKC (fullwidth, ligature and
 * math-alphabet letters become plain ones; NFC composes decomposed accents too) and lower-cased.
 */
const readable = (text: string): string => text.replace(INVISIBLE, '').normalize('NFKC').toLowerCase().normalize('NFKC');

/** Flagged words found in a text, compared as `readable` gives it, so look-alike forms do not slip through. */
export function findFlaggedWords(text: string): string[] {
  const t = readable(text);
  return FLAGGED_RE.filter((f) => f.re.test(t)).map((f) => f.word);
}

/**
 * A scheme (`https://`, any `://`), or a label, a dot and two letters (`bit.ly`, `www.evil.example`,
 * `acme.vn/x`); a full stop followed by a space is not one. Pragmatic, not a TLD list: a missing
 * space after a full stop (`phut.Cam on`) reads as an address, as a phone may link it. The ideographic
 * full stop is a dot to browsers (IDNA). And a bare IPv4 address (`45.12.33.7/login`), which phones
 * link too; prices (`5.000`, `1.000.000`) have fewer groups.
 */
const LINK = /[\p{L}\p{N}+.-]*:\/\/|[\p{L}\p{N}-]*[\p{L}\p{N}][.\u3002]\p{L}{2,}|(?<![\d.])\d{1,3}(?:[.\u3002]\d{1,3}){3}(?![\d.]*\d)/u;
/** Cyrillic and Greek letters that look Latin (а, е, о, р, с, ν, ο): beside Latin ones they hide a word from the filter. */
const LOOKALIKE_SCRIPT = /[\p{Script=Cyrillic}\p{Script=Greek}]/u;

const codepoint = (ch: string): string => `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;

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

// split/join rather than String.replace: a replacement string would give `$&` and friends a meaning.
export const fillTemplate = (template: string, code: string): string => template.split(CODE_PLACEHOLDER).join(code);

export type TemplateProblem =
  | { code: 'missing_code' }
  | { code: 'repeated_code' }
  | { code: 'unknown_placeholder'; placeholder: string }
  | { code: 'flagged_word'; word: string }
  | { code: 'too_long'; used: number; limit: number }
  | { code: 'control_characters' }
  | { code: 'invisible_characters'; codepoints: string[] }
  | { code: 'mixed_scripts'; codepoint: string }
  | { code: 'link'; text: string }
  | { code: 'markup'; text: string };

/** What both channels refuse: no code, another placeholder, a flagged word, a control or invisible character, look-alike letters, a link. */
function commonProblems(template: string): TemplateProblem[] {
  const problems: TemplateProblem[] = [];
  if (!template.includes(CODE_PLACEHOLDER)) problems.push({ code: 'missing_code' });
  for (const m of template.matchAll(/\{[^}]*\}/g)) {
    if (m[0] !== CODE_PLACEHOLDER) problems.push({ code: 'unknown_placeholder', placeholder: m[0].slice(0, 32) });
  }
  for (const word of findFlaggedWords(template)) problems.push({ code: 'flagged_word', word });
  // C0 and C1 (invisible, and any of them turns an SMS into UCS-2); a new line is \n alone.
  if (/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/.test(template)) problems.push({ code: 'control_characters' });
  const unseen = [...new Set(Array.from(template.matchAll(UNSEEN), (m) => codepoint(m[0])))];
  if (unseen.length > 0) problems.push({ code: 'invisible_characters', codepoints: unseen.slice(0, 8) });
  // {code} is ours and Latin: a template wholly in another script mixes nothing.
  const words = template.split(CODE_PLACEHOLDER).join(' ');
  const lookalike = LOOKALIKE_SCRIPT.exec(words);
  if (lookalike && /\p{Script=Latin}/u.test(words)) problems.push({ code: 'mixed_scripts', codepoint: codepoint(lookalike[0]) });
  // Filled, as the phone shows it: `evil{code}.example` is an address once the digits are in.
  const link = LINK.exec(readable(fillTemplate(template, WORST_CODE)));
  if (link) problems.push({ code: 'link', text: link[0].slice(0, 64) });
  return problems;
}

/** Empty when the template is usable. It must fit one segment with a 10-digit code: split OTPs arrive late or in pieces. */
export function checkSmsTemplate(template: string): TemplateProblem[] {
  const problems = commonProblems(template);
  const size = smsSize(fillTemplate(template, WORST_CODE));
  if (size.used > size.limit) problems.push({ code: 'too_long', used: size.used, limit: size.limit });
  return problems;
}

/** Empty when the template is usable. `{code}` exactly once: the call reads the digits a second time by itself. */
export function checkVoiceTemplate(template: string): TemplateProblem[] {
  const problems = commonProblems(template);
  if (template.split(CODE_PLACEHOLDER).length > 2) problems.push({ code: 'repeated_code' });
  // A voice upstream may take SSML: a tag or an entity could play audio or speak what the check never saw.
  const markup = /[<>]|&[#\p{L}\p{N}]+;/u.exec(template);
  if (markup) problems.push({ code: 'markup', text: markup[0].slice(0, 32) });
  const used = [...template].length;
  if (used > VOICE_TEMPLATE_MAX) problems.push({ code: 'too_long', used, limit: VOICE_TEMPLATE_MAX });
  return problems;
}

export const checkTemplate = (channel: Channel, template: string): TemplateProblem[] =>
  channel === 'sms' ? checkSmsTemplate(template) : checkVoiceTemplate(template);

export function describeTemplateProblem(channel: Channel, p: TemplateProblem): string {
  switch (p.code) {
    case 'missing_code':
      return `template must contain ${CODE_PLACEHOLDER}`;
    case 'repeated_code':
      return `${CODE_PLACEHOLDER} must appear once: the call reads the code a second time by itself`;
    case 'unknown_placeholder':
      return `unknown placeholder ${p.placeholder}; only ${CODE_PLACEHOLDER} is supported`;
    case 'flagged_word':
      return `carriers filter messages containing "${p.word}"`;
    case 'too_long':
      return channel === 'sms' ? `does not fit one SMS with a 10-digit code (${p.used}/${p.limit})` : `longer than ${p.limit} characters (${p.used})`;
    case 'control_characters':
      return 'control characters are not allowed (a new line is \\n alone, without \\r)';
    case 'invisible_characters':
      return `contains invisible or format characters (${p.codepoints.join(', ')}); only visible text and plain spaces are allowed`;
    case 'mixed_scripts':
      return `mixes Latin letters with Cyrillic or Greek look-alikes (${p.codepoint})`;
    case 'link':
      return `templates cannot contain links or web addresses ("${p.text}"; a full stop not followed by a space reads as one)`;
    case 'markup':
      return `voice templates are plain text: no markup ("${p.text}"), which a voice upstream could read as speech instructions`;
  }
}

// The template checks say what is wrong (no {code}, too long for one SMS with a 10-digit code); the
// generic bound only stops absurd input before them, without a message of its own beside theirs.
const templateSchema = (channel: Channel, max: number) =>
  z
    .string()
    .max(max * 4, `longer than ${max} characters`)
    .superRefine((t, ctx) => {
      for (const p of checkTemplate(channel, t)) ctx.addIssue({ code: 'custom', message: describeTemplateProblem(channel, p), params: p });
    });

/** For the API edge (per-account templates): refuse what the checks refuse, with the same words as the account decider. */
export const SmsTemplateSchema = templateSchema('sms', SMS_TEMPLATE_MAX);
export const VoiceTemplateSchema = templateSchema('voice', VOICE_TEMPLATE_MAX);
