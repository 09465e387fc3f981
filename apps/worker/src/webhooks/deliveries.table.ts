/**
 * The sender's durable state in its SQLite file: one row per webhook event (its body, status,
 * attempts, next try), the per-send URL overrides and each account's configured webhook.
 *
 * Rows are clustered by OTP id, which starts with its creation time (`newId`), so new rows land at
 * the table's right edge and a commit dirties a few pages, where a random key (the event's UUID)
 * dirtied about one page per row. The OTP id is also what retention cuts on: final rows (delivered,
 * failed) whose OTP is older than `retainMs` are deleted a batch at a time, so the file stops
 * growing with traffic. Events older than that are not turned into rows again (a relay that
 * replays the log from further back cannot resend them).
 */
import { addMissingColumns } from '#projections';
import type { WorkerDeps } from '../worker.deps.js';

type Db = WorkerDeps['db'];

export interface DeliveryRow {
  otp_id: string;
  event_id: string;
  url: string;
  account_id: string;
  body: string;
  attempts: number;
  created_ms: number;
  next_ms: number;
}

/** A due scan's place: the last row it returned, in the due index's order. */
export type DueCursor = Pick<DeliveryRow, 'next_ms' | 'otp_id' | 'event_id'>;

/** Rows handed out per scan for due deliveries. */
export const SCAN_ROWS = 1_000;
/** Final rows deleted per retention pass (one short transaction each). */
const PRUNE_ROWS = 1_000;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS webhook_targets (otp_id TEXT PRIMARY KEY, url TEXT NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS webhook_accounts (account_id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS webhook_deliveries (
    otp_id TEXT NOT NULL, event_id TEXT NOT NULL, account_id TEXT NOT NULL, type TEXT NOT NULL, url TEXT NOT NULL,
    body TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL, next_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL,
    last_code INTEGER, last_error TEXT, delivered_ms INTEGER,
    PRIMARY KEY (otp_id, event_id)) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (next_ms) WHERE status = 'pending';`;

const COLUMNS = 'otp_id, event_id, account_id, type, url, body, status, attempts, next_ms, created_ms, last_code, last_error, delivered_ms';

/**
 * Files written before rows were clustered by OTP had `event_id` as the key (plus an index on
 * `otp_id`): their rows move to the new table once, in one transaction, at start.
 */
function migrate(db: Db): boolean {
  const table = db.prepare<[], { sql: string }>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'webhook_deliveries'").get();
  if (!table || !/event_id TEXT PRIMARY KEY/i.test(table.sql)) return false;
  db.transaction(() => {
    db.exec(`
      ALTER TABLE webhook_deliveries RENAME TO webhook_deliveries_by_event;
      DROP INDEX IF EXISTS webhook_deliveries_due;
      DROP INDEX IF EXISTS webhook_deliveries_otp;`);
    db.exec(SCHEMA);
    db.exec(`INSERT OR IGNORE INTO webhook_deliveries (${COLUMNS}) SELECT ${COLUMNS} FROM webhook_deliveries_by_event; DROP TABLE webhook_deliveries_by_event;`);
  })();
  return true;
}

/** The OTP ids created before `ms`: they sort below this bound (`newId`: prefix, then 12 hex digits of time). */
export function otpIdsBefore(ms: number): string {
  return `otp_${Math.max(0, Math.floor(ms)).toString(16).padStart(12, '0')}`;
}

export function openDeliveries(db: Db) {
  const migrated = migrate(db);
  db.exec(SCHEMA);
  addMissingColumns(db, 'webhook_accounts', {
    // Files from before DELETE /api/v1/webhook: no account's webhook was ever removed.
    removed_ms: 'INTEGER NOT NULL DEFAULT 0',
    // The log position of the change a row holds (0: written before positions were kept, older than any).
    position: 'INTEGER NOT NULL DEFAULT 0',
  });
  const pruneDeliveries = db.prepare<[string], unknown>(
    `DELETE FROM webhook_deliveries WHERE (otp_id, event_id) IN
       (SELECT otp_id, event_id FROM webhook_deliveries WHERE otp_id < ? AND status != 'pending' LIMIT ${PRUNE_ROWS})`,
  );
  const pruneTargets = db.prepare<[string], unknown>(`DELETE FROM webhook_targets WHERE otp_id IN (SELECT otp_id FROM webhook_targets WHERE otp_id < ? LIMIT ${PRUNE_ROWS})`);
  // A literal LIMIT: a bound one makes SQLite prepare the statement again at every scan.
  const columns = 'otp_id, event_id, url, account_id, body, attempts, created_ms, next_ms';
  const due = db.prepare<[number], DeliveryRow>(
    `SELECT ${columns} FROM webhook_deliveries WHERE status = 'pending' AND next_ms <= ? ORDER BY next_ms, otp_id, event_id LIMIT ${SCAN_ROWS}`,
  );
  const dueFrom = db.prepare<[number, number, string, string], DeliveryRow>(
    `SELECT ${columns} FROM webhook_deliveries WHERE status = 'pending' AND next_ms <= ? AND (next_ms, otp_id, event_id) > (?, ?, ?)
     ORDER BY next_ms, otp_id, event_id LIMIT ${SCAN_ROWS}`,
  );
  return {
    /** True when this start moved an older file's rows to the current table. */
    migrated,
    putTarget: db.prepare<[string, string], unknown>('INSERT OR REPLACE INTO webhook_targets (otp_id, url) VALUES (?, ?)'),
    target: db.prepare<[string], { url: string }>('SELECT url FROM webhook_targets WHERE otp_id = ?'),
    /**
     * The account's webhook as the log configured it at `position` (the secret sealed), unless the row
     * holds a later change (a replayed message); the time of its last removal stays.
     */
    putAccount: db.prepare<[string, string, string, number], unknown>(
      `INSERT INTO webhook_accounts (account_id, url, secret, position) VALUES (?, ?, ?, ?)
       ON CONFLICT (account_id) DO UPDATE SET url = excluded.url, secret = excluded.secret, position = excluded.position WHERE excluded.position >= webhook_accounts.position`,
    ),
    /** The account's webhook removed at `position`, at `removed_ms` (this file's clock): an empty URL, and rows made before it are given up. */
    removeAccount: db.prepare<[string, number, number], unknown>(
      `INSERT INTO webhook_accounts (account_id, url, secret, position, removed_ms) VALUES (?, '', '', ?, ?)
       ON CONFLICT (account_id) DO UPDATE SET url = '', secret = '', position = excluded.position, removed_ms = excluded.removed_ms
       WHERE excluded.position >= webhook_accounts.position`,
    ),
    account: db.prepare<[string], { url: string; secret: string; removed_ms: number; position: number }>(
      'SELECT url, secret, removed_ms, position FROM webhook_accounts WHERE account_id = ?',
    ),
    insert: db.prepare<[string, string, string, string, string, string, number, number], unknown>(
      `INSERT OR IGNORE INTO webhook_deliveries (otp_id, event_id, account_id, type, url, body, status, attempts, next_ms, created_ms)
       VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)`,
    ),
    /** Whether the event has a row (a post-first sender checks before posting an event relayed again). */
    exists: db.prepare<[string, string], number>('SELECT 1 FROM webhook_deliveries WHERE otp_id = ? AND event_id = ?').pluck(),
    /** A row written after its first attempt (post-first): to retry, or given up; with what happened. */
    insertTried: db.prepare<[string, string, string, string, string, string, string, number, number, number, number | null, string | null], unknown>(
      `INSERT OR IGNORE INTO webhook_deliveries (otp_id, event_id, account_id, type, url, body, status, attempts, next_ms, created_ms, last_code, last_error)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    /** Up to `SCAN_ROWS` pending rows due by `nowMs`, in (next_ms, otp_id, event_id) order, after `cursor` if given. */
    dueAfter(nowMs: number, cursor?: DueCursor): DeliveryRow[] {
      return cursor ? dueFrom.all(nowMs, cursor.next_ms, cursor.otp_id, cursor.event_id) : due.all(nowMs);
    },
    done: db.prepare<[number, number, string, string], unknown>(
      `UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, last_code = ?, delivered_ms = ? WHERE otp_id = ? AND event_id = ?`,
    ),
    retry: db.prepare<[string, number | null, string | null, number, string, string], unknown>(
      `UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, last_code = ?, last_error = ?, next_ms = ? WHERE otp_id = ? AND event_id = ?`,
    ),
    /** Given up without an attempt (the account's webhook was removed). */
    abandon: db.prepare<[string, string, string], unknown>(`UPDATE webhook_deliveries SET status = 'failed', last_error = ? WHERE otp_id = ? AND event_id = ?`),
    backlog: db.prepare<[], { n: number }>(`SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending'`),
    /** Deletes up to a batch of final rows (and per-send URLs) of OTPs created before `beforeMs`; the number of delivery rows deleted. */
    prune(beforeMs: number): number {
      const bound = otpIdsBefore(beforeMs);
      pruneTargets.run(bound);
      return pruneDeliveries.run(bound).changes;
    },
  };
}
