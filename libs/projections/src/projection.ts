/**
 * A projection: a fold of the event log into SQLite tables it alone owns.
 *
 * Tables are created from DDL that takes a name suffix, so `rebuild` can fill
 * a second copy (`balances__rb…`) beside the live one and swap it in by
 * renaming. Index names carry the suffix too: SQLite cannot rename an index,
 * so after a swap the live table keeps its builder's index names, and a
 * unique suffix per rebuild keeps those from ever colliding.
 */
import type Database from 'better-sqlite3';
import type { RecordedEvent } from '#eventstore';

export type Db = Database.Database;

/** Applies events to one copy of a projection's tables, with statements compiled once. */
export interface ProjectionWriter {
  /** Folds one event in. Runs inside the transaction that will move the checkpoint; may buffer. */
  apply(event: RecordedEvent): void;
  /** Writes whatever `apply` buffered; the last call inside that transaction. */
  flush(): void;
  /** Drops buffered work after that transaction rolled back. */
  discard(): void;
}

export interface Projection {
  /** Stable name: the checkpoint key and the `ledger rebuild <name>` argument. */
  readonly name: string;
  /** Bumped when the tables or the fold change; a stored older version is rebuilt from position 0. */
  readonly version: number;
  /** Event types this projection reads; others are skipped without a call. */
  readonly handles: readonly string[];
  /** Its tables' live names, in the order they are created. */
  readonly tables: readonly string[];
  /** `CREATE TABLE` / `CREATE INDEX` statements with `suffix` appended to every table and index name. */
  ddl(suffix: string): string;
  /** Compiles the statements that write the tables named with `suffix`. */
  writer(db: Db, suffix: string): ProjectionWriter;
}

/** `account-acc_1` → `acc_1`; the account streams' prefix is fixed by the domain. */
export const ACCOUNT_PREFIX = 'account-';
export const OTP_PREFIX = 'otp-';

export function createTables(db: Db, projection: Projection, suffix = ''): void {
  db.exec(projection.ddl(suffix));
}

export function dropTables(db: Db, projection: Projection, suffix = ''): void {
  for (const t of projection.tables) db.exec(`DROP TABLE IF EXISTS "${t}${suffix}"`);
}

/** Statements compiled once per connection: query functions call this with their own key. */
export function memoPerDb<T>(compile: (db: Db) => T): (db: Db) => T {
  const cache = new WeakMap<Db, T>();
  return (db) => {
    let s = cache.get(db);
    if (s === undefined) {
      s = compile(db);
      cache.set(db, s);
    }
    return s;
  };
}
