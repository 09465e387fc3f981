/** Events of the `otp-<otpId>` stream: carrier facts, kept off the hot account stream. */
import { z } from 'zod';
import { CarrierSchema, ChannelSchema, IsoTime } from './schema.js';

/** Normalized receipt states; `raw` keeps the upstream's own words. */
export const RECEIPT_STATUSES = ['delivered', 'undelivered', 'rejected', 'expired', 'accepted', 'answered', 'unanswered'] as const;
export type ReceiptStatus = (typeof RECEIPT_STATUSES)[number];

const ev = <T extends string, S extends z.ZodRawShape>(type: T, data: S) =>
  z.object({ type: z.literal(type), data: z.object(data).strict() });

export const Routed = ev('Routed', {
  attempt: z.number().int().min(1),
  provider: z.string().min(1).max(64),
  carrier: CarrierSchema,
  channel: ChannelSchema,
  providerMessageId: z.string().min(1).max(128),
  at: IsoTime,
});
export const RouteFailed = ev('RouteFailed', {
  attempt: z.number().int().min(1),
  provider: z.string().min(1).max(64),
  error: z.string().max(500),
  retryable: z.boolean(),
  /** The dispatcher gave up after this attempt: no provider is left to try. Settlement refunds. */
  final: z.boolean().optional(),
  at: IsoTime,
});
export const ReceiptReceived = ev('ReceiptReceived', {
  /**
   * The upstream the receipt came in from: a message is known by its upstream and its id, since two
   * upstreams (or one whose counter started over) may hand out the same id. Absent from receipts
   * recorded before it was added; the OTP decider then takes the upstream that routed that id.
   */
  provider: z.string().min(1).max(64).optional(),
  providerMessageId: z.string().min(1).max(128),
  status: z.enum(RECEIPT_STATUSES),
  raw: z.string().max(1000),
  at: IsoTime,
});
export const Expired = ev('Expired', { at: IsoTime });

export const OtpEvent = z.discriminatedUnion('type', [Routed, RouteFailed, ReceiptReceived, Expired]);
export type OtpEvent = z.infer<typeof OtpEvent>;
export type OtpEventOf<T extends OtpEvent['type']> = Extract<OtpEvent, { type: T }>;
export const OTP_EVENT_TYPES = OtpEvent.options.map((o) => o.shape.type.value);

export const otpStream = (otpId: string): string => `otp-${otpId}`;
