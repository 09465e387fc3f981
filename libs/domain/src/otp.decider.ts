/**
 * The OTP decider: carrier facts of one OTP. Every command is idempotent so a
 * redelivered bus message appends nothing new.
 */
import type { Decider } from './decider.js';
import { DomainError } from './errors.js';
import { type OtpEvent, type OtpEventOf, RECEIPT_STATUSES, type ReceiptStatus } from './otp.events.js';

type Data<T extends OtpEvent['type']> = OtpEventOf<T>['data'];

export type OtpCommand =
  | ({ type: 'RecordRouted' } & Data<'Routed'>)
  | ({ type: 'RecordRouteFailed' } & Data<'RouteFailed'>)
  | ({ type: 'RecordReceipt' } & Data<'ReceiptReceived'>)
  | ({ type: 'Expire' } & Data<'Expired'>);

export interface OtpState {
  /** Highest attempt recorded, routed or failed. */
  lastAttempt: number;
  routed: Map<string, { attempt: number; provider: string }>;
  failures: number;
  /** The dispatcher gave up: no provider left (settlement refunds). */
  finalFailure: boolean;
  /** `providerMessageId|status` pairs already recorded. */
  receipts: Set<string>;
  lastReceipt: ReceiptStatus | undefined;
  expired: boolean;
}

export function initialOtpState(): OtpState {
  return { lastAttempt: 0, routed: new Map(), failures: 0, finalFailure: false, receipts: new Set(), lastReceipt: undefined, expired: false };
}

function checkAttempt(state: OtpState, attempt: number): 'new' | 'seen' {
  if (attempt <= state.lastAttempt) return 'seen';
  if (attempt !== state.lastAttempt + 1) {
    throw new DomainError('invalid_command', `attempt ${attempt} skips attempt ${state.lastAttempt + 1}`);
  }
  return 'new';
}

export function decideOtp(cmd: OtpCommand, state: OtpState): OtpEvent[] {
  switch (cmd.type) {
    case 'RecordRouted': {
      if (checkAttempt(state, cmd.attempt) === 'seen') return [];
      const { type: _, ...data } = cmd;
      return [{ type: 'Routed', data }];
    }
    case 'RecordRouteFailed': {
      if (checkAttempt(state, cmd.attempt) === 'seen') return [];
      const { type: _, ...data } = cmd;
      return [{ type: 'RouteFailed', data }];
    }
    case 'RecordReceipt': {
      // Receipts after expiry or refund are still recorded (they are facts); settlement decides what they mean.
      if (state.receipts.has(`${cmd.providerMessageId}|${cmd.status}`)) return [];
      const { type: _, ...data } = cmd;
      return [{ type: 'ReceiptReceived', data }];
    }
    case 'Expire':
      return state.expired ? [] : [{ type: 'Expired', data: { at: cmd.at } }];
  }
}

export function evolveOtp(state: OtpState, event: OtpEvent): OtpState {
  switch (event.type) {
    case 'Routed':
      state.lastAttempt = Math.max(state.lastAttempt, event.data.attempt);
      state.routed.set(event.data.providerMessageId, { attempt: event.data.attempt, provider: event.data.provider });
      break;
    case 'RouteFailed':
      state.lastAttempt = Math.max(state.lastAttempt, event.data.attempt);
      state.failures += 1;
      if (event.data.final) state.finalFailure = true;
      break;
    case 'ReceiptReceived':
      state.receipts.add(`${event.data.providerMessageId}|${event.data.status}`);
      state.lastReceipt = event.data.status;
      break;
    case 'Expired':
      state.expired = true;
      break;
  }
  return state;
}

export const otpDecider: Decider<OtpCommand, OtpEvent, OtpState> = {
  decide: decideOtp,
  evolve: evolveOtp,
  initialState: initialOtpState,
};

/** Receipt statuses that end a message's story: nothing more will come of it. */
const FINAL_RECEIPTS: readonly ReceiptStatus[] = RECEIPT_STATUSES.filter((s) => s !== 'accepted');

/**
 * True while some routed message of this OTP has no final receipt yet, so it may still reach the
 * handset. A failure receipt for one attempt (a late one for an attempt the OTP failed over from)
 * must not refund while another can still deliver: that one's receipt, or expiry, settles it.
 * The failure receipt itself is recorded before settlement reads this, so it does not count.
 */
export function mayStillDeliver(state: OtpState): boolean {
  for (const id of state.routed.keys()) {
    if (!FINAL_RECEIPTS.some((status) => state.receipts.has(`${id}|${status}`))) return true;
  }
  return false;
}
