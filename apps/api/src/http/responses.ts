/**
 * zod schemas of the public API's answers (API.md), for the OpenAPI document and for the contract
 * test that checks real answers against them. Strict: a field the server adds without documenting
 * it fails that test. Errors have one shape everywhere (`ErrorResponse`).
 */
import { z } from 'zod';

const Usd = z.string().regex(/^-?\d+\.\d{6}$/).describe('USD with 6 places, e.g. "0.022000"');
const Time = z.iso.datetime().describe('ISO-8601 UTC');
const Carrier = z.enum(['viettel', 'vinaphone', 'mobifone', 'vietnamobile']);
const Channel = z.enum(['sms', 'voice']);
const FundedBy = z.enum(['balance', 'test_credit']);
const ok = <S extends z.ZodRawShape>(shape: S) => z.strictObject({ ok: z.literal(true), ...shape });

export const ErrorResponse = z.strictObject({
  ok: z.literal(false),
  error: z.string().describe('a stable code of API.md'),
  message: z.string().describe('for humans; not stable'),
  retry_after: z.number().int().optional().describe('rate_limited: seconds (also the Retry-After header)'),
});

export const SignupResponse = ok({ account_id: z.string(), api_key: z.string().describe('shown once'), test_credits: z.number().int() });
export const KeyIssuedResponse = ok({ key_id: z.string(), api_key: z.string().describe('shown once') });
export const KeysResponse = ok({
  keys: z.array(z.strictObject({ key_id: z.string(), prefix: z.string().describe("the key's first 13 characters"), revoked: z.boolean() })),
});
export const KeyRevokedResponse = ok({ key_id: z.string(), revoked: z.literal(true) });
export const BalanceResponse = ok({
  balance: Usd,
  currency: z.literal('USD'),
  test_credits: z.number().int(),
  pending: Usd.describe('balance-funded charges of OTPs in flight'),
});
export const SendOtpResponse = ok({ id: z.string(), carrier: Carrier, channel: Channel, status: z.literal('queued'), price: Usd, funded_by: FundedBy });

const Otp = {
  id: z.string(),
  phone: z.string().describe('masked: +8491****678'),
  carrier: Carrier,
  channel: Channel.describe('the one picked at the send'),
  status: z.enum(['queued', 'routed', 'delivered', 'refunded']),
  price: Usd,
  funded_by: FundedBy,
  created_at: Time,
  delivered_at: Time.optional(),
  refunded_at: Time.optional(),
  refund_reason: z.enum(['undelivered', 'expired', 'rejected']).optional(),
  history: z.array(z.strictObject({ status: z.enum(['queued', 'routed', 'delivered', 'refunded']), at: Time })),
};
export const OtpResponse = ok(Otp);
export const OtpListResponse = ok({ otps: z.array(z.strictObject(Otp)) });
export const FeedbackResponse = ok({ id: z.string(), status: z.enum(['queued', 'routed', 'delivered', 'refunded']) });
export const WebhookResponse = ok({ url: z.string(), secret: z.string().describe('signs every POST: Nexo-Signature') });
export const WebhookRemovedResponse = ok({ url: z.null().describe('no webhook: nothing more is sent, retries of earlier events and per-send URLs included') });
export const TemplateResponse = ok({
  sms: z.string().describe("the SMS text the account's OTPs go out in, {code} standing for the code: its own or the default"),
  voice: z.string().describe('the words of its voice calls around {code}, which the call reads digit by digit and then once more'),
  preview: z
    .strictObject({
      code: z.string().describe('the sample code filled in'),
      sms: z.string().describe('the SMS exactly as a phone receives it'),
      voice: z.string().describe('the speech exactly as the call reads it'),
    })
    .describe('both templates rendered with a sample code, as the carriers are sent them'),
});
export const DepositAddressResponse = ok({
  chain: z.string(),
  address: z.string(),
  tokens: z.array(z.strictObject({ symbol: z.string(), contract: z.string(), decimals: z.number().int() })),
  confirmations: z.number().int(),
});
export const DepositsResponse = ok({
  deposits: z.array(
    z.strictObject({
      chain: z.string(),
      token: z.string(),
      tx_hash: z.string(),
      amount: Usd,
      status: z.enum(['credited', 'reversed']),
      block_number: z.number().int(),
      credited_at: Time,
      reversed_at: Time.optional(),
    }),
  ),
});
const Figures = {
  sent: z.number().int(),
  delivered: z.number().int(),
  refunded: z.number().int(),
  in_flight: z.number().int(),
  delivery_rate: z.number().nullable().describe('delivered / (delivered + refunded); null before any settles'),
  target: z.number(),
  p50_delivery_seconds: z.number().nullable(),
  p95_delivery_seconds: z.number().nullable(),
};
export const StatsResponse = ok({
  month: z.string(),
  ...Figures,
  by_carrier: z.record(z.string(), z.strictObject(Figures)),
  by_channel: z.record(z.string(), z.strictObject(Figures)),
});
export const LedgerResponse = ok({
  month: z.string(),
  lines: z.array(z.strictObject({ at: Time, type: z.enum(['deposit', 'charge', 'refund', 'reversal']), amount: Usd, balance_after: Usd, ref: z.string() })),
});
export const LiveResponse = ok({});
export const ReadyResponse = z.strictObject({
  ok: z.boolean(),
  store: z.boolean(),
  bus: z.boolean(),
  /** Why the bus is not ready (Kafka unreachable, the bus closed); absent when it is. */
  bus_error: z.string().optional(),
  projection_lag_events: z.number(),
  projection_lag_seconds: z.number(),
});
/** `/health/ready` while the process starts (its read models catching up with the log): not ready yet, nothing else known. */
export const ReadyStartingResponse = z.strictObject({ ok: z.literal(false), starting: z.literal(true) });
