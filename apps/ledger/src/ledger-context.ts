/**
 * Where the ledger CLI reads from. Embedded default: the running service's
 * SQLite log, opened read-only (WAL lets it read beside the live writer),
 * and the read models in `read-models.db` beside it. With ESDB_URL: the log comes from
 * EventStoreDB and the read models from the instance's local SQLite file.
 * Only `rebuild` writes, and only to read-model tables.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { accountStream } from '#domain';
import { type EventStore, openEventStore, SqliteEventStore } from '#eventstore';
import type { Db } from '#projections';
import { NotFoundError } from './errors.js';

export interface LedgerContext {
  store: EventStore;
  /** The live read models. */
  db: Db;
  /** Human description of the sources, for headers. */
  source: string;
  out(text: string): void;
}

export interface SourceOptions {
  /** Embedded: the event store file. With EventStoreDB: the local read-model file. */
  db?: string;
  /** Embedded: the read-model file (default: `read-models.db` beside the event store file). */
  readModels?: string;
  esdbUrl?: string;
  /** Open the read-model connection for writing (rebuild). */
  writable?: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface OpenedContext extends LedgerContext {
  close(): Promise<void>;
}

export async function openLedgerContext(options: SourceOptions, out: (text: string) => void): Promise<OpenedContext> {
  const env = options.env ?? process.env;
  const dataDir = env.NEXO_DATA_DIR ?? './data';
  const esdbUrl = options.esdbUrl ?? env.ESDB_URL;
  if (esdbUrl !== undefined && esdbUrl !== '') {
    const file = options.db ?? join(dataDir, 'read-models.db');
    const store = await openEventStore({ kind: 'esdb', url: esdbUrl });
    const db = openDb(file, options.writable === true);
    return {
      store,
      db,
      source: `EventStoreDB ${redactUrl(esdbUrl)}, read models in ${file}`,
      out,
      async close() {
        db.close();
        await store.close();
      },
    };
  }
  const file = options.db ?? env.NEXO_DB_FILE ?? join(dataDir, 'nexo.db');
  const named = options.readModels ?? env.NEXO_READ_MODELS_FILE;
  const sibling = join(dirname(file), 'read-models.db');
  // Without a read-model file beside it, the read models are in the log's own file (one-file layouts: tests, harnesses).
  const readModels = named ?? (existsSync(sibling) ? sibling : file);
  let store: SqliteEventStore;
  try {
    store = SqliteEventStore.open(file, { readonly: true });
  } catch (error) {
    throw new Error(`the log at ${file} (--db): ${(error as Error).message}`);
  }
  // Only a one-file layout (tests) keeps read models in the log's file: never create them there.
  if (options.writable === true && readModels === file && store.db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'projection_checkpoints'").get() === undefined) {
    await store.close();
    throw new Error(`no read-model file beside ${file}, and rebuild never writes into the log's own file: name one with --read-models <file>`);
  }
  let db: Db;
  try {
    // Rebuild writes tables through its own connection, so the store's read-only one never writes.
    db = readModels === file && options.writable !== true ? store.db : openDb(readModels, options.writable === true);
  } catch (error) {
    await store.close();
    throw new Error(`cannot open the read models at ${readModels} (--read-models): ${(error as Error).message}`);
  }
  return {
    store,
    db,
    source: readModels === file ? `SQLite ${file}` : `SQLite ${file}, read models in ${readModels}`,
    out,
    async close() {
      if (db !== store.db) db.close();
      await store.close();
    },
  };
}

function openDb(file: string, writable: boolean): Db {
  const db = new Database(file, { readonly: !writable, fileMustExist: !writable });
  db.pragma('busy_timeout = 5000');
  if (writable) {
    db.pragma('journal_mode = WAL');
    // Read models are rebuildable from the log; their commits need not wait for an fsync.
    db.pragma('synchronous = NORMAL');
  }
  return db;
}

/** Keeps credentials in a connection string out of the output. */
function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

/** An account the log never opened: a mistyped id must not read as a genuine empty statement. */
export async function requireAccount(ctx: LedgerContext, accountId: string): Promise<void> {
  if ((await ctx.store.streamRevision(accountStream(accountId))) === undefined) throw new NotFoundError(`no account ${accountId} in ${ctx.source}`);
}
