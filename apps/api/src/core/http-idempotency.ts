/**
 * Idempotency-Key for POSTs outside the send path (signup, extra keys). The
 * key is claimed before the work and the answer stored after it; a replay
 * with the same body gets the stored answer, another body is a conflict. A
 * replay that arrives while the first is still running waits for its answer.
 * (send-otp keeps its keys on the account stream instead, atomically with the charge.)
 *
 * The stored answers hold secrets (a new API key is shown once, in them), so
 * they are sealed with the service's cipher like every other secret at rest (I9).
 * An answer is stored durably (`commitDurably`) before it is returned: the
 * state file runs `synchronous = NORMAL`, and a power loss must not forget an
 * answer whose effect (the account, the key) the log keeps, or a retry with
 * the same key would create a second one.
 */
import type Database from 'better-sqlite3';
import { DomainError } from '#domain';
import { commitDurably } from '#eventstore';
import type { Cipher } from '#security';

const RETENTION_MS = 48 * 3600 * 1000;

/** Answers stored before they were sealed are JSON text; sealed ones are `<keyId>:<base64url>`. */
const isPlain = (body: string) => body.startsWith('{') || body.startsWith('[');

export class HttpIdempotency {
  private readonly claim: Database.Statement<[string, string, string, number]>;
  private readonly find: Database.Statement<[string, string], { request_hash: string; body: string | null }>;
  private readonly complete: Database.Statement<[string, string, string]>;
  private readonly release: Database.Statement<[string, string]>;
  /** Requests running in this process, by scope and key: a concurrent replay waits for the first's answer. */
  private readonly running = new Map<string, Promise<unknown>>();

  constructor(
    private readonly db: Database.Database,
    private readonly cipher: Cipher,
    private readonly now: () => number = Date.now,
  ) {
    db.exec(`CREATE TABLE IF NOT EXISTS http_idempotency (
      scope TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, body TEXT, created_at INTEGER NOT NULL,
      PRIMARY KEY (scope, key)) WITHOUT ROWID`);
    db.prepare('DELETE FROM http_idempotency WHERE created_at < ?').run(now() - RETENTION_MS);
    this.claim = db.prepare('INSERT OR IGNORE INTO http_idempotency (scope, key, request_hash, created_at) VALUES (?, ?, ?, ?)');
    this.find = db.prepare('SELECT request_hash, body FROM http_idempotency WHERE scope = ? AND key = ?');
    this.complete = db.prepare('UPDATE http_idempotency SET body = ? WHERE scope = ? AND key = ?');
    this.release = db.prepare('DELETE FROM http_idempotency WHERE scope = ? AND key = ? AND body IS NULL');
    // Answers an older version stored in clear (API keys among them) are sealed once, at start.
    const plain = db.prepare<[], { scope: string; key: string; body: string }>("SELECT scope, key, body FROM http_idempotency WHERE body LIKE '{%' OR body LIKE '[%'").all();
    if (plain.length > 0) db.transaction(() => plain.forEach((r) => this.complete.run(cipher.seal(r.body), r.scope, r.key)))();
  }

  async run<T>(scope: string, key: string | undefined, requestHash: string, work: () => Promise<T>): Promise<T> {
    if (key === undefined) return work();
    const id = `${scope}\u0000${key}`;
    if (this.claim.run(scope, key, requestHash, this.now()).changes === 0) {
      const row = this.find.get(scope, key)!;
      if (row.request_hash !== requestHash) throw new DomainError('idempotency_conflict', 'this Idempotency-Key was used with a different request');
      if (row.body !== null) return JSON.parse(isPlain(row.body) ? row.body : this.cipher.open(row.body)) as T;
      const first = this.running.get(id);
      // Claimed by no request of this process (one cut short by a restart): its outcome is unknown.
      if (!first) throw new DomainError('idempotency_conflict', 'a request with this Idempotency-Key is still in progress');
      // The same request again while the first runs: its answer, or, if it failed, a try of our own.
      return first.then(
        () => this.run(scope, key, requestHash, work),
        () => this.run(scope, key, requestHash, work),
      );
    }
    const attempt = (async () => {
      try {
        const result = await work();
        const sealed = this.cipher.seal(JSON.stringify(result));
        commitDurably(this.db, () => this.complete.run(sealed, scope, key));
        return result;
      } catch (error) {
        this.release.run(scope, key);
        throw error;
      }
    })();
    this.running.set(id, attempt);
    try {
      return await attempt;
    } finally {
      this.running.delete(id);
    }
  }
}
