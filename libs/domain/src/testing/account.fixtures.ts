/**
 * Builders for account commands and the events they should produce. Every value
 * passes the zod schemas of account.events.ts, so tests exercise stored shapes.
 */
import type { AccountCommand, FirstKey } from '../account.decider.js';
import type { AccountEvent, AccountEventOf, DeliveryProof, FundedBy, RefundReason } from '../account.events.js';
import type { Micros } from '../money.js';

type Data<T extends AccountEvent['type']> = AccountEventOf<T>['data'];

export const ACCOUNT_ID = 'acc_1';
export const T0 = '2025-03-01T00:00:00.000Z';
export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;

/** ISO time `ms` after T0. */
export const at = (ms = 0): string => new Date(Date.parse(T0) + ms).toISOString();

/** A 64-char lowercase hex digest built from a short hex seed. */
export const hex64 = (seed: string): string => seed.padStart(64, '0');
export const txHash = (n: number): string => `0x${n.toString(16).padStart(64, '0')}`;
export const USDT = `0x${'d'.repeat(40)}`;
export const CHAIN_ID = 56;

const openedData = (testCredits: number): Data<'AccountOpened'> => ({ accountId: ACCOUNT_ID, name: 'Exchange One', testCredits, at: T0 });
export const opened = (testCredits = 0): AccountEvent => ({ type: 'AccountOpened', data: openedData(testCredits) });
export const openAccount = (testCredits = 0, firstKey?: FirstKey): AccountCommand => ({ type: 'OpenAccount', ...openedData(testCredits), ...(firstKey && { firstKey }) });

export interface DepositRef {
  tx: number;
  logIndex?: number;
  chainId?: number;
}

const depositData = (ref: DepositRef, amount: Micros, when: string): Data<'DepositCredited'> => ({
  chainId: ref.chainId ?? CHAIN_ID,
  token: USDT,
  txHash: txHash(ref.tx),
  logIndex: ref.logIndex ?? 0,
  blockNumber: 1000 + ref.tx,
  blockHash: `0x${'b'.repeat(64)}`,
  amount: amount.toString(),
  at: when,
});
export const credited = (ref: DepositRef, amount: Micros, when = T0): AccountEvent => ({
  type: 'DepositCredited',
  data: depositData(ref, amount, when),
});
export const creditDeposit = (ref: DepositRef, amount: Micros, when = T0): AccountCommand => ({
  type: 'CreditDeposit',
  ...depositData(ref, amount, when),
});

const reversalData = (ref: DepositRef, when: string): Data<'DepositReversed'> => ({
  chainId: ref.chainId ?? CHAIN_ID,
  txHash: txHash(ref.tx),
  logIndex: ref.logIndex ?? 0,
  reason: 'block no longer canonical',
  at: when,
});
export const reversed = (ref: DepositRef, when = T0): AccountEvent => ({ type: 'DepositReversed', data: reversalData(ref, when) });
export const reverseDeposit = (ref: DepositRef, when = T0): AccountCommand => ({ type: 'ReverseDeposit', ...reversalData(ref, when) });

export interface OtpOptions {
  at?: string;
  idempotencyKey?: string;
  requestHash?: string;
  webhookUrl?: string;
  /** The account's templates, which the decider puts on the OtpRequested (not on the command). */
  template?: { sms?: string; voice?: string };
}

export const otpData = (otpId: string, opts: OtpOptions = {}): Data<'OtpRequested'> => ({
  otpId,
  phone: 'k1:c2VhbGVkLXBob25l',
  phoneHash: hex64('a1'),
  phoneMasked: '+8491****678',
  carrier: 'vinaphone',
  channel: 'sms',
  code: 'k1:c2VhbGVkLWNvZGU',
  ...(opts.idempotencyKey === undefined ? {} : { idempotencyKey: opts.idempotencyKey }),
  ...(opts.requestHash === undefined ? {} : { requestHash: opts.requestHash }),
  ...(opts.webhookUrl === undefined ? {} : { webhookUrl: opts.webhookUrl }),
  ...(opts.template === undefined ? {} : { template: opts.template }),
  at: opts.at ?? T0,
});

export const sendOtp = (otpId: string, price: Micros, opts: OtpOptions = {}): AccountCommand => ({
  type: 'SendOtp',
  otp: otpData(otpId, { ...opts, template: undefined }),
  price,
});

/** The pair a successful SendOtp appends in one go. */
export const sent = (otpId: string, price: Micros, fundedBy: FundedBy, opts: OtpOptions = {}): AccountEvent[] => [
  { type: 'OtpRequested', data: otpData(otpId, opts) },
  { type: 'Charged', data: { otpId, amount: price.toString(), fundedBy, at: opts.at ?? T0 } },
];

export const delivered = (otpId: string, via: DeliveryProof = 'receipt', when = T0): AccountEvent => ({
  type: 'Delivered',
  data: { otpId, via, at: when },
});
export const markDelivered = (otpId: string, via: DeliveryProof = 'receipt', when = T0): AccountCommand => ({
  type: 'MarkDelivered',
  otpId,
  via,
  at: when,
});

export const refunded = (otpId: string, amount: Micros, fundedBy: FundedBy, reason: RefundReason = 'undelivered', when = T0): AccountEvent => ({
  type: 'Refunded',
  data: { otpId, amount: amount.toString(), fundedBy, reason, at: when },
});
export const refundOtp = (otpId: string, reason: RefundReason = 'undelivered', when = T0): AccountCommand => ({
  type: 'RefundOtp',
  otpId,
  reason,
  at: when,
});
