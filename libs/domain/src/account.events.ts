/**
 * Events of the `account-<accountId>` stream: the one consistency boundary for money.
 * Type strings never change once stored; a new shape is a new type plus an upcaster.
 */
import { z } from 'zod';
import { Address, CarrierSchema, ChannelSchema, Hex32, Id, IsoTime, NonNegMicrosDigits, Sealed } from './schema.js';

export const FUNDING_SOURCES = ['balance', 'test_credit'] as const;
export type FundedBy = (typeof FUNDING_SOURCES)[number];
export const REFUND_REASONS = ['undelivered', 'expired', 'rejected'] as const;
export type RefundReason = (typeof REFUND_REASONS)[number];
export const DELIVERY_PROOFS = ['receipt', 'voice_answer', 'feedback'] as const;
export type DeliveryProof = (typeof DELIVERY_PROOFS)[number];

const ev = <T extends string, S extends z.ZodRawShape>(type: T, data: S) =>
  z.object({ type: z.literal(type), data: z.object(data).strict() });

export const AccountOpened = ev('AccountOpened', {
  accountId: Id,
  name: z.string().max(200),
  testCredits: z.number().int().min(0).max(1000),
  at: IsoTime,
});
export const ApiKeyIssued = ev('ApiKeyIssued', {
  keyId: Id,
  /** SHA-256 of the key, hex; the key itself is shown once and never stored. */
  keyHash: z.string().regex(/^[0-9a-f]{64}$/),
  prefix: z.string().max(16),
  at: IsoTime,
});
export const ApiKeyRevoked = ev('ApiKeyRevoked', { keyId: Id, at: IsoTime });
/**
 * An account's own message text (message-template.ts); a channel left out uses the default. The
 * decider checks templates before it records them; the stored shape only bounds them, so a rule
 * tightened later leaves the events already stored valid.
 */
const templateShape = { sms: z.string().min(1).max(1000).optional(), voice: z.string().min(1).max(1000).optional() };
export const MessageTemplateSchema = z.object(templateShape).strict();
/** The account's templates after this event, both channels: a channel left out is back to its default. */
export const MessageTemplateSet = ev('MessageTemplateSet', { ...templateShape, at: IsoTime });
export const WebhookConfigured = ev('WebhookConfigured', { url: z.string().url().max(2048), secret: Sealed, at: IsoTime });
/** The account's webhook is gone: nothing more is sent to it (nor to per-send URLs, which its secret signed). */
export const WebhookRemoved = ev('WebhookRemoved', { at: IsoTime });
export const DepositAddressAssigned = ev('DepositAddressAssigned', {
  chain: z.string().min(1).max(32),
  address: Address,
  index: z.number().int().min(0),
  at: IsoTime,
});
export const DepositCredited = ev('DepositCredited', {
  chainId: z.number().int().positive(),
  token: Address,
  txHash: Hex32,
  logIndex: z.number().int().min(0),
  blockNumber: z.number().int().min(0),
  blockHash: Hex32,
  amount: NonNegMicrosDigits,
  /** Token base units below one micro-USD, dropped by the conversion (18-decimal tokens). */
  truncatedUnits: z.string().regex(/^\d+$/).optional(),
  at: IsoTime,
});
export const DepositReversed = ev('DepositReversed', {
  chainId: z.number().int().positive(),
  txHash: Hex32,
  logIndex: z.number().int().min(0),
  reason: z.string().max(200),
  at: IsoTime,
});
export const OtpRequested = ev('OtpRequested', {
  otpId: Id,
  phone: Sealed,
  /** HMAC of the E.164 number: a stable key for limits and partitioning that reveals nothing. */
  phoneHash: z.string().regex(/^[0-9a-f]{64}$/),
  phoneMasked: z.string().max(20),
  carrier: CarrierSchema,
  channel: ChannelSchema,
  /** Whether the customer asked for `auto`, which allows a fallback to the other channel. */
  auto: z.boolean().optional(),
  code: Sealed,
  webhookUrl: z.string().url().max(2048).optional(),
  idempotencyKey: z.string().min(1).max(255).optional(),
  /**
   * The account's templates when it has any, as they were when this OTP was decided: the OTP goes
   * out in them whatever the account sets later, and the dispatcher needs no read of the account.
   */
  template: MessageTemplateSchema.optional(),
  /**
   * The request body that carried the Idempotency-Key, hashed (I7): HMAC-SHA256 keyed from the phone
   * pepper; sends recorded before it was keyed hold a plain SHA-256.
   */
  requestHash: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  at: IsoTime,
});
export const Charged = ev('Charged', {
  otpId: Id,
  amount: NonNegMicrosDigits,
  fundedBy: z.enum(FUNDING_SOURCES),
  at: IsoTime,
});
export const Delivered = ev('Delivered', { otpId: Id, via: z.enum(DELIVERY_PROOFS), at: IsoTime });
export const Refunded = ev('Refunded', {
  otpId: Id,
  amount: NonNegMicrosDigits,
  fundedBy: z.enum(FUNDING_SOURCES),
  reason: z.enum(REFUND_REASONS),
  at: IsoTime,
});

export const AccountEvent = z.discriminatedUnion('type', [
  AccountOpened,
  ApiKeyIssued,
  ApiKeyRevoked,
  WebhookConfigured,
  WebhookRemoved,
  MessageTemplateSet,
  DepositAddressAssigned,
  DepositCredited,
  DepositReversed,
  OtpRequested,
  Charged,
  Delivered,
  Refunded,
]);
export type AccountEvent = z.infer<typeof AccountEvent>;
export type AccountEventOf<T extends AccountEvent['type']> = Extract<AccountEvent, { type: T }>;
export const ACCOUNT_EVENT_TYPES = AccountEvent.options.map((o) => o.shape.type.value);

export const accountStream = (accountId: string): string => `account-${accountId}`;
