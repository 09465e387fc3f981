/**
 * Delivery-receipt vocabulary shared by the SMPP and HTTP faces: the DLR text
 * `id:<id> sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000 text:...`,
 * the SMPP `message_state` TLV values, and the mapping to our ReceiptStatus.
 */
import type { ReceiptStatus } from '#domain';

/**
 * Upstream status words → ours: SMPP 3.4's seven-letter words, the spelled-out forms SMSCs and
 * aggregators also send, and the voice outcomes. Words mapped to null are intermediate or
 * meaningless: acknowledged, not recorded. Any other word is unknown (see `statToStatus`).
 */
export const STAT_TO_STATUS: Readonly<Record<string, ReceiptStatus | null>> = {
  DELIVRD: 'delivered',
  DELIVERED: 'delivered',
  UNDELIV: 'undelivered',
  UNDELIVERED: 'undelivered',
  UNDELIVERABLE: 'undelivered',
  FAILED: 'undelivered',
  REJECTD: 'rejected',
  REJECTED: 'rejected',
  EXPIRED: 'expired',
  ACCEPTD: 'accepted',
  ACCEPTED: 'accepted',
  // A message deleted in the SMSC never reached the handset.
  DELETED: 'undelivered',
  ANSWERED: 'answered',
  NOANSWER: 'unanswered',
  BUSY: 'unanswered',
  ENROUTE: null,
  UNKNOWN: null,
};

/** SMPP 3.4 §5.2.28 message_state. */
export const MESSAGE_STATE_TO_STATUS: Readonly<Record<number, ReceiptStatus | null>> = {
  1: null, // ENROUTE
  2: 'delivered',
  3: 'expired',
  4: 'undelivered', // DELETED
  5: 'undelivered',
  6: 'accepted',
  7: null, // UNKNOWN
  8: 'rejected',
};

export const STATUS_TO_STAT: Readonly<Record<ReceiptStatus, string>> = {
  delivered: 'DELIVRD',
  undelivered: 'UNDELIV',
  rejected: 'REJECTD',
  expired: 'EXPIRED',
  accepted: 'ACCEPTD',
  answered: 'ANSWERED',
  unanswered: 'NOANSWER',
};

export const STATUS_TO_MESSAGE_STATE: Readonly<Partial<Record<ReceiptStatus, number>>> = {
  delivered: 2,
  expired: 3,
  undelivered: 5,
  accepted: 6,
  rejected: 8,
};

/** Ours for an upstream word; null for an intermediate one; undefined for a word not in the vocabulary. */
export function statToStatus(stat: string): ReceiptStatus | null | undefined {
  const word = stat.trim().toUpperCase();
  return Object.hasOwn(STAT_TO_STATUS, word) ? STAT_TO_STATUS[word] : undefined;
}

export interface DlrText {
  id: string;
  stat: string;
  err?: string;
}

/** Parses the de-facto DLR text. Returns null when there is no `id:` or no `stat:`. */
export function parseDlrText(text: string): DlrText | null {
  const id = /(?:^|\s)id:(\S+)/i.exec(text)?.[1];
  const stat = /(?:^|\s)stat:(\w+)/i.exec(text)?.[1];
  if (!id || !stat) return null;
  const err = /(?:^|\s)err:(\w+)/i.exec(text)?.[1];
  return err === undefined ? { id, stat: stat.toUpperCase() } : { id, stat: stat.toUpperCase(), err };
}

const yymmddhhmm = (d: Date): string =>
  [d.getUTCFullYear() % 100, d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes()]
    .map((n) => String(n).padStart(2, '0'))
    .join('');

export function formatDlrText(r: { id: string; stat: string; err?: string; submitted: Date; done: Date }): string {
  const ok = r.stat === 'DELIVRD' || r.stat === 'ACCEPTD';
  return (
    `id:${r.id} sub:001 dlvrd:${ok ? '001' : '000'} submit date:${yymmddhhmm(r.submitted)} ` +
    `done date:${yymmddhhmm(r.done)} stat:${r.stat} err:${r.err ?? (ok ? '000' : '001')}`
  );
}

export const RAW_MAX = 1000;

/**
 * Receipts become `ReceiptReceived.raw` in the event log (I9): the DLR `text:`
 * field echoes the start of our SMS, code included, so it is cut. Callers put
 * no address fields in raw; decimal message ids are left whole on purpose.
 */
export function scrubRaw(raw: string): string {
  return raw.replace(/\s*\btext:.*$/is, '').slice(0, RAW_MAX);
}
