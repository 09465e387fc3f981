/**
 * Durable commits on a connection that usually runs `synchronous = NORMAL`.
 *
 * In WAL mode NORMAL survives a process crash, but a power loss may take the
 * last transactions with it (the WAL is fsynced only at checkpoints). That is
 * right for what can be derived again (read models, relay output that rolls
 * back with its checkpoint), not for input acknowledged to someone outside:
 * a carrier's receipt, the stored answer of an idempotent signup. Two ways to
 * make such a commit durable:
 *
 * - `commitDurably`: the transaction commits with FULL, which fsyncs the WAL
 *   on the calling thread. For rare commits (a signup).
 * - `WalSync`: the transaction commits as usual, then the WAL file is
 *   fdatasync'ed on libuv's thread pool, so a busy event loop never waits on
 *   the disk (an fsync takes 0.27 ms here, milliseconds on network storage).
 *   Calls that overlap share fsyncs: one runs at a time, and whoever asks
 *   meanwhile is covered by the next. For frequent commits (carrier receipts).
 *
 * Either way every earlier commit on the file becomes durable too: the WAL is
 * one sequential file.
 */
import { open, type FileHandle } from 'node:fs/promises';
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

/** Group fsync: `sync()` resolves once everything written before the call is on disk. */
export class WalSync {
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;

  /** `datasync`: flushes the file (the WAL's `fdatasync`); `release`: lets go of what it holds. */
  constructor(
    private readonly datasync: () => Promise<void>,
    private readonly release: () => Promise<void> = async () => undefined,
  ) {}

  /**
   * For a WAL-mode connection to a file: a syncer of its WAL. Undefined for an in-memory database
   * or another journal mode (use `commitDurably` there).
   */
  static forConnection(db: Database.Database): WalSync | undefined {
    if (db.memory || String(db.pragma('journal_mode', { simple: true })).toLowerCase() !== 'wal') return undefined;
    // SQLite keeps the WAL file while a connection is open, and takes no POSIX lock on it (its
    // locks are on the database and -shm files), so a descriptor of our own is safe to hold and close.
    let handle: Promise<FileHandle> | undefined;
    return new WalSync(
      async () => {
        handle ??= open(`${db.name}-wal`, 'r');
        await (await handle).datasync();
      },
      async () => {
        const h = handle;
        handle = undefined;
        await (await h?.catch(() => undefined))?.close();
      },
    );
  }

  /** After the last sync: closes the WAL descriptor (before the connection closes). */
  async close(): Promise<void> {
    await Promise.allSettled([this.running, this.queued]);
    await this.release();
  }

  sync(): Promise<void> {
    // A sync already running may have started before the caller's writes: the caller waits for the next.
    if (this.running === undefined) return (this.running = this.start());
    this.queued ??= this.running.then(
      () => this.next(),
      () => this.next(),
    );
    return this.queued;
  }

  private next(): Promise<void> {
    this.queued = undefined;
    return (this.running = this.start());
  }

  private start(): Promise<void> {
    const run = this.datasync();
    const done = () => {
      if (this.running === run) this.running = undefined;
    };
    run.then(done, done);
    return run;
  }
}
