/**
 * The JSON aggregator protocol spoken by the http adapter and the simulator's
 * HTTP face.
 *
 *   POST {baseUrl}/v1/messages                     (we → aggregator)
 *     headers  X-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, t + "." + raw body)>
 *              Idempotency-Key: <otpId>:<attempt>  (a retried submit is not a second message)
 *     body     { reference, to, carrier, channel, text | speech, digits? }
 *     202      { message_id, status: "accepted" }
 *     4xx/5xx  { error, message? }; 429 carries Retry-After (seconds)
 *
 *   POST {our callback}                            (aggregator → us; API: /api/v1/carriers/:provider/receipts)
 *     headers  X-Signature as above, with the same shared secret
 *     body     { message_id, reference?, status: DELIVRD|UNDELIV|REJECTD|EXPIRED|ACCEPTD|ANSWERED|NOANSWER|BUSY, error_code?, done_at? }
 *     answer   2xx once stored; anything else makes the aggregator retry
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { CarrierSchema, ChannelSchema } from '#domain';
import type { Receipt } from '../carrier-gateway.port.js';
import { scrubRaw, statToStatus } from '../delivery-receipt.codec.js';

export const SUBMIT_PATH = '/v1/messages';
export const SIGNATURE_HEADER = 'x-signature';
export const IDEMPOTENCY_HEADER = 'idempotency-key';
/** Largest body either side reads; OTP payloads are a few hundred bytes. */
export const MAX_BODY_BYTES = 64 * 1024;

export const SubmitBodySchema = z
  .object({
    reference: z.string().min(1).max(128),
    to: z.string().regex(/^\+\d{8,15}$/),
    carrier: CarrierSchema,
    channel: ChannelSchema,
    text: z.string().min(1).max(1000).optional(),
    speech: z.string().min(1).max(2000).optional(),
    digits: z.string().regex(/^\d{4,10}$/).optional(),
  })
  .strict()
  .refine((b) => (b.channel === 'sms' ? b.text !== undefined : b.speech !== undefined), 'sms needs text, voice needs speech');
export type SubmitBody = z.infer<typeof SubmitBodySchema>;

export const SubmitResponseSchema = z.object({ message_id: z.string().min(1).max(128), status: z.string().max(32).optional() });
export const ErrorBodySchema = z.object({ error: z.string().max(64), message: z.string().max(500).optional() });

/** Unknown fields are dropped, not refused: aggregators add fields, and a refused receipt is retried forever. */
export const ReceiptBodySchema = z.object({
  message_id: z.string().min(1).max(128),
  reference: z.string().max(128).optional(),
  status: z.string().min(1).max(32),
  error_code: z.string().max(32).optional(),
  done_at: z.string().max(40).optional(),
});
export type ReceiptBody = z.infer<typeof ReceiptBodySchema>;

export const reference = (otpId: string, attempt: number): string => `${otpId}:${attempt}`;

export function parseReference(ref: string | undefined): { otpId: string; attempt: number } | undefined {
  const m = ref ? /^([A-Za-z0-9_-]{1,64}):([1-9]\d{0,5})$/.exec(ref) : null;
  return m ? { otpId: m[1]!, attempt: Number(m[2]) } : undefined;
}

const hmac = (secret: string, t: string, body: string | Uint8Array): Buffer =>
  createHmac('sha256', secret).update(`${t}.`).update(body).digest();

export function signBody(secret: string, rawBody: string | Uint8Array, nowMs: number = Date.now()): string {
  const t = String(Math.floor(nowMs / 1000));
  return `t=${t},v1=${hmac(secret, t, rawBody).toString('hex')}`;
}

export interface VerifyOptions {
  nowMs?: number;
  /** Largest clock difference accepted, against replays; default 300 s. */
  toleranceSec?: number;
}

/**
 * Checks `t=<unix>,v1=<hex>[,v1=<hex>...]` over the exact raw bytes. Several
 * secrets (rotation) or several v1 values may be given; any match passes.
 */
export function verifyReceiptSignature(
  secret: string | readonly string[],
  rawBody: string | Uint8Array,
  header: string | undefined | null,
  opts: VerifyOptions = {},
): boolean {
  if (!header || header.length > 1024) return false;
  let t: string | undefined;
  const sigs: Buffer[] = [];
  for (const part of header.split(',')) {
    const [k, v] = part.trim().split('=', 2);
    if (k === 't' && v && /^\d{1,12}$/.test(v)) t = v;
    else if (k === 'v1' && v && /^[0-9a-f]{64}$/i.test(v)) sigs.push(Buffer.from(v, 'hex'));
  }
  if (t === undefined || sigs.length === 0) return false;
  const nowSec = (opts.nowMs ?? Date.now()) / 1000;
  if (Math.abs(nowSec - Number(t)) > (opts.toleranceSec ?? 300)) return false;
  const secrets = typeof secret === 'string' ? [secret] : secret;
  return secrets.some((s) => {
    const expected = hmac(s, t!, rawBody);
    return sigs.some((sig) => timingSafeEqual(sig, expected));
  });
}

export type ReceiptCallbackResult =
  /** `unknownStatus`: the status word is not in the vocabulary (delivery-receipt.codec): acknowledged, not recorded; the caller logs it. */
  | { ok: true; receipt: Receipt | null; unknownStatus?: string }
  | { ok: false; reason: 'bad_signature' | 'invalid_body' };

/**
 * Everything `POST /api/v1/carriers/:provider/receipts` needs: verify, parse,
 * normalize. `receipt: null` is a valid but intermediate status (ENROUTE):
 * answer 2xx and record nothing. Bad signature → 401, invalid body → 400.
 */
export function parseReceiptCallback(
  provider: string,
  secret: string | readonly string[],
  rawBody: string | Uint8Array,
  signatureHeader: string | undefined | null,
  opts: VerifyOptions = {},
): ReceiptCallbackResult {
  if (!verifyReceiptSignature(secret, rawBody, signatureHeader, opts)) return { ok: false, reason: 'bad_signature' };
  let json: unknown;
  try {
    json = JSON.parse(typeof rawBody === 'string' ? rawBody : Buffer.from(rawBody).toString('utf8'));
  } catch {
    return { ok: false, reason: 'invalid_body' };
  }
  const body = ReceiptBodySchema.safeParse(json);
  if (!body.success) return { ok: false, reason: 'invalid_body' };
  const status = statToStatus(body.data.status);
  if (status === undefined) return { ok: true, receipt: null, unknownStatus: body.data.status.slice(0, 32) };
  if (!status) return { ok: true, receipt: null };
  const { message_id, reference: ref, status: stat, error_code, done_at } = body.data;
  const raw = scrubRaw(JSON.stringify({ message_id, status: stat, error_code, done_at }));
  const at = new Date(opts.nowMs ?? Date.now()).toISOString();
  return { ok: true, receipt: { provider, providerMessageId: message_id, status, raw, at, ...parseReference(ref) } };
}
