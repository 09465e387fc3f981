/**
 * The OpenAPI document, built from the same zod schemas that validate input,
 * so the docs cannot drift from what the server accepts.
 */
import { z } from 'zod';
import * as R from '../http/responses.js';
import { FeedbackBody, MONTH_PATTERN, SendOtpBody, SignupBody, TemplateBody, WebhookBody } from '../http/schemas.js';

const json = (schema: z.ZodType) => ({ 'application/json': { schema: z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) } });
const errorRef = { $ref: '#/components/schemas/Error' };
const retryAfter = { 'Retry-After': { description: 'seconds until a retry can succeed, as retry_after in the body', required: true, schema: { type: 'integer', minimum: 1 } } };
/**
 * The operation's error answers; any operation can also answer 500 `internal` (API.md: a bug, nothing
 * half-done left behind) and 503 `internal` with Retry-After (briefly unavailable, nothing done: README,
 * API edges), and any that takes a key (401) 429 `rate_limited`: the key's request rate.
 */
const DESCRIPTIONS: Record<number, string> = {
  500: 'internal: a bug; nothing half-done is left behind',
  503: 'internal: briefly unavailable (starting, shutting down, the read models or the event log behind or unreachable); nothing was changed, retry after Retry-After',
};
const errors = (...codes: number[]) =>
  Object.fromEntries(
    [...new Set([...codes, ...(codes.includes(401) ? [429] : []), 500, 503])].map((c) => [
      String(c),
      { description: DESCRIPTIONS[c] ?? 'error', ...(c === 429 || c === 503 ? { headers: retryAfter } : {}), content: { 'application/json': { schema: errorRef } } },
    ]),
  );
/** An answer and its schema (`../http/responses.ts`, which the contract test checks real answers against). */
const ok = (schema: z.ZodType, description: string) => ({ description, content: { 'application/json': { schema: z.toJSONSchema(schema, { io: 'output', unrepresentable: 'any' }) } } });
const withCsv = (answer: ReturnType<typeof ok>) => ({ ...answer, content: { ...answer.content, 'text/csv': { schema: { type: 'string', description: 'header at,type,amount,balance_after,ref' } } } });
const bearer = [{ bearer: [] }];
const idem = { name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', minLength: 1, maxLength: 255 } };
const month = { name: 'month', in: 'query', required: false, schema: { type: 'string', pattern: MONTH_PATTERN.source, description: 'YYYY-MM; the current month (UTC) when absent' } };
const limit = { name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 100, default: 20 } };
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };

/** `chains`: the slugs that take deposits on this instance (`NEXO_CHAINS`); the deposit-address parameter lists them, and the dashboard reads them from here. */
export function openApiDocument(chains: readonly string[] = []): Record<string, unknown> {
  const chain =
    chains.length > 0
      ? { type: 'string', enum: [...chains] }
      : { type: 'string', description: 'no chain takes deposits on this instance (NEXO_CHAINS is not set): every value is 400', examples: ['ethereum'] };
  return {
    openapi: '3.1.0',
    info: {
      title: 'NEXO ROUTE OTP API',
      version: '1.0.0',
      description: 'Send one-time codes to Vietnamese mobiles by voice or SMS; prepaid in USDT/USDC; pay only for delivered codes.',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Error: z.toJSONSchema(R.ErrorResponse, { io: 'output' }),
      },
    },
    paths: {
      '/api/v1/signup': { post: { summary: 'Open an account with 5 test OTPs', parameters: [idem], requestBody: { content: json(SignupBody) }, responses: { '201': ok(R.SignupResponse, 'account, api_key (shown once)'), ...errors(400, 409, 429) } } },
      '/api/v1/keys': {
        get: { summary: "This account's keys, oldest first: key_id, prefix (the key's first characters), revoked. How to find the id of signup's key", security: bearer, responses: { '200': ok(R.KeysResponse, 'keys'), ...errors(401) } },
        post: { summary: 'Issue another API key', security: bearer, parameters: [idem], responses: { '201': ok(R.KeyIssuedResponse, 'key_id, api_key'), ...errors(400, 401, 409) } },
      },
      '/api/v1/keys/{key_id}': { delete: { summary: 'Revoke a key at once', security: bearer, parameters: [{ ...idParam, name: 'key_id' }], responses: { '200': ok(R.KeyRevokedResponse, 'revoked'), ...errors(401, 404) } } },
      '/api/v1/balance': { get: { summary: 'Balance, test credits and pending charges', security: bearer, responses: { '200': ok(R.BalanceResponse, 'balance'), ...errors(401) } } },
      '/api/v1/send-otp': {
        post: {
          summary: 'Send a code; charged now, refunded if it does not reach the user',
          security: bearer,
          parameters: [idem],
          requestBody: { required: true, content: json(SendOtpBody) },
          responses: { '200': ok(R.SendOtpResponse, 'queued'), ...errors(400, 401, 402, 409, 422, 429) },
        },
      },
      '/api/v1/otp': { get: { summary: "This account's newest OTPs, newest first, each as GET /api/v1/otp/{id}", security: bearer, parameters: [limit], responses: { '200': ok(R.OtpListResponse, 'otps'), ...errors(400, 401) } } },
      '/api/v1/otp/{id}': { get: { summary: 'Status and history of one OTP', security: bearer, parameters: [idParam], responses: { '200': ok(R.OtpResponse, 'otp'), ...errors(401, 404) } } },
      '/api/v1/otp/{id}/feedback': { post: { summary: 'The user typed the right code', security: bearer, parameters: [idParam], requestBody: { content: json(FeedbackBody) }, responses: { '200': ok(R.FeedbackResponse, 'recorded'), ...errors(400, 401, 404) } } },
      '/api/v1/webhook': {
        put: { summary: 'Set the webhook URL; returns its signing secret', security: bearer, requestBody: { content: json(WebhookBody) }, responses: { '200': ok(R.WebhookResponse, 'url, secret'), ...errors(400, 401) } },
        delete: {
          summary: 'Remove the webhook: nothing more is sent, retries of earlier events and per-send webhook_url included (a send with webhook_url is refused until a PUT)',
          security: bearer,
          responses: { '200': ok(R.WebhookRemovedResponse, 'url: null'), ...errors(401) },
        },
      },
      '/api/v1/template': {
        get: { summary: "The message text of this account's OTPs, SMS and voice: its own templates or the defaults", security: bearer, responses: { '200': ok(R.TemplateResponse, 'sms, voice'), ...errors(401) } },
        put: {
          summary: "Set this account's SMS and/or voice template (null: back to the default); applies to OTPs sent after the answer",
          security: bearer,
          requestBody: { required: true, content: json(TemplateBody) },
          responses: { '200': ok(R.TemplateResponse, 'the templates now in force'), ...errors(400, 401) },
        },
      },
      '/api/v1/deposit-address': {
        get: {
          summary: "This account's deposit address on a chain (one address serves every EVM chain), the tokens credited there and the confirmations awaited; assigned on first call",
          security: bearer,
          parameters: [{ name: 'chain', in: 'query', required: true, schema: chain }],
          responses: { '200': ok(R.DepositAddressResponse, 'chain, address, tokens, confirmations'), ...errors(400, 401) },
        },
      },
      '/api/v1/deposits': {
        get: {
          summary: 'Stablecoin deposits credited to this account, newest first; status credited or reversed (the block left the chain)',
          security: bearer,
          parameters: [{ name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } }],
          responses: { '200': ok(R.DepositsResponse, 'deposits'), ...errors(400, 401) },
        },
      },
      '/api/v1/stats': { get: { summary: "This account's monthly delivery stats", security: bearer, parameters: [month], responses: { '200': ok(R.StatsResponse, 'stats'), ...errors(400, 401) } } },
      '/api/v1/stats/public': { get: { summary: 'Monthly delivery stats over all traffic', parameters: [month], responses: { '200': ok(R.StatsResponse, 'stats'), ...errors(400) } } },
      '/api/v1/ledger': { get: { summary: 'Monthly statement: JSON, or CSV when Accept prefers text/csv (q-values count; no Accept or */* is JSON)', security: bearer, parameters: [month], responses: { '200': withCsv(ok(R.LedgerResponse, 'lines')), ...errors(400, 401) } } },
      '/health/live': { get: { summary: 'Process is up', responses: { '200': ok(R.LiveResponse, 'live') } } },
      '/health/ready': { get: { summary: 'Store and bus answer, projections caught up', responses: { '200': ok(R.ReadyResponse, 'ready'), '503': ok(z.union([R.ReadyResponse, R.ReadyStartingResponse]), 'not ready (or still starting: { ok: false, starting: true })') } } },
      '/metrics': { get: { summary: 'Prometheus metrics', responses: { '200': { description: 'text format' } } } },
    },
  };
}
