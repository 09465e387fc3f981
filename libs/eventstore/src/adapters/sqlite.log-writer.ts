/**
 * The one place that writes the SQLite log: a group of appends checked in
 * arrival order against their expected revisions and written in one
 * transaction. Used on the caller's thread (`writer: 'inline'`) or on the
 * store's writer thread (`sqlite.writer-thread.ts`), so both modes share the
 * schema, the pragmas and every rule.
 */
import Database from 'better-sqlite3';
import { trimOldest } from '#collections';
import { type ExpectedRevision, revisionMatches } from '../event-store.port.js';

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS events (
  position  INTEGER PRIMARY KEY,
  stream_id TEXT    NOT NULL,
  revision  INTEGER NOT NULL,
  id        TEXT    NOT NULL,
  type      TEXT    NOT NULL,
  data      TEXT    NOT NULL,
  metadata  TEXT,
  created   INTEGER NOT NULL,
  UNIQUE (stream_id, revision)
);`;

export interface SerializedEvent {
  id: string;
  type: string;
  data: string;
  metadata: string | null;
}

/** One append as it crosses to the writer: plain data (structured-clone safe). */
export interface WriteRequest {
  streamId: string;
  events: readonly SerializedEvent[];
  expected: ExpectedRevision;
}

export type WriteOutcome =
  | { ok: true; nextExpectedRevision: bigint; position: bigint }
  | { ok: false; streamId: string; expected: ExpectedRevision; actual: bigint | undefined };

export interface WriteResult {
  outcomes: WriteOutcome[];
  events: number;
  seconds: number;
}

/**
 * Durability: `synchronous = FULL`. In WAL mode FULL fsyncs the WAL at every
 * commit, so an acknowledged append survives a process crash and a power loss;
 * NORMAL would survive only the former, and an acknowledged charge or deposit
 * must survive both.
 */
/** The writer's page cache: stream-keyed index pages are scattered across hot streams, and re-reading them per commit is the commit's main cost. */
export const WRITER_CACHE_KIB = 16 * 1024;

/** `cacheKib`: page cache of this connection (readers follow the log's tail and need little). */
export function prepareLogConnection(db: Database.Database, cacheKib = 8 * 1024): void {
  if (!db.readonly) {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(SCHEMA);
  }
  db.pragma('busy_timeout = 5000');
  db.pragma(`cache_size = -${cacheKib}`);
}

/**
 * Streams whose last written revision a caching writer keeps, the least recently written dropped
 * first: every account that sends, and the OTP streams of the last ~10 s at 2,000 OTPs/s (an OTP's
 * stream is written within seconds of its send). About 2 MB of the writer thread's heap.
 */
const CACHED_STREAMS = 20_000;

export interface SqliteLogWriterOptions {
  /**
   * Keep the last revision this connection wrote to each stream, and trust it while no other
   * connection has committed to the file since (`PRAGMA data_version`, read under the write lock).
   * It saves the revision read of each append (~3 µs, of the writer's ~30 per send here). Only for a
   * connection nothing else writes through, such as the writer thread's own: writes made through
   * the same connection outside `write` would not change `data_version`.
   */
  cacheRevisions?: boolean;
}

export class SqliteLogWriter {
  private readonly revision: Database.Statement<[string], { r: number | null }>;
  private readonly head: Database.Statement<[], { p: number | null }>;
  private readonly insert: Database.Statement<[number, string, number, string, string, string, string | null, number]>;
  private readonly dataVersion: Database.Statement<[], number> | undefined;
  /** Last revision written per stream, in least recently written order; valid at `seenVersion`. */
  private readonly written = new Map<string, number>();
  private seenVersion: number | undefined;

  constructor(
    private readonly db: Database.Database,
    options: SqliteLogWriterOptions = {},
  ) {
    this.revision = db.prepare('SELECT max(revision) AS r FROM events WHERE stream_id = ?');
    this.head = db.prepare('SELECT max(position) AS p FROM events');
    this.insert = db.prepare('INSERT INTO events (position, stream_id, revision, id, type, data, metadata, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    if (options.cacheRevisions) this.dataVersion = db.prepare<[], number>('PRAGMA data_version').pluck();
  }

  /** The stream's last revision (undefined: no stream), from this batch, the cache, or the file. */
  private lastRevision(streamId: string, overlay: Map<string, number>): number | undefined {
    const inBatch = overlay.get(streamId);
    if (inBatch !== undefined) return inBatch;
    const cached = this.written.get(streamId);
    if (cached !== undefined) return cached;
    return this.revision.get(streamId)?.r ?? undefined;
  }

  /** Forgets every cached revision when another connection has committed since this one last looked. */
  private checkCache(): void {
    if (this.dataVersion === undefined) return;
    const version = this.dataVersion.get();
    if (version !== this.seenVersion) this.written.clear();
    this.seenVersion = version;
  }

  private remember(overlay: Map<string, number>): void {
    if (this.dataVersion === undefined) return;
    for (const [streamId, revision] of overlay) {
      this.written.delete(streamId);
      this.written.set(streamId, revision);
    }
    trimOldest(this.written, CACHED_STREAMS);
  }

  /** Writes the whole group in one transaction or nothing (the error is thrown). */
  write(batch: readonly WriteRequest[]): WriteResult {
    const started = performance.now();
    const outcomes: WriteOutcome[] = [];
    let written = 0;
    const now = Date.now();
    // Revisions decided earlier in this batch, so later appends see them.
    const overlay = new Map<string, number>();
    try {
      this.db
        .transaction(() => {
          // Under the write lock: nobody else commits until this transaction ends.
          this.checkCache();
          let position = this.head.get()?.p ?? 0;
          for (const a of batch) {
            const known = this.lastRevision(a.streamId, overlay);
            const actual = known === undefined ? undefined : BigInt(known);
            if (!revisionMatches(a.expected, actual)) {
              outcomes.push({ ok: false, streamId: a.streamId, expected: a.expected, actual });
              continue;
            }
            if (a.events.length === 0) {
              outcomes.push({ ok: true, nextExpectedRevision: actual ?? -1n, position: BigInt(position) });
              continue;
            }
            let revision = known ?? -1;
            for (const e of a.events) {
              revision += 1;
              position += 1;
              this.insert.run(position, a.streamId, revision, e.id, e.type, e.data, e.metadata, now);
            }
            written += a.events.length;
            overlay.set(a.streamId, revision);
            outcomes.push({ ok: true, nextExpectedRevision: BigInt(revision), position: BigInt(position) });
          }
        })
        .immediate();
    } catch (error) {
      // Rolled back: what this batch decided never reached the file.
      this.written.clear();
      throw error;
    }
    this.remember(overlay);
    return { outcomes, events: written, seconds: (performance.now() - started) / 1000 };
  }
}
