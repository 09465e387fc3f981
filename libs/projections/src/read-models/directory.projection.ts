/**
 * The directory: who an API key, a deposit address or a webhook belongs to,
 * so the API authenticates and the chain listener credits without reading
 * streams, and each account's message templates, for it to read back. Keys are stored by their SHA-256 only; webhook secrets only sealed
 * by the Cipher (I9).
 */
import type { RecordedEvent } from '#eventstore';
import { ACCOUNT_PREFIX, type Db, memoPerDb, type Projection, type ProjectionWriter } from '../projection.js';

const ddl = (s: string): string => `
CREATE TABLE IF NOT EXISTS accounts${s} (
  account_id TEXT PRIMARY KEY,
  name       TEXT NOT NULL,
  opened_at  TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS api_keys${s} (
  key_hash   TEXT    PRIMARY KEY,
  account_id TEXT    NOT NULL,
  key_id     TEXT    NOT NULL,
  prefix     TEXT    NOT NULL,
  revoked    INTEGER NOT NULL,
  issued_at  TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS api_keys${s}_by_id ON api_keys${s} (account_id, key_id);
CREATE TABLE IF NOT EXISTS webhooks${s} (
  account_id    TEXT PRIMARY KEY,
  url           TEXT NOT NULL,
  secret_sealed TEXT NOT NULL,
  configured_at TEXT NOT NULL,
  position      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS message_templates${s} (
  account_id TEXT PRIMARY KEY,
  sms        TEXT,
  voice      TEXT,
  set_at     TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deposit_addresses${s} (
  chain         TEXT    NOT NULL,
  address       TEXT    NOT NULL,
  account_id    TEXT    NOT NULL,
  address_index INTEGER NOT NULL,
  PRIMARY KEY (chain, address)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deposit_addresses${s}_by_account ON deposit_addresses${s} (account_id, chain);`;

interface Data {
  accountId: string;
  name: string;
  keyId: string;
  keyHash: string;
  prefix: string;
  url: string;
  secret: string;
  chain: string;
  address: string;
  index: number;
  sms?: string;
  voice?: string;
  at: string;
}

function writer(db: Db, s: string): ProjectionWriter {
  const st = {
    account: db.prepare<[string, string, string]>(`INSERT OR REPLACE INTO accounts${s} (account_id, name, opened_at) VALUES (?, ?, ?)`),
    key: db.prepare<[string, string, string, string, string]>(
      `INSERT OR REPLACE INTO api_keys${s} (key_hash, account_id, key_id, prefix, revoked, issued_at) VALUES (?, ?, ?, ?, 0, ?)`,
    ),
    revoke: db.prepare<[string, string]>(`UPDATE api_keys${s} SET revoked = 1 WHERE account_id = ? AND key_id = ?`),
    // A removal stays as a row with an empty URL: a reader holding an older copy can tell it is older.
    webhook: db.prepare<[string, string, string, string, number]>(
      `INSERT OR REPLACE INTO webhooks${s} (account_id, url, secret_sealed, configured_at, position) VALUES (?, ?, ?, ?, ?)`,
    ),
    template: db.prepare<[string, string | null, string | null, string]>(
      `INSERT OR REPLACE INTO message_templates${s} (account_id, sms, voice, set_at) VALUES (?, ?, ?, ?)`,
    ),
    address: db.prepare<[string, string, string, number]>(
      `INSERT OR REPLACE INTO deposit_addresses${s} (chain, address, account_id, address_index) VALUES (?, ?, ?, ?)`,
    ),
  };
  return {
    apply(e: RecordedEvent): void {
      const d = e.data as Data;
      const accountId = e.streamId.slice(ACCOUNT_PREFIX.length);
      switch (e.type) {
        case 'AccountOpened':
          st.account.run(accountId, d.name, d.at);
          return;
        case 'ApiKeyIssued':
          st.key.run(d.keyHash, accountId, d.keyId, d.prefix, d.at);
          return;
        case 'ApiKeyRevoked':
          st.revoke.run(accountId, d.keyId);
          return;
        case 'WebhookConfigured':
          st.webhook.run(accountId, d.url, d.secret, d.at, Number(e.position));
          return;
        case 'WebhookRemoved':
          st.webhook.run(accountId, '', '', d.at, Number(e.position));
          return;
        case 'MessageTemplateSet':
          st.template.run(accountId, d.sms ?? null, d.voice ?? null, d.at);
          return;
        case 'DepositAddressAssigned':
          st.address.run(d.chain, d.address.toLowerCase(), accountId, d.index);
          return;
      }
    },
    flush(): void {},
    discard(): void {},
  };
}

export const directoryProjection: Projection = {
  name: 'directory',
  // 3: webhooks keep the log position of their last change, and a removal as an empty row.
  version: 3,
  handles: ['AccountOpened', 'ApiKeyIssued', 'ApiKeyRevoked', 'WebhookConfigured', 'WebhookRemoved', 'MessageTemplateSet', 'DepositAddressAssigned'],
  tables: ['accounts', 'api_keys', 'webhooks', 'message_templates', 'deposit_addresses'],
  ddl,
  writer,
};

export interface ApiKeyView {
  keyId: string;
  accountId: string;
  prefix: string;
  revoked: boolean;
}

export interface DepositAddressView {
  chain: string;
  /** Lowercase hex. */
  address: string;
  accountId: string;
  index: number;
}

const statements = memoPerDb((db) => ({
  byHash: db.prepare<[string], { key_id: string; account_id: string; prefix: string; revoked: number }>(
    'SELECT key_id, account_id, prefix, revoked FROM api_keys WHERE key_hash = ?',
  ),
  keys: db.prepare<[string], { key_id: string; account_id: string; prefix: string; revoked: number }>(
    'SELECT key_id, account_id, prefix, revoked FROM api_keys WHERE account_id = ? ORDER BY issued_at, key_id',
  ),
  webhook: db.prepare<[string], { url: string; secret_sealed: string; position: number }>('SELECT url, secret_sealed, position FROM webhooks WHERE account_id = ?'),
  template: db.prepare<[string], { sms: string | null; voice: string | null }>('SELECT sms, voice FROM message_templates WHERE account_id = ?'),
  byAddress: db.prepare<[string, string], { chain: string; address: string; account_id: string; address_index: number }>(
    'SELECT * FROM deposit_addresses WHERE chain = ? AND address = ?',
  ),
  addresses: db.prepare<[string], { chain: string; address: string; account_id: string; address_index: number }>(
    'SELECT * FROM deposit_addresses WHERE account_id = ? ORDER BY chain',
  ),
  account: db.prepare<[string], { account_id: string; name: string; opened_at: string }>('SELECT * FROM accounts WHERE account_id = ?'),
  onChain: db.prepare<[string], { address: string }>('SELECT address FROM deposit_addresses WHERE chain = ? ORDER BY address'),
}));

const keyView = (r: { key_id: string; account_id: string; prefix: string; revoked: number }): ApiKeyView => ({
  keyId: r.key_id,
  accountId: r.account_id,
  prefix: r.prefix,
  revoked: r.revoked === 1,
});

const addressView = (r: { chain: string; address: string; account_id: string; address_index: number }): DepositAddressView => ({
  chain: r.chain,
  address: r.address,
  accountId: r.account_id,
  index: r.address_index,
});

/** The key with this SHA-256 (hex), revoked or not; the caller refuses revoked keys. */
export function findAccountByKeyHash(db: Db, keyHash: string): ApiKeyView | undefined {
  const r = statements(db).byHash.get(keyHash);
  return r === undefined ? undefined : keyView(r);
}

export function listApiKeys(db: Db, accountId: string): ApiKeyView[] {
  return statements(db).keys.all(accountId).map(keyView);
}

/**
 * The account's webhook as of the log position of its last change; `secretSealed` is still sealed by
 * the Cipher. An empty `url` (and secret): the webhook was removed at that position.
 */
export function getWebhook(db: Db, accountId: string): { url: string; secretSealed: string; position: number } | undefined {
  const r = statements(db).webhook.get(accountId);
  return r === undefined ? undefined : { url: r.url, secretSealed: r.secret_sealed, position: r.position };
}

/** The account's own templates, a channel absent where it uses the default; undefined when it has none. */
export function getMessageTemplate(db: Db, accountId: string): { sms?: string; voice?: string } | undefined {
  const r = statements(db).template.get(accountId);
  if (r === undefined || (r.sms === null && r.voice === null)) return undefined;
  return { ...(r.sms !== null ? { sms: r.sms } : {}), ...(r.voice !== null ? { voice: r.voice } : {}) };
}

export function findAccountByDepositAddress(db: Db, chain: string, address: string): DepositAddressView | undefined {
  const r = statements(db).byAddress.get(chain, address.toLowerCase());
  return r === undefined ? undefined : addressView(r);
}

export function depositAddressesOf(db: Db, accountId: string): DepositAddressView[] {
  return statements(db).addresses.all(accountId).map(addressView);
}

/** Every deposit address assigned on `chain` (a chain family such as `evm`), lowercase hex: what the chain listener watches. */
export function depositAddressesOnChain(db: Db, chain: string): string[] {
  return statements(db).onChain.all(chain).map((r) => r.address);
}

export function getAccount(db: Db, accountId: string): { accountId: string; name: string; openedAt: string } | undefined {
  const r = statements(db).account.get(accountId);
  return r === undefined ? undefined : { accountId: r.account_id, name: r.name, openedAt: r.opened_at };
}
