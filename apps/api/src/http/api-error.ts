/** The API's error body and the one table from stable codes to HTTP status (API.md). */
import type { ErrorCode } from '#domain';

export const STATUS_BY_CODE: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthorized: 401,
  insufficient_balance: 402,
  not_found: 404,
  idempotency_conflict: 409,
  invalid_phone: 422,
  no_route: 422,
  rate_limited: 429,
  internal: 500,
  // Domain refusals that reach HTTP only through a bug or a race; none is the customer's fault to fix.
  account_exists: 409,
  account_not_open: 401,
  already_exists: 409,
  invalid_command: 400,
};

export interface ErrorBody {
  ok: false;
  error: ErrorCode;
  message: string;
  /** rate_limited: seconds until a retry can succeed (also the Retry-After header). */
  retry_after?: number;
}
