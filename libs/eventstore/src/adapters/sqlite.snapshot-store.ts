/**
 * Snapshots in a local SQLite file (the process's own state file, or the read models' file beside
 * EventStoreDB): one row per stream, the state as JSON text. Losing the file loses nothing but the
 * time to fold the streams again. Statements run synchronously (better-sqlite3): a snapshot is
 * written at most once per many events, and its cost is what the command runner's duty cycle bounds.
 */
import type Database from 'better-sqlite3';
import type { SnapshotStore, StoredSnapshot } from '../snapshot-store.port.js';

interface Row {
  revision: number;
  event_id: string;
  version: number;
  state: string;
}

export class SqliteSnapshotStore implements SnapshotStore {
  private readonly get: Database.Statement<[string], Row>;
  private readonly put: Database.Statement<[string, number, string, number, string]>;

  constructor(private readonly db: Database.Database) {
    db.exec(`CREATE TABLE IF NOT EXISTS stream_snapshots (
      stream_id TEXT PRIMARY KEY,
      revision INTEGER NOT NULL,
      event_id TEXT NOT NULL,
      version INTEGER NOT NULL,
      state TEXT NOT NULL
    )`);
    this.get = db.prepare('SELECT revision, event_id, version, state FROM stream_snapshots WHERE stream_id = ?');
    this.put = db.prepare('INSERT OR REPLACE INTO stream_snapshots (stream_id, revision, event_id, version, state) VALUES (?, ?, ?, ?, ?)');
  }

  async load(streamId: string): Promise<StoredSnapshot | undefined> {
    const row = this.get.get(streamId);
    if (row === undefined) return undefined;
    // Unparseable text is a snapshot like any other that does not decode: the runner folds the stream.
    let state: unknown;
    try {
      state = JSON.parse(row.state);
    } catch {
      state = undefined;
    }
    return { revision: BigInt(row.revision), eventId: row.event_id, version: row.version, state };
  }

  async save(streamId: string, s: StoredSnapshot): Promise<void> {
    // A snapshot due as the process shuts down (its file closed) is simply not taken.
    if (!this.db.open) return;
    this.put.run(streamId, Number(s.revision), s.eventId, s.version, JSON.stringify(s.state));
  }
}
