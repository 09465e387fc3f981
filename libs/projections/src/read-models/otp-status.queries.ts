/** Reads of the `otp_status` table (written by the otps projection). */
import type { Carrier, Channel, FundedBy, RefundReason } from '#domain';
import { type Db, memoPerDb } from '../projection.js';

export type OtpStatus = 'queued' | 'routed' | 'delivered' | 'refunded';

/** The fields of GET /api/v1/otp/:id; money in micro-USD, times ISO-8601 UTC. */
export interface OtpView {
  id: string;
  phoneMasked: string;
  carrier: Carrier;
  channel: Channel;
  status: OtpStatus;
  priceMicros: bigint;
  fundedBy: FundedBy;
  createdAt: string;
  routedAt?: string;
  deliveredAt?: string;
  refundedAt?: string;
  refundReason?: RefundReason;
  history: { status: OtpStatus; at: string }[];
}

export interface DueOtp {
  otpId: string;
  accountId: string;
  status: 'queued' | 'routed';
  /** Request time plus the expiry window, epoch milliseconds. */
  deadlineMs: number;
}

interface Row {
  otp_id: string;
  account_id: string;
  phone_masked: string;
  carrier: Carrier;
  channel: Channel;
  status: OtpStatus;
  price: bigint | null;
  funded_by: FundedBy | null;
  created_at: string;
  routed_at: string | null;
  settled_at: string | null;
  refund_reason: RefundReason | null;
}

const statements = memoPerDb((db) => ({
  one: db.prepare<[string], Row>('SELECT * FROM otp_status WHERE otp_id = ?').safeIntegers(true),
  // otp_id breaks ties within a millisecond, so a list polled every second does not reorder itself.
  recent: db
    .prepare<[string, number], Row>('SELECT * FROM otp_status WHERE account_id = ? ORDER BY created_at DESC, otp_id DESC LIMIT ?')
    .safeIntegers(true),
  due: db.prepare<[number, number], DueOtp>(
    `SELECT otp_id AS otpId, account_id AS accountId, status, deadline_ms AS deadlineMs FROM otp_status
     WHERE status IN ('queued', 'routed') AND deadline_ms <= ? ORDER BY deadline_ms LIMIT ?`,
  ),
}));

/** The OTP as its account sees it; another account's id is not found (API.md). */
export function getOtp(db: Db, accountId: string, otpId: string): OtpView | undefined {
  const r = statements(db).one.get(otpId);
  if (r === undefined || r.account_id !== accountId) return undefined;
  return viewOf(r);
}

/** The account's newest OTPs, newest first, in the shape of `getOtp`. */
export function recentOtps(db: Db, accountId: string, limit: number): OtpView[] {
  return statements(db).recent.all(accountId, limit).map(viewOf);
}

function viewOf(r: Row): OtpView {
  const view: OtpView = {
    id: r.otp_id,
    phoneMasked: r.phone_masked,
    carrier: r.carrier,
    channel: r.channel,
    status: r.status,
    priceMicros: r.price ?? 0n,
    fundedBy: r.funded_by ?? 'balance',
    createdAt: r.created_at,
    history: [{ status: 'queued', at: r.created_at }],
  };
  if (r.routed_at !== null) {
    view.routedAt = r.routed_at;
    view.history.push({ status: 'routed', at: r.routed_at });
  }
  if (r.settled_at !== null && (r.status === 'delivered' || r.status === 'refunded')) {
    if (r.status === 'delivered') view.deliveredAt = r.settled_at;
    else {
      view.refundedAt = r.settled_at;
      if (r.refund_reason !== null) view.refundReason = r.refund_reason;
    }
    view.history.push({ status: r.status, at: r.settled_at });
  }
  return view;
}

/** Open OTPs whose expiry deadline is at or before `time`, earliest first (for the expiry worker). */
export function openOtpsDueBefore(db: Db, time: Date | number, limit = 1_000): DueOtp[] {
  return statements(db).due.all(typeof time === 'number' ? time : time.getTime(), limit);
}
