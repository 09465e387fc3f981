/**
 * What the user reads or hears, rendered for a submit. Which templates an
 * account may store (flagged words, one SMS segment) is the domain's rule
 * (`#domain` message-template); templates are checked when stored, not here.
 */
import { DEFAULT_SMS_TEMPLATE, DEFAULT_VOICE_TEMPLATE, fillTemplate, type Channel, type MessageTemplate } from '#domain';

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

/** The channel-specific part of a SubmitRequest, in the account's templates (`undefined`: the defaults). */
export function renderMessage(
  channel: Channel,
  code: string,
  template?: MessageTemplate,
): { channel: 'sms'; text: string; digits: string } | { channel: 'voice'; speech: string; digits: string } {
  return channel === 'sms'
    ? { channel, text: renderSmsText(code, template?.sms), digits: code }
    : { channel, speech: renderVoiceSpeech(code, template?.voice), digits: code };
}
