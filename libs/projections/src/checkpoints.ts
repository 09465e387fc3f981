/**
 * Projection checkpoints: the last log position each projection has applied,
 * stored in the same SQLite file as its tables and written in the same
 * transaction as the page it covers, so a crash keeps both or neither.
 */
import { type Db, memoPerDb } from './projection.js';

const DDL = `
CREATE TABLE IF NOT EXISTS projection_checkpoints (
  name       TEXT    PRIMARY KEY,
  version    INTEGER NOT NULL,
  position   INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;`;

export interface Checkpoint {
  name: string;
  version: number;
  position: bigint;
}

export function createCheckpointTable(db: Db): void {
  db.exec(DDL);
}

const statements = memoPerDb((db) => ({
  get: db.prepare<[string], { version: number; position: number }>('SELECT version, position FROM projection_checkpoints WHERE name = ?'),
  all: db.prepare<[], { name: string; version: number; position: number }>('SELECT name, version, position FROM projection_checkpoints ORDER BY name'),
  set: db.prepare<[string, number, number, number]>(
    `INSERT INTO projection_checkpoints (name, version, position, updated_at) VALUES (?, ?, ?, ?)
     ON CONFLICT (name) DO UPDATE SET version = excluded.version, position = excluded.position, updated_at = excluded.updated_at`,
  ),
  advance: db.prepare<[number, number, string]>('UPDATE projection_checkpoints SET position = ?, updated_at = ? WHERE name = ?'),
}));

// Compiled apart from the rest: a read-only file of a service that never ran projections has no table to compile against.
const hasTable = memoPerDb((db) =>
  db.prepare<[], { n: number }>("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'projection_checkpoints'"),
);

export function readCheckpoint(db: Db, name: string): Checkpoint | undefined {
  if (hasTable(db).get()?.n === 0) return undefined;
  const r = statements(db).get.get(name);
  return r === undefined ? undefined : { name, version: r.version, position: BigInt(r.position) };
}

export function readCheckpoints(db: Db): Checkpoint[] {
  if (hasTable(db).get()?.n === 0) return [];
  return statements(db)
    .all.all()
    .map((r) => ({ name: r.name, version: r.version, position: BigInt(r.position) }));
}

export function writeCheckpoint(db: Db, name: string, version: number, position: bigint): void {
  statements(db).set.run(name, version, Number(position), Date.now());
}

/** The hot path: moves an existing checkpoint forward. */
export function advanceCheckpoint(db: Db, name: string, position: bigint): void {
  statements(db).advance.run(Number(position), Date.now(), name);
}
