/**
 * The listener's cursor per chain, in the local SQLite file. It is saved only
 * after the step's messages are on the bus, so a crash between the two reads
 * the step again (consumers dedupe) and never skips it.
 *
 * `rescanFrom` is the first block read lately with an address list that may
 * have lacked addresses assigned since: after a restart the listener reads
 * again from there with the full list, so a deposit to an address that was
 * assigned while that step ran is not missed.
 */
import type Database from 'better-sqlite3';
import { type ScanCursor, ScanCursorSchema } from '#chain';

export interface StoredCursor {
  cursor: ScanCursor;
  rescanFrom: number;
}

export class ScanCursorStore {
  readonly #get: Database.Statement<[number], { cursor: string; rescan_from: number }>;
  readonly #put: Database.Statement<[number, string, string, number, string]>;

  constructor(db: Database.Database) {
    db.exec(`CREATE TABLE IF NOT EXISTS chain_cursors (
      chain_id    INTEGER PRIMARY KEY,
      slug        TEXT    NOT NULL,
      cursor      TEXT    NOT NULL,
      rescan_from INTEGER NOT NULL,
      updated_at  TEXT    NOT NULL
    )`);
    this.#get = db.prepare('SELECT cursor, rescan_from FROM chain_cursors WHERE chain_id = ?');
    this.#put = db.prepare(
      `INSERT INTO chain_cursors (chain_id, slug, cursor, rescan_from, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (chain_id) DO UPDATE SET slug = excluded.slug, cursor = excluded.cursor, rescan_from = excluded.rescan_from, updated_at = excluded.updated_at`,
    );
  }

  load(chainId: number): StoredCursor | undefined {
    const row = this.#get.get(chainId);
    if (!row) return undefined;
    // Validated: a cursor edited by hand or corrupted must stop the listener, not make it skip blocks.
    return { cursor: ScanCursorSchema.parse(JSON.parse(row.cursor)), rescanFrom: row.rescan_from };
  }

  save(chainId: number, slug: string, stored: StoredCursor, at: Date): void {
    this.#put.run(chainId, slug, JSON.stringify(stored.cursor), stored.rescanFrom, at.toISOString());
  }
}

/** The cursor moved back to `block`: blocks from there are read again, checked against the hashes kept below it. */
export function rewindCursor(cursor: ScanCursor, block: number): ScanCursor {
  if (block >= cursor.nextBlock) return cursor;
  return { nextBlock: block, recent: cursor.recent.filter((b) => b.number < block) };
}
