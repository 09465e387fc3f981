/**
 * What the user reads or hears, rendered for a submit. Which templates an
 * account may store (flagged words, one SMS segment) is the domain's rule
 * (`#domain` message-template); templates are checked when stored, and here
 * again, so that one stored under older rules (before links and invisible
 * characters were refused) is not sent: the default text goes instead.
 */
import { checkTemplate, DEFAULT_SMS_TEMPLATE, DEFAULT_VOICE_TEMPLATE, fillTemplate, type Channel, type MessageTemplate } from '#domain';

const CODE = /^\d{4,10}$/;

function assertCode(code: string): void {
  // The message never echoes the value: it is the OTP.
  if (!CODE.test(code)) throw new RangeError('OTP code must be 4-10 digits');
}

/** The SMS text, from the account's template when it has one. */
export function renderSmsText(code: string, template: string = DEFAULT_SMS_TEMPLATE): string {
  assertCode(code);
  return fillTemplate(template, code);
}

export const VI_DIGITS: readonly string[] = ['không', 'một', 'hai', 'ba', 'bốn', 'năm', 'sáu', 'bảy', 'tám', 'chín'];

/**
 * Speech for a text-to-speech call: the account's words around the digits read
 * one by one, then the digits once more, whatever the template: a code heard
 * once over a phone line is often misheard. Commas make the engine pause
 * between digits so they are not read as one number.
 */
export function renderVoiceSpeech(code: string, template: string = DEFAULT_VOICE_TEMPLATE): string {
  assertCode(code);
  const digits = [...code].map((d) => VI_DIGITS[Number(d)]).join(', ');
  const words = fillTemplate(template, digits).trimEnd();
  // A sentence break before the repeat, whatever the template ends with.
  return `${words}${/[.!?…]$/.test(words) ? '' : '.'} Xin nhắc lại: ${digits}.`;
}

/** Templates as today's rules judge them, by text: an account's template repeats on every OTP. */
const verdicts = new Map<string, boolean>();
const VERDICTS_KEPT = 1_000;

/** The template if today's rules take it, else undefined (the default). */
export function templateInForce(channel: Channel, template: string | undefined): string | undefined {
  if (template === undefined) return undefined;
  const key = `${channel}\u0000${template}`;
  let ok = verdicts.get(key);
  if (ok === undefined) {
    ok = checkTemplate(channel, template).length === 0;
    if (verdicts.size >= VERDICTS_KEPT) verdicts.clear();
    verdicts.set(key, ok);
  }
  return ok ? template : undefined;
}

/** The channel-specific part of a SubmitRequest, in the account's templates (`undefined`: the defaults). */
export function renderMessage(
  channel: Channel,
  code: string,
  template?: MessageTemplate,
): { channel: 'sms'; text: string; digits: string } | { channel: 'voice'; speech: string; digits: string } {
  return channel === 'sms'
    ? { channel, text: renderSmsText(code, templateInForce('sms', template?.sms)), digits: code }
    : { channel, speech: renderVoiceSpeech(code, templateInForce('voice', template?.voice)), digits: code };
}
