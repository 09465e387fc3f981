/** What the HTTP layer reads: the read models behind one narrow interface. */
import type { Carrier, Channel, FundedBy, IdempotencyRecord, MessageTemplate } from '#domain';

export interface OtpView {
  id: string;
  phoneMasked: string;
  carrier: Carrier;
  channel: Channel;
  status: 'queued' | 'routed' | 'delivered' | 'refunded';
  priceMicros: bigint;
  fundedBy: FundedBy;
  createdAt: string;
  deliveredAt?: string;
  refundedAt?: string;
  refundReason?: string;
  history: { status: string; at: string }[];
}

export interface StatementLine {
  at: string;
  type: 'deposit' | 'charge' | 'refund' | 'reversal';
  amount: bigint;
  balanceAfter: bigint;
  ref: string;
}

export interface ReadModels {
  apiKey(keyHash: string): { keyId: string; accountId: string; revoked: boolean } | undefined;
  /** The account's keys, oldest first: ids and the visible prefix only (the key itself is never stored). */
  apiKeys(accountId: string): { keyId: string; prefix: string; revoked: boolean }[];
  /** The account's own message templates; undefined while it uses the defaults. */
  messageTemplate(accountId: string): MessageTemplate | undefined;
  balance(accountId: string): { balance: bigint; testCreditsLeft: number; pending: bigint } | undefined;
  otp(accountId: string, otpId: string): OtpView | undefined;
  /** The account's newest OTPs, newest first. */
  recentOtps(accountId: string, limit: number): OtpView[];
  /** The account's last send under this Idempotency-Key (kept 48 h), for keys older than its state's 20 s. */
  sendKey(accountId: string, key: string): IdempotencyRecord | undefined;
  /** API.md's stats fields (sent … by_channel), for one account or for all traffic. */
  stats(month: string, accountId?: string): Record<string, unknown>;
  statement(accountId: string, month: string): StatementLine[];
}

export interface ProjectionStatus {
  /** Resolves once every projection has applied the log up to its head at the time of the call. */
  caughtUp(timeoutMs?: number): Promise<void>;
  lag(): { events: number; seconds: number };
}
