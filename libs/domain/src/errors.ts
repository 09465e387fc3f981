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

export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    super(message);
    this.name = 'DomainError';
  }
}
