/** zod at the HTTP edge: every failure becomes `invalid_request` with the offending fields named. */
import type { z } from 'zod';
import { DomainError } from '#domain';

export function parseInput<S extends z.ZodType>(schema: S, value: unknown): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issues = r.error.issues.slice(0, 5).map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message));
  throw new DomainError('invalid_request', issues.join('; '));
}
