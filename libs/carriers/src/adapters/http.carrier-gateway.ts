/**
 * CarrierGateway over a JSON aggregator API (protocol in http.protocol.ts).
 * Retries at the same provider only where it cannot make a second message:
 * 5xx, timeouts and network errors, with the same Idempotency-Key. A 4xx is
 * never retried here: 401/403 (our credentials) and 422 no_route are about
 * this provider and fail over to the next; other 4xx end the plan; 429 fails
 * over rather than queueing behind a throttled upstream.
 * Receipts do not come through this adapter: they arrive on our callback
 * endpoint (see parseReceiptCallback).
 */
import http from 'node:http';
import https from 'node:https';
import { maskPhone } from '#domain';
import { backoffDelay, sleep } from '../backoff.js';
import { deadlineSignal } from '../deadline.js';
import {
  CarrierError,
  silentLogger,
  type CarrierErrorCode,
  type CarrierGateway,
  type CarrierLogger,
  type SubmitRequest,
  type SubmitResult,
} from '../carrier-gateway.port.js';
import {
  ErrorBodySchema,
  IDEMPOTENCY_HEADER,
  MAX_BODY_BYTES,
  SIGNATURE_HEADER,
  SUBMIT_PATH,
  SubmitResponseSchema,
  reference,
  signBody,
  type SubmitBody,
} from './http.protocol.js';

export interface HttpCarrierGatewayOptions {
  provider: string;
  /** e.g. `https://api.aggregator.example`; SUBMIT_PATH is appended. */
  baseUrl: string;
  secret: string;
  /** Per request, response body included. Default 5 000 ms. */
  timeoutMs?: number;
  /** Extra tries after the first, on 5xx/timeout/network only. Default 2. */
  maxRetries?: number;
  backoff?: { baseMs?: number; maxMs?: number };
  logger?: CarrierLogger;
  now?: () => number;
}

interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A failure of `post` that came after the whole request was written. */
type SentError = Error & { requestSent?: boolean };

type Outcome = { ok: true; result: SubmitResult } | { ok: false; error: CarrierError; retry: boolean };

export class HttpCarrierGateway implements CarrierGateway {
  readonly provider: string;
  private readonly url: URL;
  private readonly secret: string;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly backoffBase: number;
  private readonly backoffMax: number;
  private readonly logger: CarrierLogger;
  private readonly now: () => number;
  private readonly agent: http.Agent;
  /** Aborts sleeping retries and open requests on close(). */
  private readonly closing = new AbortController();

  constructor(opts: HttpCarrierGatewayOptions) {
    this.provider = opts.provider;
    // Appended to the base's path (an aggregator may live under a prefix): `new URL('/v1/…', base)` would drop it.
    const base = new URL(opts.baseUrl);
    this.url = new URL(`${base.pathname.replace(/\/+$/, '')}${SUBMIT_PATH}`, base);
    if (this.url.protocol !== 'http:' && this.url.protocol !== 'https:') throw new Error('baseUrl must be http(s)');
    this.secret = opts.secret;
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.maxRetries = opts.maxRetries ?? 2;
    this.backoffBase = opts.backoff?.baseMs ?? 200;
    this.backoffMax = opts.backoff?.maxMs ?? 2_000;
    this.logger = opts.logger ?? silentLogger;
    this.now = opts.now ?? Date.now;
    const Agent = this.url.protocol === 'https:' ? https.Agent : http.Agent;
    this.agent = new Agent({ keepAlive: true, maxSockets: 64 });
  }

  async submit(req: SubmitRequest): Promise<SubmitResult> {
    const body: SubmitBody =
      req.channel === 'sms'
        ? { reference: reference(req.otpId, req.attempt), to: req.phoneE164, carrier: req.carrier, channel: 'sms', text: req.text }
        : {
            reference: reference(req.otpId, req.attempt),
            to: req.phoneE164,
            carrier: req.carrier,
            channel: 'voice',
            speech: req.speech,
            digits: req.digits,
          };
    const raw = JSON.stringify(body);
    const log = { provider: this.provider, otpId: req.otpId, attempt: req.attempt, phone: maskPhone(req.phoneE164) };
    // Once a try may have reached the upstream, the submit's outcome stays ambiguous whatever the later tries say.
    let mayHaveReached = false;
    for (let i = 0; ; i++) {
      if (this.closing.signal.aborted) throw new CarrierError(this.provider, 'closed', true, 'closed', undefined, undefined, mayHaveReached);
      const outcome = await this.once(raw, body.reference);
      if (outcome.ok) return outcome.result;
      mayHaveReached ||= outcome.error.ambiguous;
      if (!outcome.retry || i >= this.maxRetries) {
        const error = mayHaveReached ? outcome.error.asAmbiguous() : outcome.error;
        this.logger.warn({ ...log, error: error.code, detail: error.detail, ambiguous: error.ambiguous, tries: i + 1 }, 'carrier submit failed');
        throw error;
      }
      const delayMs = backoffDelay(i, this.backoffBase, this.backoffMax);
      this.logger.info({ ...log, error: outcome.error.code, detail: outcome.error.detail, delayMs }, 'carrier submit retry');
      try {
        await sleep(delayMs, this.closing.signal);
      } catch {
        throw new CarrierError(this.provider, 'closed', true, 'closed', undefined, undefined, mayHaveReached);
      }
    }
  }

  private async once(raw: string, ref: string): Promise<Outcome> {
    let answer: HttpAnswer;
    try {
      answer = await this.post(raw, {
        'content-type': 'application/json',
        [SIGNATURE_HEADER]: signBody(this.secret, raw, this.now()),
        [IDEMPOTENCY_HEADER]: ref,
      });
    } catch (err) {
      if (this.closing.signal.aborted) return { ok: false, retry: false, error: new CarrierError(this.provider, 'closed', true) };
      const timedOut = (err as Error).name === 'TimeoutError';
      const code = String((err as NodeJS.ErrnoException).code ?? 'unknown');
      // A connection that failed after the whole request left (a reset, a close before the answer)
      // may have been read upstream: as ambiguous as a timeout. One that failed before cannot have.
      const error = timedOut
        ? new CarrierError(this.provider, 'timeout', true, `no answer within ${this.timeoutMs} ms`)
        : (err as SentError).requestSent
          ? new CarrierError(this.provider, 'connection_lost', true, 'connection lost after the request was sent', code)
          : new CarrierError(this.provider, 'network', true, 'network error', code);
      return { ok: false, retry: true, error };
    }
    const { status } = answer;
    const detail = `http_${status}`;
    if (status >= 200 && status < 300) {
      const parsed = SubmitResponseSchema.safeParse(safeJson(answer.body));
      // Not retryable: the aggregator may have taken it, and a second provider would send it twice. For
      // the same reason ambiguous: the phone's window is kept (I8).
      if (!parsed.success) {
        return { ok: false, retry: false, error: new CarrierError(this.provider, 'invalid_response', false, 'unreadable 2xx body', detail, undefined, true) };
      }
      return { ok: true, result: { providerMessageId: parsed.data.message_id } };
    }
    const upstream = ErrorBodySchema.safeParse(safeJson(answer.body));
    const why = upstream.success ? upstream.data.error : detail;
    if (status >= 500) return { ok: false, retry: true, error: new CarrierError(this.provider, 'unavailable', true, why, detail) };
    if (status === 429) {
      const retryAfter = Number(answer.headers['retry-after']);
      const ms = Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter * 1000 : undefined;
      return { ok: false, retry: false, error: new CarrierError(this.provider, 'throttled', true, why, detail, ms) };
    }
    // Never retried here. Refusals about this provider, not the message (our credentials, its own
    // lack of a route), let the next provider try; the rest (a bad request, content refused) end the plan.
    const code = clientErrorCode(status, why);
    return { ok: false, retry: false, error: new CarrierError(this.provider, code, code === 'unauthorized' || code === 'no_route', why, detail) };
  }

  private post(raw: string, headers: Record<string, string>): Promise<HttpAnswer> {
    const deadline = deadlineSignal(this.timeoutMs, this.closing.signal);
    const signal = deadline.signal;
    const mod = this.url.protocol === 'https:' ? https : http;
    return new Promise<HttpAnswer>((resolve, reject) => {
      // An abort after the headers arrived ends the response with `close` and no `end`: settle once, either way.
      let settled = false;
      let sent = false;
      const fail = (err: unknown): void => {
        if (settled) return;
        settled = true;
        const error = signal.aborted ? signal.reason : err;
        // Not `instanceof Error`: socket errors may come from another realm (a test's VM context).
        if (sent && typeof error === 'object' && error !== null) (error as SentError).requestSent = true;
        reject(error);
      };
      const req = mod.request(this.url, { method: 'POST', agent: this.agent, headers, signal }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size <= MAX_BODY_BYTES) return void chunks.push(c);
          // Too large to read: answered all the same, with an empty body (a 2xx is then `invalid_response`).
          if (!settled) {
            settled = true;
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' });
          }
          res.destroy();
        });
        res.on('end', () => {
          if (settled) return;
          settled = true;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', fail);
        res.on('close', () => fail(new Error('response closed early')));
      });
      req.on('error', fail);
      // Flushed to the socket: from here a failure may come after the upstream read it.
      req.on('finish', () => (sent = true));
      req.end(raw);
    }).finally(() => deadline.clear());
  }

  async close(): Promise<void> {
    this.closing.abort(new Error('closed'));
    this.agent.destroy();
  }
}

function clientErrorCode(status: number, why: string): CarrierErrorCode {
  if (status === 401 || status === 403) return 'unauthorized';
  if (status === 422) return why === 'no_route' ? 'no_route' : 'rejected';
  return 'invalid_request';
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
