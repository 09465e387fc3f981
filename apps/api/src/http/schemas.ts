/** zod schemas of the public API's inputs (API.md); unknown fields are refused everywhere. */
import { createHash } from 'node:crypto';
import { z } from 'zod';

export const IdempotencyKeyHeader = z.string().min(1).max(255).optional();

/** A customer's endpoint; whether its address is public is checked beside the schema (`checkWebhookUrl`), as it depends on config. */
const WebhookUrl = z
  .url({ protocol: /^https?$/ })
  .max(2048)
  .describe('http(s) URL of your endpoint. It must reach a public address: private, loopback and link-local addresses (and localhost) are refused, also when a name resolves to one.');

export const SendOtpBody = z.strictObject({
  phone: z.string().min(1).max(256),
  code: z.string().regex(/^\d{4,10}$/, 'code must be 4-10 digits'),
  channel: z.enum(['auto', 'sms', 'voice']).default('auto'),
  webhook_url: WebhookUrl.optional(),
});

export const SignupBody = z.strictObject({ name: z.string().max(200).optional() }).default({});
export const EmptyBody = z.strictObject({}).optional();
export const WebhookBody = z.strictObject({ url: WebhookUrl });
export const FeedbackBody = z.strictObject({ verified: z.boolean() });
export const IdParam = z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/);
/** Page size of list endpoints; small, since each page is re-read by the polling dashboard. */
export const ListQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(100).default(20) });
export const MonthQuery = z.strictObject({
  month: z
    .string()
    .regex(/^\d{4}-(0[1-9]|1[0-2])$/, 'month must be YYYY-MM')
    .optional(),
});

/** Hash of a request body for Idempotency-Key matching: same key, same body ↔ same hash. */
export function requestHash(body: unknown): string {
  return createHash('sha256').update(JSON.stringify(body ?? null)).digest('hex');
}

export function currentMonth(now: Date): string {
  return now.toISOString().slice(0, 7);
}
