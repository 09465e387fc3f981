/** Every row of a projection's tables, in a stable order: for comparing two folds of the same log. */
import type { Db, Projection } from '../projection.js';

export function dumpTables(db: Db, projection: Projection): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  for (const t of projection.tables) {
    const columns = db.prepare(`SELECT * FROM "${t}" LIMIT 0`).columns().length;
    const order = Array.from({ length: columns }, (_, i) => i + 1).join(', ');
    out[t] = db.prepare(`SELECT * FROM "${t}" ORDER BY ${order}`).safeIntegers(true).all();
  }
  return out;
}
