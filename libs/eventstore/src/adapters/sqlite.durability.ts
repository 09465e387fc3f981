/**
 * A durable commit on a connection that usually runs `synchronous = NORMAL`.
 *
 * In WAL mode NORMAL survives a process crash, but a power loss may take the
 * last transactions with it (the WAL is fsynced only at checkpoints). That is
 * right for what can be derived again (read models, relay output that rolls
 * back with its checkpoint), not for input acknowledged to someone outside:
 * a carrier's receipt, the stored answer of an idempotent signup. Such a
 * transaction commits with FULL, which fsyncs the WAL and so makes every
 * earlier commit on the file durable too, and the connection goes back to its
 * own level. One fsync per call: callers that commit often gather first.
 */
import type Database from 'better-sqlite3';

/** Runs `fn` in a transaction that is on disk when this returns; the connection keeps its own `synchronous` level otherwise. */
export function commitDurably<T>(db: Database.Database, fn: () => T): T {
  const level = Number(db.pragma('synchronous', { simple: true }));
  // FULL is 2, EXTRA 3: those fsync at every commit already.
  if (level >= 2) return db.transaction(fn)();
  db.pragma('synchronous = FULL');
  try {
    return db.transaction(fn)();
  } finally {
    db.pragma(`synchronous = ${level}`);
  }
}
