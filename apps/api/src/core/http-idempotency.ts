/**
 * Idempotency-Key for POSTs outside the send path (signup, extra keys). The
 * key is claimed before the work and the answer stored after it; a replay
 * with the same body gets the stored answer, another body is a conflict.
 * (send-otp keeps its keys on the account stream instead, atomically with the charge.)
 */
import type Database from 'better-sqlite3';
import { DomainError } from '#domain';

const RETENTION_MS = 48 * 3600 * 1000;

export class HttpIdempotency {
  private readonly claim: Database.Statement<[string, string, string, number]>;
  private readonly find: Database.Statement<[string, string], { request_hash: string; body: string | null }>;
  private readonly complete: Database.Statement<[string, string, string]>;
  private readonly release: Database.Statement<[string, string]>;

  constructor(db: Database.Database, now: () => number = Date.now) {
    db.exec(`CREATE TABLE IF NOT EXISTS http_idempotency (
      scope TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, body TEXT, created_at INTEGER NOT NULL,
      PRIMARY KEY (scope, key)) WITHOUT ROWID`);
    db.prepare('DELETE FROM http_idempotency WHERE created_at < ?').run(now() - RETENTION_MS);
    this.claim = db.prepare('INSERT OR IGNORE INTO http_idempotency (scope, key, request_hash, created_at) VALUES (?, ?, ?, ?)');
    this.find = db.prepare('SELECT request_hash, body FROM http_idempotency WHERE scope = ? AND key = ?');
    this.complete = db.prepare('UPDATE http_idempotency SET body = ? WHERE scope = ? AND key = ?');
    this.release = db.prepare('DELETE FROM http_idempotency WHERE scope = ? AND key = ? AND body IS NULL');
    this.now = now;
  }

  private readonly now: () => number;

  async run<T>(scope: string, key: string | undefined, requestHash: string, work: () => Promise<T>): Promise<T> {
    if (key === undefined) return work();
    if (this.claim.run(scope, key, requestHash, this.now()).changes === 0) {
      const row = this.find.get(scope, key)!;
      if (row.request_hash !== requestHash) throw new DomainError('idempotency_conflict', 'this Idempotency-Key was used with a different request');
      if (row.body === null) throw new DomainError('idempotency_conflict', 'a request with this Idempotency-Key is still in progress');
      return JSON.parse(row.body) as T;
    }
    try {
      const result = await work();
      this.complete.run(JSON.stringify(result), scope, key);
      return result;
    } catch (error) {
      this.release.run(scope, key);
      throw error;
    }
  }
}
