/**
 * From deliver_sm (or data_sm, which an SMSC may use for receipts too) to
 * Receipt: which PDUs are receipts, how their id and status are read, and how
 * they are tied back to the OTP that was sent. smpp@0.5 decodes both alike:
 * esm_class and the TLVs (receipted_message_id, message_state, message_payload)
 * land on the same fields; data_sm has no short_message.
 */
import type smpp from 'smpp';
import { trimOldest } from '#collections';
import type { Receipt } from '../carrier-gateway.port.js';
import { MESSAGE_STATE_TO_STATUS, parseDlrText, scrubRaw, statToStatus } from '../delivery-receipt.codec.js';
import { messageIdKeys, pduText } from './smpp.pdu.js';

const MC_DELIVERY_RECEIPT = 0x04;
/** esm_class bits 2-5 carry the message type; the others are UDHI and reply path. */
const MESSAGE_TYPE_MASK = 0x3c;

interface Sent {
  providerMessageId: string;
  otpId: string;
  attempt: number;
}

/** Message ids we were given, bounded; the oldest are forgotten first. */
export class SentMessages {
  private readonly byKey = new Map<string, Sent>();
  /** Insertion order of ids, with the lookup keys each one owns. */
  private readonly order = new Map<string, string[]>();
  constructor(private readonly max: number) {}

  /** An id forgotten takes the lookup keys it owns with it. */
  private readonly forgetKeys = (providerMessageId: string): void => {
    for (const k of this.order.get(providerMessageId) ?? []) this.byKey.delete(k);
  };

  /**
   * The newest message holds an id and its keys: an SMSC whose counter started over (a restart)
   * hands out ids it gave before, and a receipt for one of them is the new message's.
   */
  remember(providerMessageId: string, otpId: string, attempt: number): void {
    this.order.delete(providerMessageId);
    const entry = { providerMessageId, otpId, attempt };
    const keys = messageIdKeys(providerMessageId);
    for (const k of keys) {
      const before = this.byKey.get(k);
      if (before !== undefined && before.providerMessageId !== providerMessageId) {
        const owned = this.order.get(before.providerMessageId);
        if (owned) this.order.set(before.providerMessageId, owned.filter((x) => x !== k));
      }
      this.byKey.set(k, entry);
    }
    this.order.set(providerMessageId, keys);
    trimOldest(this.order, this.max, undefined, this.forgetKeys);
  }

  find(id: string): Sent | undefined {
    for (const k of messageIdKeys(id)) {
      const hit = this.byKey.get(k);
      if (hit) return hit;
    }
    return undefined;
  }

  get size(): number {
    return this.order.size;
  }
}

export type DeliverSmReading =
  | { kind: 'receipt'; receipt: Receipt }
  /** Acknowledge and drop: `not_receipt` (mobile-originated), `intermediate` (ENROUTE...), `unreadable`. */
  | { kind: 'ignore'; reason: 'not_receipt' | 'intermediate' | 'unreadable' }
  /** Acknowledged and dropped too (the SMSC would send it again for ever), but logged: a status word we do not know. */
  | { kind: 'ignore'; reason: 'unknown_stat'; stat: string };

/**
 * Reads a deliver_sm or a data_sm. The DLR text's `stat:` wins when present (it has the specific word); the
 * message_state TLV is the fallback. The id comes from receipted_message_id,
 * else from the text.
 */
export function readDeliverSm(provider: string, pdu: smpp.PDU, sent: SentMessages, nowMs: number): DeliverSmReading {
  if ((Number(pdu.esm_class ?? 0) & MESSAGE_TYPE_MASK) !== MC_DELIVERY_RECEIPT) return { kind: 'ignore', reason: 'not_receipt' };
  const text = pduText(pdu);
  const tlvId = typeof pdu.receipted_message_id === 'string' ? pdu.receipted_message_id.replace(/\0+$/, '').trim() : '';
  const state = typeof pdu.message_state === 'number' ? pdu.message_state : undefined;
  const dlr = parseDlrText(text);
  const id = tlvId || dlr?.id;
  if (!id || (!dlr && state === undefined)) return { kind: 'ignore', reason: 'unreadable' };
  const word = dlr ? statToStatus(dlr.stat) : undefined;
  const status = word ?? (state !== undefined ? (MESSAGE_STATE_TO_STATUS[state] ?? null) : null);
  if (!status) return dlr && word === undefined && state === undefined ? { kind: 'ignore', reason: 'unknown_stat', stat: dlr.stat.slice(0, 32) } : { kind: 'ignore', reason: 'intermediate' };
  const match = sent.find(id);
  const raw = scrubRaw([text, tlvId && `receipted_message_id:${tlvId}`, state !== undefined && `message_state:${state}`].filter(Boolean).join(' '));
  return {
    kind: 'receipt',
    receipt: {
      provider,
      providerMessageId: match?.providerMessageId ?? id,
      status,
      raw,
      at: new Date(nowMs).toISOString(),
      ...(match ? { otpId: match.otpId, attempt: match.attempt } : {}),
    },
  };
}
