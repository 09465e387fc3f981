/** zod schemas of the public API's inputs (API.md); unknown fields are refused everywhere. */
import { createHash, createHmac } from 'node:crypto';
import { z } from 'zod';
import { SmsTemplateSchema, VoiceTemplateSchema } from '#domain';

export const IdempotencyKeyHeader = z.string().min(1, 'must be 1-255 characters').max(255, 'must be 1-255 characters').optional();

/** A JSON body's fields, unknown ones refused; a body that is not a JSON object is refused showing the shape expected. */
const jsonBody = <S extends z.ZodRawShape>(shape: S, expected: string) =>
  z.strictObject(shape, { error: (issue) => (issue.code === 'invalid_type' ? `must be JSON ${expected}` : undefined) });

/** A customer's endpoint; whether its address is public is checked beside the schema (`checkWebhookUrl`), as it depends on config. */
const WebhookUrl = z
  .url({ protocol: /^https?$/ })
  .max(2048)
  // Credentials in the URL would be stored, shown back and sent in clear: the signature authenticates us instead.
  .refine((u) => {
    // zod runs this even when the URL check failed: that check's issue is the answer then.
    if (!URL.canParse(u)) return true;
    const parsed = new URL(u);
    return parsed.username === '' && parsed.password === '';
  }, 'must not carry a user name or password (the Nexo-Signature header authenticates us)')
  .describe('http(s) URL of your endpoint. It must reach a public address: private, loopback and link-local addresses (and localhost) are refused, also when a name resolves to one.');

export const SendOtpBody = jsonBody(
  {
    // An empty phone is a number that is not Vietnamese (invalid_phone, 422), not a malformed request.
    phone: z.string().max(256),
    code: z.string().regex(/^\d{4,10}$/, 'must be 4-10 digits'),
    channel: z.enum(['auto', 'sms', 'voice']).default('auto'),
    webhook_url: WebhookUrl.describe(
      `${WebhookUrl.description} Overrides the account's webhook for this OTP, signed with the account's secret: PUT /api/v1/webhook once before (400 otherwise).`,
    ).optional(),
  },
  '{ "phone": string, "code": "4-10 digits", "channel"?, "webhook_url"? }',
);

export const SignupBody = jsonBody({ name: z.string().max(200).optional() }, '{ "name"?: string } or nothing').default({});
export const EmptyBody = jsonBody({}, '{} or nothing').optional();
export const WebhookBody = jsonBody({ url: WebhookUrl }, '{ "url": "https://…" }');
export const TemplateBody = jsonBody(
  {
    sms: SmsTemplateSchema.nullable()
      .optional()
      .describe('SMS text with {code} where the code goes. It must fit one SMS with a 10-digit code (160 GSM-7 characters, 70 with Vietnamese accents) and avoid words carrier filters flag (crypto, wallet, exchange, ví, sàn, …). null: back to the default; absent: unchanged.'),
    voice: VoiceTemplateSchema.nullable()
      .optional()
      .describe('The words of the call around {code} (once, at most 200 characters), same words refused; the call reads the digits one by one, then once more. null: back to the default; absent: unchanged.'),
  },
  '{ "sms"?: string | null, "voice"?: string | null }',
);
export const FeedbackBody = jsonBody({ verified: z.boolean() }, '{ "verified": true }');
export const IdParam = z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/);
/** A page size in a query: plain decimal digits only (not `1e1`, `0x10` or ` 5`), 1 to `max`. */
export const pageSize = (max: number, byDefault: number) =>
  z
    .string()
    .regex(/^[0-9]{1,9}$/, `must be a whole number from 1 to ${max}`)
    .transform(Number)
    .pipe(z.number().min(1, `must be a whole number from 1 to ${max}`).max(max, `must be a whole number from 1 to ${max}`))
    .default(byDefault);
/** Page size of list endpoints; small, since each page is re-read by the polling dashboard. */
export const ListQuery = z.strictObject({ limit: pageSize(100, 20) });
/** A calendar month, YYYY-MM; also the pattern /openapi.json gives the `month` parameter. */
export const MONTH_PATTERN = /^\d{4}-(0[1-9]|1[0-2])$/;
export const MonthQuery = z.strictObject({
  month: z
    .string()
    .regex(MONTH_PATTERN, 'must be YYYY-MM')
    .optional(),
});

/**
 * Hash of a request body for Idempotency-Key matching: same key, same body ↔ same hash. The same
 * body is the same JSON value: whitespace and the order of its fields do not matter. Fields are
 * hashed in the schema's order (`fieldOrder`), then any others by name, so a body sent in that order
 * (API.md's sample) hashes as it did when the order sent was hashed, and keys stored then still match.
 */
export function requestHash(body: unknown, fieldOrder: readonly string[] = [], key?: Buffer): string {
  const rank = (k: string) => {
    const i = fieldOrder.indexOf(k);
    return i < 0 ? fieldOrder.length : i;
  };
  const canonical = JSON.stringify(body ?? null, (_key, value: unknown) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
    const entries = Object.entries(value).sort(([a], [b]) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
    return Object.fromEntries(entries);
  });
  // Keyed where the hash is kept beside data that narrows what a body could be (the send's, in the log).
  return (key === undefined ? createHash('sha256') : createHmac('sha256', key)).update(canonical).digest('hex');
}

/** The field order `requestHash` follows for each body. */
export const SEND_OTP_FIELDS = Object.keys(SendOtpBody.shape);
export const SIGNUP_FIELDS = ['name'];

export function currentMonth(now: Date): string {
  return now.toISOString().slice(0, 7);
}
