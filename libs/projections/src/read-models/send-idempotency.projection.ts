/**
 * Send keys: each account's `Idempotency-Key`s of `POST /api/v1/send-otp` with the request's hash and
 * the OTP it created, for the 48 h a key is honoured (IDEMPOTENCY_RETENTION_MS). The account's state
 * remembers only the last 20 s of keys (IDEMPOTENCY_MEMORY_MS); the API asks this table for older
 * ones before it sends the command. Fed by `OtpRequested` on the account streams.
 */
import type { RecordedEvent } from '#eventstore';
import { IDEMPOTENCY_RETENTION_MS, type IdempotencyRecord } from '#domain';
import { ACCOUNT_PREFIX, type Db, memoPerDb, type Projection, type ProjectionWriter } from '../projection.js';

const ddl = (s: string): string => `
CREATE TABLE IF NOT EXISTS send_idempotency${s} (
  account_id      TEXT    NOT NULL,
  idempotency_key TEXT    NOT NULL,
  request_hash    TEXT,
  otp_id          TEXT    NOT NULL,
  at_ms           INTEGER NOT NULL,
  PRIMARY KEY (account_id, idempotency_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS send_idempotency${s}_by_time ON send_idempotency${s} (at_ms);`;

/** Keys past the retention are deleted once per this many keys written (by the log's own time, so a replay prunes alike). */
const PRUNE_EVERY = 1_000;

function writer(db: Db, s: string): ProjectionWriter {
  // A key used again after its 48 h is a new send: the newest use holds it.
  const put = db.prepare<[string, string, string | null, string, number]>(
    `INSERT INTO send_idempotency${s} (account_id, idempotency_key, request_hash, otp_id, at_ms) VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (account_id, idempotency_key) DO UPDATE SET request_hash = excluded.request_hash, otp_id = excluded.otp_id, at_ms = excluded.at_ms
     WHERE excluded.at_ms >= at_ms`,
  );
  const prune = db.prepare<[number]>(`DELETE FROM send_idempotency${s} WHERE at_ms < ?`);
  let written = 0;
  let latestMs = 0;
  return {
    apply(e: RecordedEvent): void {
      if (!e.streamId.startsWith(ACCOUNT_PREFIX)) return;
      const d = e.data as { idempotencyKey?: string; requestHash?: string; otpId: string; at: string };
      if (d.idempotencyKey === undefined) return;
      const atMs = Date.parse(d.at);
      put.run(e.streamId.slice(ACCOUNT_PREFIX.length), d.idempotencyKey, d.requestHash ?? null, d.otpId, atMs);
      latestMs = Math.max(latestMs, atMs);
      written += 1;
    },
    flush(): void {
      if (written < PRUNE_EVERY) return;
      written = 0;
      prune.run(latestMs - IDEMPOTENCY_RETENTION_MS);
    },
    discard(): void {},
  };
}

export const sendIdempotencyProjection: Projection = {
  name: 'send-idempotency',
  version: 1,
  handles: ['OtpRequested'],
  tables: ['send_idempotency'],
  ddl,
  writer,
};

const statements = memoPerDb((db) => ({
  byKey: db.prepare<[string, string], { request_hash: string | null; otp_id: string; at_ms: number }>(
    'SELECT request_hash, otp_id, at_ms FROM send_idempotency WHERE account_id = ? AND idempotency_key = ?',
  ),
}));

/** The account's last send under `key`, as the read models have it (kept 48 h; older ones may linger until pruned). */
export function sendIdempotencyRecord(db: Db, accountId: string, key: string): IdempotencyRecord | undefined {
  const r = statements(db).byKey.get(accountId, key);
  return r === undefined ? undefined : { requestHash: r.request_hash ?? undefined, otpId: r.otp_id, atMs: r.at_ms };
}
