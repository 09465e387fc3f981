/**
 * Integration messages on the bus: what the relay publishes from the log and
 * what receipt sources publish. zod checks every one at the consumer's edge.
 */
import { z } from 'zod';
import { CarrierSchema, ChannelSchema, Id, IsoTime, MessageTemplateSchema, RECEIPT_STATUSES, Sealed } from '#domain';

export const DispatchMessage = z.object({
  otpId: Id,
  accountId: Id,
  phone: Sealed,
  phoneHash: z.string(),
  carrier: CarrierSchema,
  channel: ChannelSchema,
  auto: z.boolean(),
  code: Sealed,
  /** The account's templates from the OTP's request; absent: the default text. */
  template: MessageTemplateSchema.optional(),
  at: IsoTime,
});
export type DispatchMessage = z.infer<typeof DispatchMessage>;

export const ReceiptMessage = z.object({
  provider: z.string().min(1).max(64),
  providerMessageId: z.string().min(1).max(128),
  status: z.enum(RECEIPT_STATUSES),
  raw: z.string().max(1000),
  at: IsoTime,
  /** The OTP and attempt the receipt names (an HTTP upstream's echo of our reference, an adapter's memory): checked against the OTP's routes. */
  otpId: Id.optional(),
  attempt: z.number().int().min(1).optional(),
});
export type ReceiptMessage = z.infer<typeof ReceiptMessage>;

export const SettlementMessage = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('receipt'), otpId: Id, accountId: Id, status: z.enum(RECEIPT_STATUSES), at: IsoTime }),
  z.object({ kind: z.literal('route_failed'), otpId: Id, accountId: Id, retryable: z.boolean(), at: IsoTime }),
  z.object({ kind: z.literal('expired'), otpId: Id, accountId: Id, at: IsoTime }),
]);
export type SettlementMessage = z.infer<typeof SettlementMessage>;

/** The log position of the event a message comes from (absent from messages relayed before it was added). */
const LogPosition = z.number().int().nonnegative().default(0);

export const WEBHOOK_TYPES = ['otp.routed', 'otp.delivered', 'otp.refunded'] as const;

export const WebhookMessage = z.discriminatedUnion('kind', [
  /** The per-send `webhook_url`, registered before any status change of that OTP (same key, same order). */
  z.object({ kind: z.literal('target'), otpId: Id, accountId: Id, url: z.string().url() }),
  /**
   * The account's webhook as configured (`WebhookConfigured`; the secret sealed, as in the log), in
   * log order with the account's status changes (same key): the sender never waits for the read
   * models to learn an endpoint that is already in the log.
   */
  z.object({ kind: z.literal('account'), accountId: Id, url: z.string().url(), secret: z.string().min(1), position: LogPosition }),
  /** The account's webhook removed (`WebhookRemoved`): nothing more is sent for it, retries included. */
  z.object({ kind: z.literal('account_removed'), accountId: Id, position: LogPosition }),
  z.object({
    kind: z.literal('event'),
    eventId: z.string().min(1).max(64),
    type: z.enum(WEBHOOK_TYPES),
    otpId: Id,
    accountId: Id,
    at: IsoTime,
    /** Known to the relay from the OTP's request; absent only for OTPs requested before a relay restart. */
    carrier: CarrierSchema.optional(),
    channel: ChannelSchema.optional(),
    extra: z.record(z.string(), z.string()).default({}),
    position: LogPosition,
  }),
]);
export type WebhookMessage = z.infer<typeof WebhookMessage>;
