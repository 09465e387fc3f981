/**
 * Opens a process's local SQLite file (read models, checkpoints, worker
 * tables) the one way every process does. Read models are rebuildable from
 * the log and move with their checkpoint, so `synchronous = NORMAL` suffices;
 * state that is not rebuildable (a chain cursor, a deposit watch) asks for FULL.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

export function openLocalDb(file: string, options: { durable?: boolean } = {}): Database.Database {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${options.durable ? 'FULL' : 'NORMAL'}`);
  db.pragma('busy_timeout = 5000');
  db.pragma('cache_size = -32768');
  return db;
}
