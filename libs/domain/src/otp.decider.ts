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
  | ({ type: 'RecordReceipt'; claim?: ReceiptClaim } & Data<'ReceiptReceived'>)
  | ({ type: 'Expire' } & Data<'Expired'>);

/**
 * Who a receipt says it comes from, when the OTP it names was not found from the message id but
 * given with the receipt (an HTTP upstream's echo of our `reference`, an adapter's memory of its
 * submission): the upstream it came in from and, when known, the attempt it answers.
 */
export interface ReceiptClaim {
  provider: string;
  attempt?: number;
}

export interface OtpState {
  /** Highest attempt recorded, routed or failed. */
  lastAttempt: number;
  /** Routed messages by `messageKey(provider, id)`: an id alone may come from two upstreams. */
  routed: Map<string, { attempt: number; provider: string; providerMessageId: string }>;
  /** Every attempt recorded, routed (under the id its upstream gave) or failed. */
  attempts: Map<number, { provider: string; routedAs?: string }>;
  failures: number;
  /** The dispatcher gave up: no provider left (settlement refunds). */
  finalFailure: boolean;
  /** `messageKey(provider, id)|status` triples already recorded. */
  receipts: Set<string>;
  lastReceipt: ReceiptStatus | undefined;
  expired: boolean;
}

export function initialOtpState(): OtpState {
  return { lastAttempt: 0, routed: new Map(), attempts: new Map(), failures: 0, finalFailure: false, receipts: new Set(), lastReceipt: undefined, expired: false };
}

/** A message as the OTP knows it: its upstream and the id that upstream gave it. */
export function messageKey(provider: string, providerMessageId: string): string {
  return `${provider}\u0000${providerMessageId}`;
}

/**
 * The message a recorded receipt is about. A receipt recorded before receipts named their upstream
 * belongs to the upstream that routed its id (the newest routing of it, as ids were then matched);
 * one whose id was never routed stays with no upstream.
 */
function receiptKey(state: OtpState, provider: string | undefined, providerMessageId: string): string {
  if (provider !== undefined) return messageKey(provider, providerMessageId);
  let routedBy = '';
  for (const r of state.routed.values()) if (r.providerMessageId === providerMessageId) routedBy = r.provider;
  return messageKey(routedBy, providerMessageId);
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
      const { type: _, claim, ...data } = cmd;
      const provider = data.provider ?? claim?.provider;
      if (claim && provider !== claim.provider) throw new DomainError('invalid_command', `a receipt from ${provider} cannot claim to come from ${claim.provider}`);
      if (recorded(state, provider, cmd.providerMessageId, cmd.status)) return [];
      if (claim) checkClaim(state, claim, cmd.providerMessageId);
      return [{ type: 'ReceiptReceived', data: provider === undefined ? data : { ...data, provider } }];
    }
    case 'Expire':
      return state.expired ? [] : [{ type: 'Expired', data: { at: cmd.at } }];
  }
}

/** Whether this receipt is recorded already; also under no upstream, as an old receipt of an unrouted id was. */
function recorded(state: OtpState, provider: string | undefined, providerMessageId: string, status: ReceiptStatus): boolean {
  if (state.receipts.has(`${receiptKey(state, provider, providerMessageId)}|${status}`)) return true;
  return provider !== undefined && state.receipts.has(`${messageKey('', providerMessageId)}|${status}`);
}

/**
 * A receipt that names its OTP counts only for a submission this OTP made through the upstream it
 * came from: one upstream (or a bug in its echo of our reference) must not deliver, and so charge,
 * or refund an OTP that went through another. A message is its upstream and its id: two upstreams
 * may hand out the same id. Refused: a message this upstream routed as another attempt; an id
 * routed through another upstream, from an upstream that made no attempt of this OTP; an attempt
 * recorded as made through another upstream, or routed under another message id. Allowed: an
 * attempt not recorded yet (the receipt raced the submit's answer), and one recorded as failed
 * through the same upstream (a timed-out submit may still deliver).
 */
function checkClaim(state: OtpState, claim: ReceiptClaim, providerMessageId: string): void {
  const refuse = (why: string) => {
    throw new DomainError('invalid_command', `receipt from ${claim.provider} refused: ${why}`, { reason: 'receipt_claim', provider: claim.provider, providerMessageId });
  };
  const routed = state.routed.get(messageKey(claim.provider, providerMessageId));
  if (routed) {
    if (claim.attempt !== undefined && claim.attempt !== routed.attempt) refuse(`message ${providerMessageId} is attempt ${routed.attempt}, not ${claim.attempt}`);
    return;
  }
  // Another upstream's message of that id is not this one's; but an upstream that made no attempt of this OTP has no message of its own to claim.
  if (![...state.attempts.values()].some((a) => a.provider === claim.provider)) {
    for (const r of state.routed.values()) if (r.providerMessageId === providerMessageId) refuse(`message ${providerMessageId} was routed through ${r.provider}`);
  }
  if (claim.attempt === undefined) return;
  const made = state.attempts.get(claim.attempt);
  if (made === undefined) return;
  if (made.provider !== claim.provider) refuse(`attempt ${claim.attempt} went through ${made.provider}`);
  if (made.routedAs !== undefined) refuse(`attempt ${claim.attempt} was routed under another message id`);
}

export function evolveOtp(state: OtpState, event: OtpEvent): OtpState {
  switch (event.type) {
    case 'Routed':
      state.lastAttempt = Math.max(state.lastAttempt, event.data.attempt);
      state.routed.set(messageKey(event.data.provider, event.data.providerMessageId), {
        attempt: event.data.attempt,
        provider: event.data.provider,
        providerMessageId: event.data.providerMessageId,
      });
      if (!state.attempts.has(event.data.attempt)) state.attempts.set(event.data.attempt, { provider: event.data.provider, routedAs: event.data.providerMessageId });
      break;
    case 'RouteFailed':
      if (!state.attempts.has(event.data.attempt)) state.attempts.set(event.data.attempt, { provider: event.data.provider });
      state.lastAttempt = Math.max(state.lastAttempt, event.data.attempt);
      state.failures += 1;
      if (event.data.final) state.finalFailure = true;
      break;
    case 'ReceiptReceived':
      state.receipts.add(`${receiptKey(state, event.data.provider, event.data.providerMessageId)}|${event.data.status}`);
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

/** Receipt statuses that prove the code reached the user. */
const DELIVERING_RECEIPTS: readonly ReceiptStatus[] = ['delivered', 'answered'];

/**
 * Whether a failure receipt must leave the OTP unsettled. True while some routed message of this
 * OTP has no final receipt yet, so it may still reach the handset (a late failure of an attempt
 * the OTP failed over from must not refund the attempt in flight: that one's receipt, or expiry,
 * settles it). True too once some message's receipt says it reached the user: that receipt
 * delivers, whichever of the two settlement takes first. The failure receipt itself is recorded
 * before settlement reads this, so it does not count.
 */
export function refundWaits(state: OtpState): boolean {
  for (const [key, r] of state.routed) {
    // Also under no upstream: a receipt recorded before receipts named theirs, ahead of its id's Routed.
    const unnamed = messageKey('', r.providerMessageId);
    if (!FINAL_RECEIPTS.some((status) => state.receipts.has(`${key}|${status}`) || state.receipts.has(`${unnamed}|${status}`))) return true;
  }
  // Any message's, routed or not: a receipt can prove an attempt whose submit answer came too late
  // to record it as routed (its receipt was tied to the OTP by the attempt's claim).
  for (const key of state.receipts) {
    if (DELIVERING_RECEIPTS.some((status) => key.endsWith(`|${status}`))) return true;
  }
  return false;
}
