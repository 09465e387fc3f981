/** Stable error codes of the public API (../shared/API.md); the apps map them to HTTP. */
export const ERROR_CODES = [
  'invalid_request',
  'unauthorized',
  'insufficient_balance',
  'not_found',
  'idempotency_conflict',
  'invalid_phone',
  'no_route',
  'rate_limited',
  'internal',
  // domain refusals that never reach a customer as such
  'account_exists',
  'account_not_open',
  'already_exists',
  'invalid_command',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * Codes that say our own code went wrong: their errors keep a stack trace. Every other code is a
 * refusal the service gives as a matter of course (no funds, a phone's window, a bad number), which
 * a client may draw thousands of times a second; capturing the stack cost ~6 µs of each (the
 * message says all there is).
 */
const BUG_CODES: ReadonlySet<ErrorCode> = new Set(['internal', 'invalid_command']);

export class DomainError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Readonly<Record<string, unknown>> = {}) {
    const frames = Error.stackTraceLimit;
    if (!BUG_CODES.has(code)) Error.stackTraceLimit = 0;
    try {
      super(message);
    } finally {
      Error.stackTraceLimit = frames;
    }
    this.code = code;
    this.details = details;
    this.name = 'DomainError';
  }
}
