/**
 * OTP routes: which OTP (and account) a provider's message id belongs to, so
 * a receipt that carries only the upstream's id can be recorded on the right
 * stream. Fed by `Routed`, whose writer puts the account id in the metadata.
 */
import type { RecordedEvent } from '#eventstore';
import { type Db, memoPerDb, OTP_PREFIX, type Projection, type ProjectionWriter } from '../projection.js';

const ddl = (s: string): string => `
CREATE TABLE IF NOT EXISTS otp_routes${s} (
  provider            TEXT NOT NULL,
  provider_message_id TEXT NOT NULL,
  otp_id              TEXT NOT NULL,
  account_id          TEXT NOT NULL,
  PRIMARY KEY (provider, provider_message_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS otp_routes${s}_by_otp ON otp_routes${s} (otp_id);`;

function writer(db: Db, s: string): ProjectionWriter {
  // The newest route holds a message id: an upstream whose counter started over hands out ids it gave before.
  const put = db.prepare<[string, string, string, string]>(
    `INSERT OR REPLACE INTO otp_routes${s} (provider, provider_message_id, otp_id, account_id) VALUES (?, ?, ?, ?)`,
  );
  return {
    apply(e: RecordedEvent): void {
      const accountId = e.metadata?.accountId;
      if (typeof accountId !== 'string' || !e.streamId.startsWith(OTP_PREFIX)) return;
      const d = e.data as { provider: string; providerMessageId: string };
      put.run(d.provider, d.providerMessageId, e.streamId.slice(OTP_PREFIX.length), accountId);
    },
    flush(): void {},
    discard(): void {},
  };
}

export const otpRoutesProjection: Projection = {
  name: 'otp-routes',
  // 2: the newest route holds a reused message id (it was the first): rebuilt once on upgrade.
  version: 2,
  handles: ['Routed'],
  tables: ['otp_routes'],
  ddl,
  writer,
};

const statements = memoPerDb((db) => ({
  byMessage: db.prepare<[string, string], { otp_id: string; account_id: string }>(
    'SELECT otp_id, account_id FROM otp_routes WHERE provider = ? AND provider_message_id = ?',
  ),
  accountOf: db.prepare<[string], { account_id: string }>('SELECT account_id FROM otp_status WHERE otp_id = ?'),
  facts: db.prepare<[string], { carrier: string; channel: string; createdAt: string }>(
    'SELECT carrier, channel, created_at AS createdAt FROM otp_status WHERE otp_id = ?',
  ),
}));

export function findOtpByProviderMessage(db: Db, provider: string, providerMessageId: string): { otpId: string; accountId: string } | undefined {
  const r = statements(db).byMessage.get(provider, providerMessageId);
  return r === undefined ? undefined : { otpId: r.otp_id, accountId: r.account_id };
}

/** The account an OTP belongs to (from the otps projection). */
export function accountOfOtp(db: Db, otpId: string): string | undefined {
  return statements(db).accountOf.get(otpId)?.account_id;
}

export function otpCarrierFacts(db: Db, otpId: string): { carrier: string; channel: string; createdAt: string } | undefined {
  return statements(db).facts.get(otpId);
}

