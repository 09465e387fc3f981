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
 * Stats are counted per month of the OtpRequested time (UTC) in cells of
 * (month, account, carrier, channel), and again with account `*` for all
 * traffic; a query sums the few cells of a month (at most carriers × channels)
 * into the overall, by-carrier and by-channel figures.
 *
 * Replay speed comes from writing less, not from writing faster: an OTP
 * requested within a transaction's events lives in memory until the end of
 * that transaction and is written once, in its final state (most OTPs settle
 * within seconds, so on replay most lifecycles fit in one transaction), and
 * stats are summed per cell over the transaction. Everything is still written
 * in the transaction that moves the checkpoint.
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
  otp_id        TEXT    NOT NULL,
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
);
CREATE UNIQUE INDEX IF NOT EXISTS otp_status${s}_by_id ON otp_status${s} (otp_id);
CREATE INDEX IF NOT EXISTS otp_status${s}_open ON otp_status${s} (deadline_ms) WHERE status IN ('queued', 'routed');
CREATE INDEX IF NOT EXISTS otp_status${s}_by_account ON otp_status${s} (account_id, created_at, otp_id);
CREATE TABLE IF NOT EXISTS delivery_counts${s} (
  month      TEXT    NOT NULL,
  account_id TEXT    NOT NULL,
  carrier    TEXT    NOT NULL,
  channel    TEXT    NOT NULL,
  sent       INTEGER NOT NULL,
  delivered  INTEGER NOT NULL,
  refunded   INTEGER NOT NULL,
  PRIMARY KEY (month, account_id, carrier, channel)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS delivery_latency${s} (
  month      TEXT    NOT NULL,
  account_id TEXT    NOT NULL,
  carrier    TEXT    NOT NULL,
  channel    TEXT    NOT NULL,
  bucket     INTEGER NOT NULL,
  n          INTEGER NOT NULL,
  PRIMARY KEY (month, account_id, carrier, channel, bucket)
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

type Status = 'queued' | 'routed' | 'delivered' | 'refunded';

/** An OTP requested in the current transaction, not written yet. */
interface Row {
  otpId: string;
  accountId: string;
  phoneMasked: string;
  carrier: string;
  channel: string;
  status: Status;
  price: bigint | null;
  fundedBy: string | null;
  createdAt: string;
  routedAt: string | null;
  settledAt: string | null;
  refundReason: string | null;
}

/** Counts of one (month, account, carrier, channel) cell within a transaction. */
interface Cell {
  month: string;
  accountId: string;
  carrier: string;
  channel: string;
  sent: number;
  delivered: number;
  refunded: number;
  /** Deliveries by latency bucket; created on the first delivery. */
  latency: Map<number, number> | undefined;
}

interface Settled {
  carrier: string;
  channel: string;
  created_at: string;
}

const isOpen = (status: Status) => status === 'queued' || status === 'routed';

function writer(expiryMs: number) {
  return (db: Db, s: string): ProjectionWriter => {
    const st = {
      insert: db.prepare<
        [string, string, string, string, string, string, bigint | null, string | null, string, string | null, string | null, string | null, number]
      >(
        `INSERT OR IGNORE INTO otp_status${s} (otp_id, account_id, phone_masked, carrier, channel, status, price, funded_by,
           created_at, routed_at, settled_at, refund_reason, deadline_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      price: db.prepare<[bigint, string, string]>(`UPDATE otp_status${s} SET price = ?, funded_by = ? WHERE otp_id = ?`),
      routed: db.prepare<[string, string]>(
        `UPDATE otp_status${s} SET routed_at = ?, status = CASE status WHEN 'queued' THEN 'routed' ELSE status END
         WHERE otp_id = ? AND routed_at IS NULL`,
      ),
      settle: db.prepare<[string, string, string | null, string, string], Settled>(
        `UPDATE otp_status${s} SET status = ?, settled_at = ?, refund_reason = ?
         WHERE otp_id = ? AND account_id = ? AND status IN ('queued', 'routed')
         RETURNING carrier, channel, created_at`,
      ),
      counts: db.prepare<[string, string, string, string, number, number, number]>(
        `INSERT INTO delivery_counts${s} (month, account_id, carrier, channel, sent, delivered, refunded) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (month, account_id, carrier, channel) DO UPDATE SET
           sent = sent + excluded.sent, delivered = delivered + excluded.delivered, refunded = refunded + excluded.refunded`,
      ),
      latency: db.prepare<[string, string, string, string, number, number]>(
        `INSERT INTO delivery_latency${s} (month, account_id, carrier, channel, bucket, n) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (month, account_id, carrier, channel, bucket) DO UPDATE SET n = n + excluded.n`,
      ),
    };
    const rows = new Map<string, Row>();
    const cells = new Map<string, Cell>();

    function cell(month: string, accountId: string, carrier: string, channel: string): Cell {
      const key = `${month}\t${accountId}\t${carrier}\t${channel}`;
      let c = cells.get(key);
      if (c === undefined) {
        c = { month, accountId, carrier, channel, sent: 0, delivered: 0, refunded: 0, latency: undefined };
        cells.set(key, c);
      }
      return c;
    }

    function countSettled(c: Cell, status: 'delivered' | 'refunded', createdAt: string, settledAt: string): void {
      if (status === 'refunded') {
        c.refunded += 1;
        return;
      }
      c.delivered += 1;
      const bucket = bucketOf(Date.parse(settledAt) - Date.parse(createdAt));
      c.latency ??= new Map();
      c.latency.set(bucket, (c.latency.get(bucket) ?? 0) + 1);
    }

    function settle(accountId: string, d: Data, status: 'delivered' | 'refunded'): void {
      const reason = status === 'refunded' ? d.reason : null;
      const row = rows.get(d.otpId);
      if (row !== undefined) {
        // I2: the first settlement is final; a later one changes nothing.
        if (row.accountId !== accountId || !isOpen(row.status)) return;
        row.status = status;
        row.settledAt = d.at;
        row.refundReason = reason;
        return;
      }
      const stored = st.settle.get(status, d.at, reason, d.otpId, accountId);
      if (stored !== undefined) countSettled(cell(stored.created_at.slice(0, 7), accountId, stored.carrier, stored.channel), status, stored.created_at, d.at);
    }

    function write(r: Row): void {
      const deadline = Date.parse(r.createdAt) + expiryMs;
      const inserted = st.insert.run(
        r.otpId,
        r.accountId,
        r.phoneMasked,
        r.carrier,
        r.channel,
        r.status,
        r.price,
        r.fundedBy,
        r.createdAt,
        r.routedAt,
        r.settledAt,
        r.refundReason,
        deadline,
      );
      // Counted only when written: a repeated otpId (an I2 breach) keeps its first row and is not sent twice.
      if (inserted.changes !== 1) return;
      const c = cell(r.createdAt.slice(0, 7), r.accountId, r.carrier, r.channel);
      c.sent += 1;
      if (r.status === 'delivered' || r.status === 'refunded') countSettled(c, r.status, r.createdAt, r.settledAt as string);
    }

    function writeCells(): void {
      const all = new Map<string, Cell>();
      for (const c of cells.values()) {
        st.counts.run(c.month, c.accountId, c.carrier, c.channel, c.sent, c.delivered, c.refunded);
        const key = `${c.month}\t${c.carrier}\t${c.channel}`;
        let a = all.get(key);
        if (a === undefined) {
          a = { ...c, accountId: ALL_ACCOUNTS, sent: 0, delivered: 0, refunded: 0, latency: new Map() };
          all.set(key, a);
        }
        a.sent += c.sent;
        a.delivered += c.delivered;
        a.refunded += c.refunded;
        if (c.latency === undefined) continue;
        const total = a.latency as Map<number, number>;
        for (const [bucket, n] of c.latency) {
          st.latency.run(c.month, c.accountId, c.carrier, c.channel, bucket, n);
          total.set(bucket, (total.get(bucket) ?? 0) + n);
        }
      }
      for (const a of all.values()) {
        st.counts.run(a.month, a.accountId, a.carrier, a.channel, a.sent, a.delivered, a.refunded);
        for (const [bucket, n] of a.latency ?? []) st.latency.run(a.month, a.accountId, a.carrier, a.channel, bucket, n);
      }
    }

    return {
      apply(e: RecordedEvent): void {
        const d = e.data as Data;
        switch (e.type) {
          case 'OtpRequested': {
            if (rows.has(d.otpId)) return;
            rows.set(d.otpId, {
              otpId: d.otpId,
              accountId: e.streamId.slice(ACCOUNT_PREFIX.length),
              phoneMasked: d.phoneMasked,
              carrier: d.carrier,
              channel: d.channel,
              status: 'queued',
              price: null,
              fundedBy: null,
              createdAt: d.at,
              routedAt: null,
              settledAt: null,
              refundReason: null,
            });
            return;
          }
          case 'Charged': {
            const row = rows.get(d.otpId);
            if (row === undefined) st.price.run(BigInt(d.amount), d.fundedBy, d.otpId);
            else {
              row.price = BigInt(d.amount);
              row.fundedBy = d.fundedBy;
            }
            return;
          }
          case 'Routed': {
            const otpId = e.streamId.slice(OTP_PREFIX.length);
            const row = rows.get(otpId);
            if (row === undefined) st.routed.run(d.at, otpId);
            else if (row.routedAt === null) {
              row.routedAt = d.at;
              if (row.status === 'queued') row.status = 'routed';
            }
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
        for (const r of rows.values()) write(r);
        rows.clear();
        if (cells.size > 0) writeCells();
        cells.clear();
      },
      discard(): void {
        rows.clear();
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
    // 3: otp_status by account (the dashboard's recent OTPs) and per-cell counts; 2 was the index alone.
    version: 3,
    handles: OTP_STATUS_EVENT_TYPES,
    tables: ['otp_status', 'delivery_counts', 'delivery_latency'],
    ddl,
    writer: writer(options.expiryMs ?? DEFAULT_OTP_EXPIRY_MS),
  };
}
