/**
 * Opens a process's local SQLite file (read models, checkpoints, worker
 * tables) the one way every process does. Read models are rebuildable from
 * the log and move with their checkpoint, so `synchronous = NORMAL` suffices;
 * state that is not rebuildable (a chain cursor, a deposit watch) asks for FULL.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

/** `cacheKib`: the page cache (a projector raises its own connection's, see `ProjectorOptions.tuneConnection`). */
export function openLocalDb(file: string, options: { durable?: boolean; cacheKib?: number } = {}): Database.Database {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${options.durable ? 'FULL' : 'NORMAL'}`);
  db.pragma('busy_timeout = 5000');
  db.pragma(`cache_size = -${options.cacheKib ?? 8 * 1024}`);
  return db;
}

/**
 * Makes the read models in `file` readable through `db` (unqualified table
 * names resolve to them after the connection's own tables). Another
 * connection, the projector's, writes them; this one only reads.
 */
export function attachReadModels(db: Database.Database, file: string, cacheKib = 8 * 1024): void {
  db.prepare('ATTACH DATABASE ? AS read_models').run(file);
  db.pragma(`read_models.cache_size = -${cacheKib}`);
}

/**
 * Adds the columns a table of an older file lacks (`columns`: name → its definition, as in
 * `ALTER TABLE … ADD COLUMN`); the migration of a local table whose rows need no rewrite.
 */
export function addMissingColumns(db: Database.Database, table: string, columns: Record<string, string>): void {
  const present = new Set(db.prepare<[], { name: string }>(`PRAGMA table_info(${table})`).all().map((c) => c.name));
  for (const [name, definition] of Object.entries(columns)) if (!present.has(name)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${name} ${definition}`);
}
