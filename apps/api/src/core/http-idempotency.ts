/**
 * Idempotency-Key for POSTs outside the send path (signup, extra keys). A
 * replay with the same body gets the first answer, another body is a conflict.
 * (send-otp keeps its keys on the account stream instead, atomically with the charge.)
 *
 * Crash safety: the claim holds the request's plan (the ids and the API key the
 * work will use) and is committed durably (`commitDurably`: the state file runs
 * `synchronous = NORMAL`) before any work starts, and the work is idempotent
 * on those ids (the account decider answers a repeat with no events). So a
 * claim without an answer that no request of this process holds (one cut
 * short by a crash, a restart or an error) is finished by the next request
 * with the same key and body: it runs the stored plan again and answers as the
 * first would have. A claim is never released once its work has started: the
 * append may have happened, and a fresh plan would open a second account.
 * The answer is stored durably too before it is returned.
 *
 * Plans and answers hold secrets (a new API key is shown once, in them), so
 * they are sealed with the service's cipher like every other secret at rest (I9).
 *
 * Several API replicas (the distributed mode) each keep this table in their own
 * file, so a retry that reaches another replica, or a replica whose container was
 * replaced, would find no claim and open a second account. There the claim is
 * first taken in the log they share (`shared`): the stream
 * `idempotency-<sha256(scope, key)>` takes one `IdempotencyKeyClaimed` (request
 * hash, sealed plan) with expected revision "no stream". A replica that finds
 * it taken answers with that plan (the work is idempotent on it) or with 409
 * for another body. A claim older than the retention may be taken again; the
 * stream is asked to drop its events after the retention (EventStoreDB's
 * `$maxAge`), since the sealed plan holds the new API key.
 */
import type Database from 'better-sqlite3';
import { z } from 'zod';
import { DomainError } from '#domain';
import { commitDurably, ConcurrencyError, type EventStore, type ExpectedRevision } from '#eventstore';
import { addMissingColumns } from '#projections';
import { type Cipher, sha256Hex } from '#security';

const RETENTION_MS = 48 * 3600 * 1000;

/** Streams of the claims taken in a shared log; only their last event matters. */
const IDEMPOTENCY_STREAM_PREFIX = 'idempotency-';

/** A claim as the shared log keeps it: the request's hash, its sealed plan, when it was taken. */
const ClaimInLog = z.object({ requestHash: z.string(), plan: z.string(), at: z.string().datetime() });
type ClaimInLog = z.infer<typeof ClaimInLog>;

/** Answers stored before they were sealed are JSON text; sealed ones are `<keyId>:<base64url>`. */
const isPlain = (body: string) => body.startsWith('{') || body.startsWith('[');

/** One idempotent request: what it will do, decided before it starts (`plan`: JSON data), and doing it. */
export interface IdempotentJob<P, T> {
  /** Checks that may refuse a new request before it claims its key (a rate limit); not run for a replay or a resumed plan. */
  admit?(): void;
  plan(): P;
  /** Must be idempotent: it may run again with the same plan after a crash or an error. */
  perform(plan: P): Promise<T>;
}

export class HttpIdempotency {
  private readonly claim: Database.Statement<[string, string, string, string, number]>;
  private readonly find: Database.Statement<[string, string, number], { request_hash: string; body: string | null; plan: string | null }>;
  private readonly forget: Database.Statement<[string, string, number]>;
  private readonly complete: Database.Statement<[string, string, string]>;
  /** Requests running in this process, by scope and key: a concurrent replay waits for the first's answer. */
  private readonly running = new Map<string, Promise<unknown>>();
  /** Claims being taken in the shared log by this process, by scope and key: the same request again waits for it. */
  private readonly claiming = new Map<string, Promise<unknown>>();

  constructor(
    private readonly db: Database.Database,
    private readonly cipher: Cipher,
    private readonly now: () => number = Date.now,
    /** The log other API replicas share (distributed mode): claims are taken there first. */
    private readonly shared?: Pick<EventStore, 'append' | 'lastEvent' | 'expireAfter'>,
  ) {
    db.exec(`CREATE TABLE IF NOT EXISTS http_idempotency (
      scope TEXT NOT NULL, key TEXT NOT NULL, request_hash TEXT NOT NULL, body TEXT, created_at INTEGER NOT NULL, plan TEXT,
      PRIMARY KEY (scope, key)) WITHOUT ROWID`);
    addMissingColumns(db, 'http_idempotency', { plan: 'TEXT' });
    db.prepare('DELETE FROM http_idempotency WHERE created_at < ?').run(now() - RETENTION_MS);
    this.claim = db.prepare('INSERT OR IGNORE INTO http_idempotency (scope, key, request_hash, plan, created_at) VALUES (?, ?, ?, ?, ?)');
    // A row past the retention is no claim: the key may be taken again (the log agrees, see claimInLog).
    this.find = db.prepare('SELECT request_hash, body, plan FROM http_idempotency WHERE scope = ? AND key = ? AND created_at >= ?');
    this.forget = db.prepare('DELETE FROM http_idempotency WHERE scope = ? AND key = ? AND created_at < ?');
    // The answer holds everything the plan did: the plan's copy of the key is dropped.
    this.complete = db.prepare('UPDATE http_idempotency SET body = ?, plan = NULL WHERE scope = ? AND key = ?');
    // Answers an older version stored in clear (API keys among them) are sealed once, at start.
    const plain = db.prepare<[], { scope: string; key: string; body: string }>("SELECT scope, key, body FROM http_idempotency WHERE body LIKE '{%' OR body LIKE '[%'").all();
    if (plain.length > 0) db.transaction(() => plain.forEach((r) => this.complete.run(cipher.seal(r.body), r.scope, r.key)))();
  }

  async run<P, T>(scope: string, key: string | undefined, requestHash: string, job: IdempotentJob<P, T>): Promise<T> {
    if (key === undefined) {
      job.admit?.();
      return job.perform(job.plan());
    }
    const row = this.find.get(scope, key, this.now() - RETENTION_MS);
    if (row === undefined) return this.claimAndPerform(scope, key, requestHash, job);
    if (row.request_hash !== requestHash) throw new DomainError('idempotency_conflict', 'this Idempotency-Key was used with a different request');
    if (row.body !== null) return JSON.parse(isPlain(row.body) ? row.body : this.cipher.open(row.body)) as T;
    const first = this.running.get(`${scope}\u0000${key}`);
    // The same request again while the first runs: its answer, or, if it failed, its plan again.
    if (first) {
      const again = () => this.run(scope, key, requestHash, job);
      return first.then(again, again);
    }
    // Claimed by an older version, which kept no plan: what that request did is unknown.
    if (row.plan === null) throw new DomainError('idempotency_conflict', 'a request with this Idempotency-Key was cut short before it answered; use another key');
    return this.perform(scope, key, JSON.parse(this.cipher.open(row.plan)) as P, job);
  }

  private async claimAndPerform<P, T>(scope: string, key: string, requestHash: string, job: IdempotentJob<P, T>): Promise<T> {
    let sealed: string;
    if (this.shared === undefined) {
      job.admit?.();
      sealed = this.cipher.seal(JSON.stringify(job.plan()));
    } else {
      const id = `${scope}\u0000${key}`;
      const taking = this.claiming.get(id);
      // The same key again while this process takes its claim: once taken, it answers as a replay.
      if (taking) {
        const again = () => this.run(scope, key, requestHash, job);
        return taking.then(again, again);
      }
      const claim = this.claimInLog(scope, key, requestHash, job);
      this.claiming.set(id, claim);
      let inLog: ClaimInLog;
      try {
        inLog = await claim;
      } finally {
        this.claiming.delete(id);
      }
      if (inLog.requestHash !== requestHash) throw new DomainError('idempotency_conflict', 'this Idempotency-Key was used with a different request');
      sealed = inLog.plan;
    }
    // On disk before the work starts: a claim lost to a power loss would let a retry plan anew.
    const claimed = commitDurably(this.db, () => {
      this.forget.run(scope, key, this.now() - RETENTION_MS);
      return this.claim.run(scope, key, requestHash, sealed, this.now()).changes === 1;
    });
    // Another connection to the file claimed it first: answer as a replay of that one.
    if (!claimed) return this.run(scope, key, requestHash, job);
    return this.perform(scope, key, JSON.parse(this.cipher.open(sealed)) as P, job);
  }

  /** The claim of (scope, key) in the shared log: this request's, newly taken, or the one another replica took. */
  private async claimInLog<P, T>(scope: string, key: string, requestHash: string, job: IdempotentJob<P, T>): Promise<ClaimInLog> {
    const log = this.shared!;
    const stream = `${IDEMPOTENCY_STREAM_PREFIX}${sha256Hex(`${scope}\u0000${key}`)}`;
    let mine: ClaimInLog | undefined;
    // After events aged out, the stream keeps its revision with nothing to read: the append goes after it.
    let afterAgedOut: ExpectedRevision | undefined;
    for (;;) {
      const last = await log.lastEvent(stream);
      if (last !== undefined) {
        const taken = ClaimInLog.safeParse(last.data);
        if (!taken.success) throw new Error(`the Idempotency-Key claim in ${stream} is unreadable`);
        if (this.now() - Date.parse(taken.data.at) < RETENTION_MS) return taken.data;
      }
      if (mine === undefined) {
        job.admit?.();
        mine = { requestHash, plan: this.cipher.seal(JSON.stringify(job.plan())), at: new Date(this.now()).toISOString() };
        // The sealed plan holds the new API key: it should not outlive the retention anywhere.
        await log.expireAfter?.(stream, RETENTION_MS);
      }
      try {
        await log.append(stream, [{ type: 'IdempotencyKeyClaimed', data: mine }], last !== undefined ? last.revision : (afterAgedOut ?? 'no_stream'));
        return mine;
      } catch (error) {
        // Another replica claimed it meanwhile (its claim decides), or the stream's events aged out.
        if (!(error instanceof ConcurrencyError)) throw error;
        afterAgedOut = last === undefined && error.actual !== undefined ? error.actual : undefined;
      }
    }
  }

  private async perform<P, T>(scope: string, key: string, plan: P, job: IdempotentJob<P, T>): Promise<T> {
    const id = `${scope}\u0000${key}`;
    const attempt = (async () => {
      const result = await job.perform(plan);
      const sealed = this.cipher.seal(JSON.stringify(result));
      commitDurably(this.db, () => this.complete.run(sealed, scope, key));
      return result;
    })();
    this.running.set(id, attempt);
    try {
      return await attempt;
    } finally {
      this.running.delete(id);
    }
  }
}
