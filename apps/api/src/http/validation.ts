/** zod at the HTTP edge: every failure becomes `invalid_request` with the offending fields named. */
import type { z } from 'zod';
import { DomainError } from '#domain';
import { type PrivateAddressPolicy, webhookUrlProblem } from '#security';
import { IdParam } from './schemas.js';

/**
 * Where an input comes from. A refusal names what is wrong as `name: reason`: the field or query
 * parameter, or, for the input as a whole, `body` or the header's name.
 */
export type InputSource = 'body' | 'query' | { header: string };

export function parseInput<S extends z.ZodType>(schema: S, value: unknown, source: InputSource): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const problems = r.error.issues.flatMap((issue) => describeIssue(issue, value, source));
  throw new DomainError('invalid_request', problems.slice(0, 5).join('; '));
}

function describeIssue(issue: z.core.$ZodIssue, input: unknown, source: InputSource): string[] {
  const name = (path: readonly PropertyKey[]) => (path.length ? path.map((p) => clip(String(p))).join('.') : typeof source === 'string' ? source : source.header);
  if (issue.code === 'unrecognized_keys') {
    const what = source === 'query' ? 'unknown query parameter' : 'unknown field';
    return issue.keys.map((k) => `${name([...issue.path, k])}: ${what}`);
  }
  if (issue.code === 'invalid_type' && issue.path.length > 0) {
    const given = valueAt(input, issue.path);
    if (given === undefined) return [`${name(issue.path)}: required`];
    // `?month=a&month=b` arrives as an array: say so rather than "expected string, received array".
    if (source === 'query' && Array.isArray(given)) return [`${name(issue.path)}: given more than once`];
  }
  return [`${name(issue.path)}: ${issue.message}`];
}

/** Names come from the client: echo a long one cut short. */
function clip(name: string): string {
  return name.length > 64 ? `${name.slice(0, 64)}…` : name;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input;
  for (const p of path) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
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
