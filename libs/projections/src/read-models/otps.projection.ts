/**
 * OTPs: the status of each OTP, the open ones with their expiry deadline, and
 * the monthly delivery stats, as one fold over both stream types.
 *
 * Status needs `account-<id>` (OtpRequested, Charged, Delivered, Refunded) and
 * `otp-<otpId>` (Routed); the stats need each OTP's month, carrier, channel
 * and request time when it settles. Keeping both in one projection lets the
 * settling UPDATE … RETURNING hand the stats exactly those facts, and only
 * for the first settlement (I2), so the stats agree with the statuses.
 *
 * Status moves queued → routed → delivered | refunded and never back; the
 * history is derived from the time of each step, so it is not stored twice.
 * Only the masked phone is kept (I9). `channel` is the one charged for at
 * request time; the stats count an OTP under it from request to settlement.
 *
 * Stats are counted per month of the OtpRequested time (UTC) in six scopes:
 * all traffic and the account, each overall, by carrier and by channel.
 * They are summed in memory over a page and written once per page, which is
 * what keeps replay near the raw read rate.
 */
import type { RecordedEvent } from '#eventstore';
import { ACCOUNT_PREFIX, type Db, OTP_PREFIX, type Projection, type ProjectionWriter } from '../projection.js';
import { bucketOf } from './latency-histogram.js';

/** The API's default expiry window (NEXO_EXPIRY_SECONDS = 600). */
export const DEFAULT_OTP_EXPIRY_MS = 600_000;
/** Account id of the all-traffic scope; never a valid account id (ids are `[A-Za-z0-9_-]+`). */
export const ALL_ACCOUNTS = '*';

export const OTP_STATUS_EVENT_TYPES = ['OtpRequested', 'Charged', 'Routed', 'Delivered', 'Refunded'] as const;

const ddl = (s: string): string => `
CREATE TABLE IF NOT EXISTS otp_status${s} (
  otp_id        TEXT    PRIMARY KEY,
  account_id    TEXT    NOT NULL,
  phone_masked  TEXT    NOT NULL,
  carrier       TEXT    NOT NULL,
  channel       TEXT    NOT NULL,
  status        TEXT    NOT NULL,
  price         INTEGER,
  funded_by     TEXT,
  created_at    TEXT    NOT NULL,
  routed_at     TEXT,
  settled_at    TEXT,
  refund_reason TEXT,
  deadline_ms   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS otp_status${s}_open ON otp_status${s} (deadline_ms) WHERE status IN ('queued', 'routed');
CREATE INDEX IF NOT EXISTS otp_status${s}_by_account ON otp_status${s} (account_id, created_at);
CREATE TABLE IF NOT EXISTS delivery_stats${s} (
  month      TEXT    NOT NULL,
  account_id TEXT    NOT NULL,
  scope      TEXT    NOT NULL,
  sent       INTEGER NOT NULL,
  delivered  INTEGER NOT NULL,
  refunded   INTEGER NOT NULL,
  PRIMARY KEY (month, account_id, scope)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS delivery_latency${s} (
  month      TEXT    NOT NULL,
  account_id TEXT    NOT NULL,
  scope      TEXT    NOT NULL,
  bucket     INTEGER NOT NULL,
  n          INTEGER NOT NULL,
  PRIMARY KEY (month, account_id, scope, bucket)
) WITHOUT ROWID;`;

interface Data {
  otpId: string;
  phoneMasked: string;
  carrier: string;
  channel: string;
  amount: string;
  fundedBy: string;
  reason: string;
  at: string;
}

interface Requested {
  accountId: string;
  data: Data;
}

/** Counts of one (month, account, carrier, channel) cell within a page. */
interface Cell {
  month: string;
  accountId: string;
  carrier: string;
  channel: string;
  sent: number;
  delivered: number;
  refunded: number;
  latency: Map<number, number>;
}

interface Settled {
  account_id: string;
  carrier: string;
  channel: string;
  created_at: string;
}

function writer(expiryMs: number) {
  return (db: Db, s: string): ProjectionWriter => {
    const st = {
      insert: db.prepare<[string, string, string, string, string, bigint | null, string | null, string, number]>(
        `INSERT OR IGNORE INTO otp_status${s}
           (otp_id, account_id, phone_masked, carrier, channel, status, price, funded_by, created_at, deadline_ms)
         VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?)`,
      ),
      price: db.prepare<[bigint, string, string]>(`UPDATE otp_status${s} SET price = ?, funded_by = ? WHERE otp_id = ?`),
      routed: db.prepare<[string, string]>(
        `UPDATE otp_status${s} SET routed_at = ?, status = CASE status WHEN 'queued' THEN 'routed' ELSE status END
         WHERE otp_id = ? AND routed_at IS NULL`,
      ),
      settle: db.prepare<[string, string, string | null, string, string], Settled>(
        `UPDATE otp_status${s} SET status = ?, settled_at = ?, refund_reason = ?
         WHERE otp_id = ? AND account_id = ? AND status IN ('queued', 'routed')
         RETURNING account_id, carrier, channel, created_at`,
      ),
      counts: db.prepare<[string, string, string, number, number, number]>(
        `INSERT INTO delivery_stats${s} (month, account_id, scope, sent, delivered, refunded) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (month, account_id, scope) DO UPDATE SET
           sent = sent + excluded.sent, delivered = delivered + excluded.delivered, refunded = refunded + excluded.refunded`,
      ),
      latency: db.prepare<[string, string, string, number, number]>(
        `INSERT INTO delivery_latency${s} (month, account_id, scope, bucket, n) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (month, account_id, scope, bucket) DO UPDATE SET n = n + excluded.n`,
      ),
    };
    // OtpRequested is held until its Charged (appended with it, so next in the log) to write the row once.
    const requested = new Map<string, Requested>();
    const cells = new Map<string, Cell>();

    function cell(month: string, accountId: string, carrier: string, channel: string): Cell {
      const key = `${month}\t${accountId}\t${carrier}\t${channel}`;
      let c = cells.get(key);
      if (c === undefined) {
        c = { month, accountId, carrier, channel, sent: 0, delivered: 0, refunded: 0, latency: new Map() };
        cells.set(key, c);
      }
      return c;
    }

    /** Writes the row; `sent` counts rows written, so a repeated otpId (an I2 breach) is not sent twice. */
    function insert(r: Requested, price: bigint | null, fundedBy: string | null): void {
      const d = r.data;
      const deadline = Date.parse(d.at) + expiryMs;
      if (st.insert.run(d.otpId, r.accountId, d.phoneMasked, d.carrier, d.channel, price, fundedBy, d.at, deadline).changes === 1) {
        cell(d.at.slice(0, 7), r.accountId, d.carrier, d.channel).sent += 1;
      }
    }

    function materialize(otpId: string): void {
      const r = requested.get(otpId);
      if (r === undefined) return;
      requested.delete(otpId);
      insert(r, null, null);
    }

    function settle(accountId: string, d: Data, status: 'delivered' | 'refunded'): void {
      if (requested.size > 0) materialize(d.otpId);
      const row = st.settle.get(status, d.at, status === 'refunded' ? d.reason : null, d.otpId, accountId);
      if (row === undefined) return;
      const c = cell(row.created_at.slice(0, 7), row.account_id, row.carrier, row.channel);
      if (status === 'refunded') {
        c.refunded += 1;
        return;
      }
      c.delivered += 1;
      const bucket = bucketOf(Date.parse(d.at) - Date.parse(row.created_at));
      c.latency.set(bucket, (c.latency.get(bucket) ?? 0) + 1);
    }

    return {
      apply(e: RecordedEvent): void {
        const d = e.data as Data;
        switch (e.type) {
          case 'OtpRequested': {
            const accountId = e.streamId.slice(ACCOUNT_PREFIX.length);
            requested.set(d.otpId, { accountId, data: d });
            return;
          }
          case 'Charged': {
            const r = requested.get(d.otpId);
            if (r === undefined) st.price.run(BigInt(d.amount), d.fundedBy, d.otpId);
            else {
              requested.delete(d.otpId);
              insert(r, BigInt(d.amount), d.fundedBy);
            }
            return;
          }
          case 'Routed': {
            const otpId = e.streamId.slice(OTP_PREFIX.length);
            if (requested.size > 0) materialize(otpId);
            st.routed.run(d.at, otpId);
            return;
          }
          case 'Delivered':
            settle(e.streamId.slice(ACCOUNT_PREFIX.length), d, 'delivered');
            return;
          case 'Refunded':
            settle(e.streamId.slice(ACCOUNT_PREFIX.length), d, 'refunded');
            return;
        }
      },
      flush(): void {
        for (const r of requested.values()) insert(r, null, null);
        requested.clear();
        if (cells.size === 0) return;
        const scoped = new Map<string, { month: string; accountId: string; scope: string; sent: number; delivered: number; refunded: number }>();
        const latency = new Map<string, number>();
        for (const c of cells.values()) {
          for (const accountId of [c.accountId, ALL_ACCOUNTS]) {
            for (const scope of ['all', `carrier:${c.carrier}`, `channel:${c.channel}`]) {
              const key = `${c.month}\t${accountId}\t${scope}`;
              const t = scoped.get(key);
              if (t === undefined) scoped.set(key, { month: c.month, accountId, scope, sent: c.sent, delivered: c.delivered, refunded: c.refunded });
              else {
                t.sent += c.sent;
                t.delivered += c.delivered;
                t.refunded += c.refunded;
              }
              for (const [bucket, n] of c.latency) {
                const lk = `${key}\t${bucket}`;
                latency.set(lk, (latency.get(lk) ?? 0) + n);
              }
            }
          }
        }
        cells.clear();
        for (const t of scoped.values()) st.counts.run(t.month, t.accountId, t.scope, t.sent, t.delivered, t.refunded);
        for (const [lk, n] of latency) {
          const [month, accountId, scope, bucket] = lk.split('\t');
          st.latency.run(month, accountId, scope, Number(bucket), n);
        }
      },
      discard(): void {
        requested.clear();
        cells.clear();
      },
    };
  };
}

export interface OtpsProjectionOptions {
  /** How long after the request an open OTP is due for expiry; changing it needs `ledger rebuild otps`. */
  expiryMs?: number;
}

export function otpsProjection(options: OtpsProjectionOptions = {}): Projection {
  return {
    name: 'otps',
    // 2: otp_status gained its by-account index (the dashboard's recent OTPs).
    version: 2,
    handles: OTP_STATUS_EVENT_TYPES,
    tables: ['otp_status', 'delivery_stats', 'delivery_latency'],
    ddl,
    writer: writer(options.expiryMs ?? DEFAULT_OTP_EXPIRY_MS),
  };
}
