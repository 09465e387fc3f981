import { HttpException } from '@nestjs/common';
import { DomainError } from '#domain';
import { StoreUnavailableError } from '#eventstore';
import { ProjectionBehindError } from '#projections';
import { toErrorBody } from './api-error.filter.js';

describe('toErrorBody: every error as API.md shapes it', () => {
  it("answers a domain error with its code and status, and of its details only API.md's retry_after", () => {
    expect(toErrorBody(new DomainError('idempotency_conflict', 'used with a different request', { otpId: 'otp_1' }))).toEqual({
      status: 409,
      body: { ok: false, error: 'idempotency_conflict', message: 'used with a different request' },
    });
    expect(toErrorBody(new DomainError('rate_limited', 'slow down', { retry_after: 12 }))).toEqual({
      status: 429,
      body: { ok: false, error: 'rate_limited', message: 'slow down', retry_after: 12 },
      headers: { 'retry-after': '12' },
    });
  });

  it('answers read models behind the log with 503 and when to retry, not as a bug', () => {
    expect(toErrorBody(new ProjectionBehindError('projections did not reach position 74 within 5000 ms (at 5)'))).toEqual({
      status: 503,
      body: { ok: false, error: 'internal', message: 'the read models are behind the log; nothing was changed, try again' },
      headers: { 'retry-after': '1' },
    });
  });

  it('answers an event log that does not take the write (unreachable, closed, a full disk) with 503 and when to retry, not as a bug', () => {
    const refused = new StoreUnavailableError('append failed; nothing in this batch was written', { cause: new Error('database or disk is full') });
    expect(toErrorBody(refused)).toEqual({
      status: 503,
      body: { ok: false, error: 'internal', message: 'the event log is unavailable; nothing was changed, try again' },
      headers: { 'retry-after': '1' },
    });
    // A write the log may have taken without confirming it (EventStoreDB's deadline passed): not "nothing was changed".
    expect(toErrorBody(new StoreUnavailableError('EventStoreDB unavailable: deadline exceeded', { written: 'unknown' })).body).toEqual({
      ok: false,
      error: 'internal',
      message: 'the event log did not confirm the write, which may have been recorded; retry with the same Idempotency-Key, which answers what was done',
    });
  });

  it('answers what the framework refuses as invalid_request or not_found, and anything else as internal without its text', () => {
    expect(toErrorBody(new HttpException('Unsupported Media Type', 415))).toEqual({ status: 400, body: { ok: false, error: 'invalid_request', message: 'Content-Type must be application/json' } });
    expect(toErrorBody(Object.assign(new Error("'/x' is exceeding the max param length"), { statusCode: 414, code: 'FST_ERR_MAX_PARAM_LENGTH' }))).toEqual({
      status: 400,
      body: { ok: false, error: 'invalid_request', message: 'URL path segment too long' },
    });
    // What Nest's Fastify adapter makes of the JSON parser's refusals: an HttpException with Fastify's error as its cause.
    const parserError = (code: string) => new HttpException('Body is not valid JSON', 400, { cause: Object.assign(new Error('x'), { name: 'FastifyError', statusCode: 400, code }) });
    expect(toErrorBody(parserError('FST_ERR_CTP_INVALID_JSON_BODY')).body).toEqual({ ok: false, error: 'invalid_request', message: 'body is not valid JSON, or has a forbidden key (__proto__, constructor.prototype)' });
    expect(toErrorBody(new HttpException('Not Found', 404)).body).toEqual({ ok: false, error: 'not_found', message: 'no such route' });
    expect(toErrorBody(new Error('SQLITE_CORRUPT at /secret/path'))).toEqual({ status: 500, body: { ok: false, error: 'internal', message: 'internal error; nothing was changed' } });
  });
});
