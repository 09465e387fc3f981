import { Projector } from '../projector.js';
import {
  depositAddressesOf,
  depositAddressesOnChain,
  directoryProjection,
  findAccountByDepositAddress,
  findAccountByKeyHash,
  getAccount,
  getMessageTemplate,
  getWebhook,
  listApiKeys,
} from './directory.projection.js';
import { acct, hex64, opened, tempStore, type TempStore } from '../testing/events.js';

const AT = '2026-03-01T00:00:00.000Z';
const ADDRESS = `0x${'AbCd'.repeat(10)}`;

describe('directory projection: API keys by hash, webhooks, deposit addresses', () => {
  let t: TempStore;
  beforeAll(async () => {
    t = tempStore();
    await t.put(
      acct('A'),
      opened('A'),
      { type: 'ApiKeyIssued', data: { keyId: 'k1', keyHash: hex64('aa'), prefix: 'nx_live_ab', at: AT } },
      { type: 'ApiKeyIssued', data: { keyId: 'k2', keyHash: hex64('bb'), prefix: 'nx_live_cd', at: AT } },
      { type: 'ApiKeyRevoked', data: { keyId: 'k1', at: AT } },
      { type: 'WebhookConfigured', data: { url: 'https://a.example/hook', secret: 'k1:c2VjcmV0', at: AT } },
      { type: 'WebhookConfigured', data: { url: 'https://a.example/hook2', secret: 'k1:c2VjcmV0Mg', at: AT } },
      { type: 'DepositAddressAssigned', data: { chain: 'bsc', address: ADDRESS, index: 7, at: AT } },
      { type: 'MessageTemplateSet', data: { sms: 'A {code}', voice: 'A noi {code}', at: AT } },
      { type: 'MessageTemplateSet', data: { voice: 'A noi {code}', at: AT } },
    );
    // Key ids are per account: B's k1 is another key, untouched by A's revocation.
    await t.put(acct('B'), opened('B'), { type: 'ApiKeyIssued', data: { keyId: 'k1', keyHash: hex64('cc'), prefix: 'nx_live_ef', at: AT } });
    await t.put(
      acct('C'),
      opened('C'),
      { type: 'WebhookConfigured', data: { url: 'https://c.example/hook', secret: 'k1:c2VjcmV0Mw', at: AT } },
      { type: 'WebhookRemoved', data: { at: AT } },
    );
    await new Projector({ store: t.store, db: t.store.db, projections: [directoryProjection] }).catchUp();
  });
  afterAll(() => t.dispose());

  it('authenticates by key hash and sees revocations', () => {
    expect(findAccountByKeyHash(t.store.db, hex64('aa'))).toEqual({ keyId: 'k1', accountId: 'A', prefix: 'nx_live_ab', revoked: true });
    expect(findAccountByKeyHash(t.store.db, hex64('bb'))).toEqual({ keyId: 'k2', accountId: 'A', prefix: 'nx_live_cd', revoked: false });
    expect(findAccountByKeyHash(t.store.db, hex64('cc'))).toMatchObject({ accountId: 'B', revoked: false });
    expect(findAccountByKeyHash(t.store.db, hex64('dd'))).toBeUndefined();
    expect(listApiKeys(t.store.db, 'A').map((k) => k.keyId)).toEqual(['k1', 'k2']);
  });

  it('keeps the latest webhook, with its secret still sealed', () => {
    expect(getWebhook(t.store.db, 'A')).toEqual({ url: 'https://a.example/hook2', secretSealed: 'k1:c2VjcmV0Mg', position: 6 });
    expect(getWebhook(t.store.db, 'B')).toBeUndefined();
    // A removal stays, at its log position, as an empty URL and secret: an older copy elsewhere can tell.
    expect(getWebhook(t.store.db, 'C')).toEqual({ url: '', secretSealed: '', position: 14 });
  });

  it("keeps the account's latest templates; a channel reset is absent, and an account with none has none", () => {
    expect(getMessageTemplate(t.store.db, 'A')).toEqual({ voice: 'A noi {code}' });
    expect(getMessageTemplate(t.store.db, 'B')).toBeUndefined();
  });

  it('maps a deposit address to its account whatever the letter case', () => {
    const want = { chain: 'bsc', address: ADDRESS.toLowerCase(), accountId: 'A', index: 7 };
    expect(findAccountByDepositAddress(t.store.db, 'bsc', ADDRESS.toUpperCase().replace('0X', '0x'))).toEqual(want);
    expect(findAccountByDepositAddress(t.store.db, 'eth', ADDRESS)).toBeUndefined();
    expect(depositAddressesOf(t.store.db, 'A')).toEqual([want]);
    expect(depositAddressesOnChain(t.store.db, 'bsc')).toEqual([ADDRESS.toLowerCase()]);
    expect(depositAddressesOnChain(t.store.db, 'evm')).toEqual([]);
    expect(getAccount(t.store.db, 'B')).toEqual({ accountId: 'B', name: 'Exchange B', openedAt: AT });
  });
});
