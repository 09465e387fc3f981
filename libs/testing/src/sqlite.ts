/** What a test can see of a SQLite connection's durability. */
import type Database from 'better-sqlite3';

/**
 * From now on, the connection's `synchronous` level as each transaction made through
 * `db.transaction(fn)()` returns: the level its commit used (2 = FULL: the WAL was fsynced).
 */
export function recordCommitLevels(db: Database.Database): { levels: number[]; restore(): void } {
  const levels: number[] = [];
  const original = db.transaction;
  db.transaction = ((fn: (...args: unknown[]) => unknown) => {
    const tx = original.call(db, fn as never) as unknown as (...args: unknown[]) => unknown;
    return (...args: unknown[]) => {
      const result = tx(...args);
      levels.push(Number(db.pragma('synchronous', { simple: true })));
      return result;
    };
  }) as typeof db.transaction;
  return {
    levels,
    restore: () => {
      db.transaction = original;
    },
  };
}
