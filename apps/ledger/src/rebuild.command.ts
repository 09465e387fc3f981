/**
 * `ledger rebuild <projection>`: rebuilds one read model beside the live one
 * and swaps it in when caught up (see rebuildProjection), while the service
 * keeps running. Needs a writable read-model file.
 */
import { defaultProjections, projectionByName, rebuildProjection } from '#projections';
import type { LedgerContext } from './ledger-context.js';
import { UsageError } from './errors.js';

export async function rebuildCommand(ctx: LedgerContext, name: string | undefined, options: { expiryMs?: number } = {}): Promise<void> {
  const names = defaultProjections().map((p) => p.name);
  if (name === undefined) throw new UsageError(`rebuild needs a projection: ${names.join(', ')}`);
  const projection = projectionByName(name, { expiryMs: options.expiryMs });
  if (projection === undefined) throw new UsageError(`no projection named ${name}; known: ${names.join(', ')}`);
  ctx.out(`rebuilding ${name} (version ${projection.version}) from ${ctx.source}\n`);
  let reported = 0;
  const result = await rebuildProjection({
    store: ctx.store,
    db: ctx.db,
    projection,
    onProgress: ({ position, events }) => {
      if (events - reported >= 100_000) {
        reported = events;
        ctx.out(`  ${events} events, position ${position}\n`);
      }
    },
  });
  ctx.out(`rebuilt ${name}: ${result.events} events in ${result.seconds.toFixed(2)} s; swapped in at position ${result.position}\n`);
}
