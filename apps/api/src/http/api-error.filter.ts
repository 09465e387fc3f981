/**
 * The one place errors become HTTP: domain codes map to the API's status and
 * body; anything unexpected is `internal`, logged with the request id and
 * never echoed to the client.
 */
import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, NotFoundException } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { DomainError, type ErrorCode } from '#domain';
import { StoreUnavailableError } from '#eventstore';
import { ProjectionBehindError } from '#projections';
import type { Logger } from '#observability';
import { type ErrorBody, STATUS_BY_CODE } from './api-error.js';
import { MethodNotAllowed, methodNotAllowed } from './method-not-allowed.js';

export function toErrorBody(error: unknown): { status: number; body: ErrorBody; headers?: Record<string, string> } {
  if (error instanceof DomainError) {
    const status = STATUS_BY_CODE[error.code] ?? 500;
    // API.md names one field beside error and message (retry_after); other details are for logs and code, not the answer.
    const retry = error.details.retry_after;
    const body: ErrorBody = { ok: false, error: error.code, message: error.message, ...(typeof retry === 'number' ? { retry_after: retry } : {}) };
    // A 401 names the scheme that would be accepted (RFC 9110 §11.6.1): API keys, unless the route says otherwise.
    const challenge = typeof error.details.challenge === 'string' ? error.details.challenge : 'Bearer';
    const headers: Record<string, string> | undefined =
      typeof retry === 'number' ? { 'retry-after': String(retry) } : status === 401 ? { 'www-authenticate': challenge } : undefined;
    return { status, body, headers };
  }
  if (error instanceof MethodNotAllowed) {
    // 405 is not in API.md's table, and its codes are stable API: the status and Allow say what HTTP
    // says, the code is the table's one for a request the client must change (README, API edges).
    return { status: 405, body: { ok: false, error: 'invalid_request', message: error.message }, headers: { allow: error.allow.join(', ') } };
  }
  if (error instanceof ProjectionBehindError) {
    // A request that waits for the read models to catch up with the log, while they stay behind it:
    // nothing is wrong with the request, nothing was done, and it will succeed again.
    // API.md's table has no code for that; its server-side code, with 503 and when to retry (README).
    return {
      status: 503,
      body: { ok: false, error: 'internal', message: 'the read models are behind the log; nothing was changed, try again' },
      headers: { 'retry-after': '1' },
    };
  }
  if (error instanceof StoreUnavailableError) {
    // The event log did not take the write (unreachable, closed, its disk full): not a bug and not for
    // good. Same answer as the other 503s; the log line stays an error (see sendError). When the log
    // may have taken it without confirming, the answer must not say nothing was done.
    const message =
      error.written === 'unknown'
        ? 'the event log did not confirm the write, which may have been recorded; retry with the same Idempotency-Key, which answers what was done'
        : 'the event log is unavailable; nothing was changed, try again';
    return { status: 503, body: { ok: false, error: 'internal', message }, headers: { 'retry-after': '1' } };
  }
  const status = error instanceof HttpException ? error.getStatus() : httpStatusOf(error);
  if (status !== undefined && status >= 400 && status < 500) {
    const code: ErrorCode = status === 404 ? 'not_found' : status === 401 ? 'unauthorized' : 'invalid_request';
    const message =
      status === 404 ? 'no such route' : status === 413 ? 'request body is larger than 16 KiB' : status === 415 ? 'Content-Type must be application/json' : clientMessage(error);
    return { status: code === 'invalid_request' ? 400 : status, body: { ok: false, error: code, message } };
  }
  return { status: 500, body: { ok: false, error: 'internal', message: 'internal error; nothing was changed' } };
}

function httpStatusOf(error: unknown): number | undefined {
  const s = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof s === 'number' ? s : undefined;
}

function clientMessage(error: unknown): string {
  // Nest's Fastify adapter wraps a FastifyError under 500 (a bad JSON body, say) in an HttpException,
  // keeping Fastify's error, with its code, as the cause.
  const cause = error instanceof HttpException ? error.cause : undefined;
  const code = ((cause ?? error) as { code?: string } | null)?.code;
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return 'Content-Type must be application/json';
  if (code === 'FST_ERR_BAD_URL') return 'malformed URL';
  if (code === 'FST_ERR_MAX_PARAM_LENGTH') return 'URL path segment too long';
  // Fastify's JSON parser refuses prototype keys in an otherwise valid body with the same error, its cause dropped.
  if (error instanceof SyntaxError || code === 'FST_ERR_CTP_INVALID_JSON_BODY') return 'body is not valid JSON, or has a forbidden key (__proto__, constructor.prototype)';
  return 'malformed request';
}

export function sendError(reply: FastifyReply, request: FastifyRequest | undefined, error: unknown, logger: Logger): void {
  const { status, body, headers } = toErrorBody(error);
  // A 503 is the service briefly busy (starting, draining, read models behind): a warning. The event log
  // refusing writes is an outage an operator must see, whatever the status says to the client.
  if (status === 503 && !(error instanceof StoreUnavailableError)) logger.warn({ err: error, reqId: request?.id, route: request?.routeOptions?.url }, 'request refused for now');
  else if (status >= 500) logger.error({ err: error, reqId: request?.id, route: request?.routeOptions?.url }, 'request failed');
  if (headers) void reply.headers(headers);
  void reply.status(status).type('application/json; charset=utf-8').send(body);
}

@Catch()
export class ApiErrorFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    // The router's 404 (Nest's not-found handler throws NotFoundException) may be a known path's wrong method.
    const wrongMethod = exception instanceof NotFoundException ? methodNotAllowed(request) : undefined;
    sendError(http.getResponse<FastifyReply>(), request, wrongMethod ?? exception, this.logger);
  }
}
