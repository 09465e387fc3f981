/** zod at the HTTP edge: every failure becomes `invalid_request` with the offending fields named. */
import type { z } from 'zod';
import { DomainError } from '#domain';
import { type PrivateAddressPolicy, webhookUrlProblem } from '#security';
import { IdParam } from './schemas.js';

export function parseInput<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issues = r.error.issues.slice(0, 5).map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message));
  throw new DomainError('invalid_request', issues.join('; '));
}

/**
 * A webhook URL the sender would refuse (a private, loopback or link-local address, `localhost`)
 * is refused when it is given, naming the field, unless the service allows private addresses
 * (`NEXO_WEBHOOK_PRIVATE_ADDRESSES=allow`). Names that resolve to such addresses are caught by the
 * sender at connect time.
 */
export function checkWebhookUrl(field: string, url: string | undefined, privateAddresses: PrivateAddressPolicy): void {
  if (url === undefined || privateAddresses === 'allow') return;
  const problem = webhookUrlProblem(url);
  if (problem) throw new DomainError('invalid_request', `${field}: ${problem}`);
}

/**
 * An id in a path. One that cannot be any of ours (wrong characters, too long) is unknown to this
 * account, which API.md answers with `not_found`, like any other unknown id.
 */
export function parseIdParam(value: string, what: string): string {
  if (!IdParam.safeParse(value).success) throw new DomainError('not_found', `no ${what} with this id`);
  return value;
}
