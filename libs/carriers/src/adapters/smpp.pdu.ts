/** Small helpers over smpp@0.5 PDUs, shared by the adapter and the simulator's SMPP face. */
import smpp from 'smpp';

const NAMES = new Map<number, string>(Object.entries(smpp.errors).map(([name, code]) => [code, name]));

/** `ESME_RTHROTTLED` for 0x58; unknown vendor codes as hex. */
export function smppErrorName(status: number): string {
  return NAMES.get(status) ?? `ESME_0x${status.toString(16).padStart(4, '0')}`;
}

/** The message of a submit_sm or deliver_sm, from message_payload when it carries it. */
export function pduText(pdu: smpp.PDU): string {
  const field = (pdu.message_payload ?? pdu.short_message) as { message?: unknown } | Buffer | undefined;
  const m = field && !Buffer.isBuffer(field) ? field.message : field;
  return Buffer.isBuffer(m) ? m.toString('latin1') : typeof m === 'string' ? m : '';
}

/**
 * Lookup keys for a message id. SMSCs are known to answer submit_sm with a
 * hex id and then quote it in decimal in the receipt (or drop leading
 * zeros): keying the numeric value as well matches both spellings.
 */
export function messageIdKeys(id: string): string[] {
  const keys = [`s:${id.toLowerCase()}`];
  if (/^\d{1,38}$/.test(id)) keys.push(`n:${BigInt(id)}`);
  if (/^[0-9a-f]{1,32}$/i.test(id)) keys.push(`n:${BigInt(`0x${id}`)}`);
  return keys;
}
