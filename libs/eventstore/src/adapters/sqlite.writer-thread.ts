/**
 * The body of the SQLite store's writer thread: its own connection to the
 * file, one group commit per message, the outcome posted back. Page writes,
 * fsync and WAL checkpoints happen here, so the thread that answers HTTP
 * requests never blocks on the disk.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { nameThread } from '../thread-script.js';
import { prepareLogConnection, SqliteLogWriter, WRITER_CACHE_KIB, type WriteRequest } from './sqlite.log-writer.js';

export type WriterMessage = { kind: 'write'; id: number; batch: WriteRequest[] } | { kind: 'close' };
export type WriterReply =
  | { kind: 'written'; id: number; result: ReturnType<SqliteLogWriter['write']> }
  | { kind: 'failed'; id: number; message: string; code?: string }
  | { kind: 'closed' };

const port = parentPort;
if (port) {
  nameThread('nexo-log-writer');
  const db = new Database((workerData as { file: string }).file);
  // Stream-keyed index pages are scattered across hot streams; keeping them cached saves re-reads per commit.
  prepareLogConnection(db, WRITER_CACHE_KIB);
  // Only this thread writes through this connection: its own revisions can be trusted between other connections' commits.
  const writer = new SqliteLogWriter(db, { cacheRevisions: true });
  port.on('message', (message: WriterMessage) => {
    if (message.kind === 'close') {
      db.pragma('wal_checkpoint(TRUNCATE)');
      db.close();
      port.postMessage({ kind: 'closed' } satisfies WriterReply);
      port.close();
      return;
    }
    try {
      port.postMessage({ kind: 'written', id: message.id, result: writer.write(message.batch) } satisfies WriterReply);
    } catch (error) {
      const e = error as { message?: string; code?: string };
      port.postMessage({ kind: 'failed', id: message.id, message: String(e.message ?? error), ...(e.code ? { code: e.code } : {}) } satisfies WriterReply);
    }
  });
}
