import { type AccountCommand, accountDecider, IDEMPOTENCY_MEMORY_MS, IDEMPOTENCY_RETENTION_MS, idempotencyMatch, matchIdempotencyRecord, MAX_ACTIVE_KEYS, MAX_KEYS_ISSUED, TEST_ATTEMPTS_PER_CREDIT } from './account.decider.js';
import type { AccountEvent } from './account.events.js';
import { AccountEvent as AccountEventSchema } from './account.events.js';
import {
  at,
  creditDeposit,
  credited,
  delivered,
  hex64,
  HOUR,
  markDelivered,
  openAccount,
  opened,
  otpData,
  refunded,
  refundOtp,
  reverseDeposit,
  reversed,
  sendOtp,
  sent,
  T0,
  txHash,
} from './testing/account.fixtures.js';
import { accountSnapshot } from './account.snapshot.js';
import { givenWhenThen } from './testing/given-when-then.js';

const given = givenWhenThen(accountDecider);

const PRICE = 22_000n;
const HASH_A = hex64('a');
const HASH_B = hex64('b');

describe('fixtures', () => {
  it('build events that pass the stored schemas', () => {
    const all: AccountEvent[] = [
      opened(3),
      credited({ tx: 1 }, 1_000_000n),
      reversed({ tx: 1 }),
      ...sent('otp_1', PRICE, 'balance', { idempotencyKey: 'k', requestHash: HASH_A }),
      { type: 'MessageTemplateSet', data: { sms: 'ACME {code}', at: T0 } },
      ...sent('otp_2', PRICE, 'balance', { template: { sms: 'ACME {code}' } }),
      delivered('otp_1'),
      refunded('otp_1', PRICE, 'test_credit', 'expired'),
    ];
    for (const e of all) expect(AccountEventSchema.parse(e)).toEqual(e);
  });
});

describe('open account', () => {
  it('opens with its test credits', () => {
    const state = given([]).when(openAccount(5)).then([opened(5)]);
    expect(state).toMatchObject({ opened: true, accountId: 'acc_1', balance: 0n, testCreditsGranted: 5, testCreditsLeft: 5 });
  });

  it('refuses to open twice', () => {
    given([opened()]).when(openAccount()).then('account_exists');
  });

  describe('I7: a signup opens with its first key in one append, and its retry (same account, same key) is done', () => {
    const firstKey = { keyId: 'key_1', keyHash: hex64('1'), prefix: 'nx_live_ab' };
    const signup = openAccount(5, firstKey);
    const keyIssued: AccountEvent = { type: 'ApiKeyIssued', data: { ...firstKey, at: T0 } };

    it('opens the account and issues the key together', () => {
      const state = given([]).when(signup).then([opened(5), keyIssued]);
      expect(state.keys.get('key_1')).toEqual({ keyHash: hex64('1'), revoked: false });
    });

    it('answers the same opening again with no new events', () => {
      given([opened(5), keyIssued]).when(signup).then([]);
    });

    it('still refuses an opening with another key, or without one', () => {
      given([opened(5), keyIssued]).when(openAccount(5, { ...firstKey, keyId: 'key_2' })).then('account_exists');
      given([opened(5), keyIssued]).when(openAccount(5, { ...firstKey, keyHash: hex64('2') })).then('account_exists');
      given([opened(5), keyIssued]).when(openAccount(5)).then('account_exists');
    });
  });

  it.each<[string, AccountCommand]>([
    ['IssueApiKey', { type: 'IssueApiKey', keyId: 'key_1', keyHash: hex64('1'), prefix: 'nx_live_ab', at: T0 }],
    ['RevokeApiKey', { type: 'RevokeApiKey', keyId: 'key_1', at: T0 }],
    ['ConfigureWebhook', { type: 'ConfigureWebhook', url: 'https://ex.example/hook', secret: 'k1:c2VjcmV0', at: T0 }],
    ['RemoveWebhook', { type: 'RemoveWebhook', at: T0 }],
    ['SetMessageTemplate', { type: 'SetMessageTemplate', sms: 'ACME {code}', at: T0 }],
    ['AssignDepositAddress', { type: 'AssignDepositAddress', chain: 'bsc', address: `0x${'a'.repeat(40)}`, index: 0, at: T0 }],
    ['CreditDeposit', creditDeposit({ tx: 1 }, 1_000_000n)],
    ['ReverseDeposit', reverseDeposit({ tx: 1 })],
    ['SendOtp', sendOtp('otp_1', PRICE)],
    ['MarkDelivered', markDelivered('otp_1')],
    ['RefundOtp', refundOtp('otp_1')],
  ])('refuses %s before the account is opened', (_name, command) => {
    given([]).when(command).then('account_not_open');
  });
});

describe('API keys', () => {
  const issue: AccountCommand = { type: 'IssueApiKey', keyId: 'key_1', keyHash: hex64('1'), prefix: 'nx_live_ab', at: T0 };
  const issuedEvent: AccountEvent = { type: 'ApiKeyIssued', data: { keyId: 'key_1', keyHash: hex64('1'), prefix: 'nx_live_ab', at: T0 } };
  const revokedEvent: AccountEvent = { type: 'ApiKeyRevoked', data: { keyId: 'key_1', at: at(HOUR) } };
  const revoke: AccountCommand = { type: 'RevokeApiKey', keyId: 'key_1', at: at(HOUR) };

  it('issues a key by its hash only', () => {
    const state = given([opened()]).when(issue).then([issuedEvent]);
    expect(state.keys.get('key_1')).toEqual({ keyHash: hex64('1'), revoked: false });
  });

  it('I7: issuing the same key again (same id, same hash) is a retry and changes nothing, even once revoked', () => {
    given([opened(), issuedEvent]).when(issue).then([]);
    given([opened(), issuedEvent, revokedEvent]).when(issue).then([]);
  });

  it('refuses another key with an id already issued, even once revoked', () => {
    const clash: AccountCommand = { type: 'IssueApiKey', keyId: 'key_1', keyHash: hex64('2'), prefix: 'nx_live_ab', at: T0 };
    given([opened(), issuedEvent]).when(clash).then('already_exists');
    given([opened(), issuedEvent, revokedEvent]).when(clash).then('already_exists');
  });

  const other: AccountEvent = { type: 'ApiKeyIssued', data: { keyId: 'key_2', keyHash: hex64('2'), prefix: 'nx_live_cd', at: T0 } };

  it('revokes a key once; revoking again changes nothing', () => {
    const state = given([opened(), issuedEvent, other]).when(revoke).then([revokedEvent]);
    expect(state.keys.get('key_1')).toEqual({ keyHash: hex64('1'), revoked: true });
    given([opened(), issuedEvent, other, revokedEvent]).when(revoke).then([]);
  });

  it("revokes the account's last active key too, at once, as API.md says (the account is then locked: create another key first)", () => {
    given([opened(), issuedEvent]).when(revoke).then([revokedEvent]);
  });

  it('refuses a key past the cap of active ones (each has its own rate), and takes one again after a revocation', () => {
    const keys = Array.from({ length: MAX_ACTIVE_KEYS }, (_, i): AccountEvent => ({
      type: 'ApiKeyIssued',
      data: { keyId: `key_${i + 1}`, keyHash: hex64(String(i + 1)), prefix: 'nx_live_ab', at: T0 },
    }));
    const next: AccountCommand = { type: 'IssueApiKey', keyId: 'key_new', keyHash: hex64('9'), prefix: 'nx_live_ab', at: T0 };
    const e = given([opened(), ...keys]).when(next).then('invalid_request');
    expect(e.message).toMatch(/at most 20 active keys/);
    given([opened(), ...keys, revokedEvent]).when(next).then([{ type: 'ApiKeyIssued', data: { keyId: 'key_new', keyHash: hex64('9'), prefix: 'nx_live_ab', at: T0 } }]);
    // A retry of a key already issued is still answered, at the cap.
    given([opened(), ...keys]).when(issue).then([]);
  });

  it('refuses a key past the cap of keys ever issued, revoked ones included (issue/revoke cycles grew the state and the list without bound)', () => {
    const cycles = Array.from({ length: MAX_KEYS_ISSUED }, (_, i): AccountEvent[] => [
      { type: 'ApiKeyIssued', data: { keyId: `key_${i + 1}`, keyHash: hex64(String(i + 1)), prefix: 'nx_live_ab', at: T0 } },
      ...(i === 0 ? [] : [{ type: 'ApiKeyRevoked', data: { keyId: `key_${i}`, at: T0 } } satisfies AccountEvent]),
    ]).flat();
    const next: AccountCommand = { type: 'IssueApiKey', keyId: 'key_new', keyHash: hex64('f'), prefix: 'nx_live_ab', at: T0 };
    given([opened(), ...cycles.slice(0, -2)]).when(next).then([{ type: 'ApiKeyIssued', data: { keyId: 'key_new', keyHash: hex64('f'), prefix: 'nx_live_ab', at: T0 } }]);
    const e = given([opened(), ...cycles]).when(next).then('invalid_request');
    expect(e.message).toMatch(/at most 1000 keys in all/);
    // A retry of a key already issued is still answered, and revoking still works, at the cap.
    given([opened(), ...cycles]).when(issue).then([]);
    given([opened(), ...cycles]).when({ type: 'RevokeApiKey', keyId: `key_${MAX_KEYS_ISSUED}`, at: T0 }).then([{ type: 'ApiKeyRevoked', data: { keyId: `key_${MAX_KEYS_ISSUED}`, at: T0 } }]);
  });

  it('refuses to revoke an unknown key', () => {
    given([opened()]).when(revoke).then('not_found');
  });
});

describe('webhook', () => {
  const configure = (url: string, secret: string, when = T0): AccountCommand => ({ type: 'ConfigureWebhook', url, secret, at: when });
  const configured = (url: string, secret: string, when = T0): AccountEvent => ({ type: 'WebhookConfigured', data: { url, secret, at: when } });

  it('configures a webhook with its sealed secret', () => {
    const state = given([opened()])
      .when(configure('https://ex.example/hook', 'k1:c2VjcmV0'))
      .then([configured('https://ex.example/hook', 'k1:c2VjcmV0')]);
    expect(state.webhook).toEqual({ url: 'https://ex.example/hook', secret: 'k1:c2VjcmV0' });
  });

  it('replaces the webhook on reconfiguration (secret rotation)', () => {
    const state = given([opened(), configured('https://ex.example/hook', 'k1:b2xk')])
      .when(configure('https://ex.example/v2', 'k2:bmV3', at(HOUR)))
      .then([configured('https://ex.example/v2', 'k2:bmV3', at(HOUR))]);
    expect(state.webhook).toEqual({ url: 'https://ex.example/v2', secret: 'k2:bmV3' });
  });

  it('refuses a per-send webhook URL before any webhook secret exists (nothing could sign it), and charges nothing', () => {
    const e = given([opened(5)]).when(sendOtp('otp_1', PRICE, { webhookUrl: 'https://ex.example/per-send' })).then('invalid_request');
    expect(e.message).toMatch(/^webhook_url: .*PUT \/api\/v1\/webhook/);
  });

  it('takes a per-send webhook URL once the account has a secret', () => {
    given([opened(5), configured('https://ex.example/hook', 'k1:b2xk')])
      .when(sendOtp('otp_1', PRICE, { webhookUrl: 'https://ex.example/per-send' }))
      .then(sent('otp_1', PRICE, 'test_credit', { webhookUrl: 'https://ex.example/per-send' }));
  });

  it('removes the webhook once (a second removal, or one with none, appends nothing); per-send URLs are refused again, until a new one', () => {
    const removed: AccountEvent = { type: 'WebhookRemoved', data: { at: at(HOUR) } };
    const state = given([opened(5), configured('https://ex.example/hook', 'k1:b2xk')])
      .when({ type: 'RemoveWebhook', at: at(HOUR) })
      .then([removed]);
    expect(state.webhook).toBeUndefined();
    given([opened(5), configured('https://ex.example/hook', 'k1:b2xk'), removed]).when({ type: 'RemoveWebhook', at: at(2 * HOUR) }).then([]);
    given([opened(5)]).when({ type: 'RemoveWebhook', at: T0 }).then([]);
    given([opened(5), configured('https://ex.example/hook', 'k1:b2xk'), removed]).when(sendOtp('otp_1', PRICE, { webhookUrl: 'https://ex.example/per-send' })).then('invalid_request');
    given([opened(5), configured('https://ex.example/hook', 'k1:b2xk'), removed, configured('https://ex.example/v2', 'k2:bmV3', at(2 * HOUR))])
      .when(sendOtp('otp_1', PRICE, { webhookUrl: 'https://ex.example/per-send' }))
      .then(sent('otp_1', PRICE, 'test_credit', { webhookUrl: 'https://ex.example/per-send' }));
  });
});

describe('message templates: an account sets its own text, refused when carriers would filter it or it does not fit', () => {
  const SMS = 'ACME: ma xac thuc cua ban la {code}';
  const VOICE = 'ACME xin chào. Mã của bạn là {code}.';
  const set = (fields: { sms?: string | null; voice?: string | null }): AccountCommand => ({ type: 'SetMessageTemplate', ...fields, at: T0 });
  const templateSet = (data: { sms?: string; voice?: string }): AccountEvent => ({ type: 'MessageTemplateSet', data: { ...data, at: T0 } });

  it('sets one channel, then the other, keeping the first', () => {
    given([opened()]).when(set({ sms: SMS })).then([templateSet({ sms: SMS })]);
    const state = given([opened(), templateSet({ sms: SMS })]).when(set({ voice: VOICE })).then([templateSet({ sms: SMS, voice: VOICE })]);
    expect(state.template).toEqual({ sms: SMS, voice: VOICE });
  });

  it('null puts a channel back to its default; with none left the account has no template', () => {
    const state = given([opened(), templateSet({ sms: SMS, voice: VOICE })]).when(set({ sms: null })).then([templateSet({ voice: VOICE })]);
    expect(state.template).toEqual({ voice: VOICE });
    expect(given([opened(), templateSet({ voice: VOICE })]).when(set({ voice: null })).then([templateSet({})]).template).toBeUndefined();
  });

  it('records nothing when nothing changes', () => {
    given([opened(), templateSet({ sms: SMS })]).when(set({ sms: SMS })).then([]);
    given([opened()]).when(set({ sms: null, voice: null })).then([]);
    given([opened()]).when(set({})).then([]);
  });

  it.each([
    ['sms', 'Ma xac thuc cua ban', 'sms: template must contain {code}'],
    ['sms', 'Crypto wallet code {code}', 'sms: carriers filter messages containing "crypto"; carriers filter messages containing "wallet"'],
    ['sms', 'Ma {code} tren sàn', 'sms: carriers filter messages containing "sàn"'],
    ['sms', '{code} {name}', 'sms: unknown placeholder {name}; only {code} is supported'],
    ['sms', 'Ma\u0007 {code}', 'sms: control characters are not allowed (a new line is \\n alone, without \\r)'],
    ['sms', `{code} ${'x'.repeat(150)}`, 'sms: does not fit one SMS with a 10-digit code (161/160)'],
    ['sms', 'Mã xác thực của bạn tại ACME là {code}. Vui lòng không chia sẻ mã này.', 'sms: does not fit one SMS with a 10-digit code (74/70)'],
    ['voice', '{code}, {code}', 'voice: {code} must appear once: the call reads the code a second time by itself'],
    ['voice', 'Mã exchange {code}', 'voice: carriers filter messages containing "exchange"'],
    ['sms', 'Locked. Verify at https://evil.example/login {code}', 'sms: templates cannot contain links or web addresses ("https://"; a full stop not followed by a space reads as one)'],
    ['voice', 'Mã v\u200Bí {code}', 'voice: carriers filter messages containing "ví"; contains invisible or format characters (U+200B); only visible text and plain spaces are allowed'],
    ['voice', `{code} ${'a'.repeat(194)}`, 'voice: longer than 200 characters (201)'],
  ] as const)('refuses a %s template %j, saying why', (channel, template, message) => {
    const e = given([opened(), templateSet({ sms: SMS })]).when(set({ [channel]: template })).then('invalid_request');
    expect(e.message).toBe(message);
  });

  it('refuses the whole command when one channel is refused: the other is not set either', () => {
    given([opened()]).when(set({ sms: SMS, voice: 'no code' })).then('invalid_request');
  });

  it("an OTP carries the account's templates as they are when it is decided, and none once reset", () => {
    given([opened(5), templateSet({ sms: SMS })]).when(sendOtp('otp_1', PRICE)).then(sent('otp_1', PRICE, 'test_credit', { template: { sms: SMS } }));
    given([opened(5), templateSet({ sms: SMS }), templateSet({})]).when(sendOtp('otp_1', PRICE)).then(sent('otp_1', PRICE, 'test_credit'));
  });
});

describe('deposit address', () => {
  const assign = (chain: string, hexDigit: string, index: number): AccountCommand => ({
    type: 'AssignDepositAddress',
    chain,
    address: `0x${hexDigit.repeat(40)}`,
    index,
    at: T0,
  });
  const assigned = (chain: string, hexDigit: string, index: number): AccountEvent => ({
    type: 'DepositAddressAssigned',
    data: { chain, address: `0x${hexDigit.repeat(40)}`, index, at: T0 },
  });

  it('assigns one address per chain', () => {
    const state = given([opened()]).when(assign('bsc', 'a', 7)).then([assigned('bsc', 'a', 7)]);
    expect(state.depositAddresses.get('bsc')).toEqual({ address: `0x${'a'.repeat(40)}`, index: 7 });
  });

  it('keeps the first address of a chain: a second assignment is a no-op', () => {
    given([opened(), assigned('bsc', 'a', 7)]).when(assign('bsc', 'a', 7)).then([]);
    given([opened(), assigned('bsc', 'a', 7)]).when(assign('bsc', 'b', 8)).then([]);
  });

  it('assigns another chain independently', () => {
    given([opened(), assigned('bsc', 'a', 7)]).when(assign('ethereum', 'a', 7)).then([assigned('ethereum', 'a', 7)]);
  });
});

describe('I1 balance = Σ credited − Σ reversed − Σ charged(balance) + Σ refunded(balance)', () => {
  it('sums every kind of money event, and only balance-funded charges', () => {
    const history = [
      opened(1),
      credited({ tx: 1 }, 1_000_000n),
      credited({ tx: 2 }, 500_000n),
      ...sent('otp_t', PRICE, 'test_credit'),
      ...sent('otp_1', PRICE, 'balance'),
      ...sent('otp_2', 30_000n, 'balance'),
      refunded('otp_2', 30_000n, 'balance'),
      ...sent('otp_3', 40_000n, 'balance'),
      delivered('otp_1'),
      reversed({ tx: 2 }),
    ];
    const state = given(history).when(creditDeposit({ tx: 3 }, 7n)).then([credited({ tx: 3 }, 7n)]);
    expect(state.balance).toBe(1_000_000n + 500_000n + 7n - 500_000n - PRICE - 30_000n + 30_000n - 40_000n);
    // Charged but not yet settled, from the balance only.
    expect(state.pending).toBe(40_000n);
  });

  it('settling by delivery leaves the balance as charged', () => {
    const state = given([opened(), credited({ tx: 1 }, 100_000n), ...sent('otp_1', PRICE, 'balance')])
      .when(markDelivered('otp_1'))
      .then([delivered('otp_1')]);
    expect(state.balance).toBe(100_000n - PRICE);
    expect(state.pending).toBe(0n);
  });
});

describe('I2 each otpId is charged once, then delivered or refunded once', () => {
  const funded = [opened(), credited({ tx: 1 }, 1_000_000n)];

  it('charges in the same decision that records the request', () => {
    const state = given(funded).when(sendOtp('otp_1', PRICE, { at: at(5) })).then(sent('otp_1', PRICE, 'balance', { at: at(5) }));
    // With what the OTP was sent as, for whoever counts its settlement.
    expect(state.open.get('otp_1')).toEqual({ amount: PRICE, fundedBy: 'balance', carrier: 'vinaphone', channel: 'sms', requestedAt: at(5) });
  });

  it('refuses to charge an otpId that is still open', () => {
    given([...funded, ...sent('otp_1', PRICE, 'balance')]).when(sendOtp('otp_1', PRICE)).then('already_exists');
  });

  it('refuses to charge an otpId again after it was delivered', () => {
    given([...funded, ...sent('otp_1', PRICE, 'balance'), delivered('otp_1')]).when(sendOtp('otp_1', PRICE)).then('already_exists');
  });

  it('refuses to charge an otpId again after it was refunded', () => {
    given([...funded, ...sent('otp_1', PRICE, 'balance'), refunded('otp_1', PRICE, 'balance')])
      .when(sendOtp('otp_1', PRICE))
      .then('already_exists');
  });

  it.each(['receipt', 'voice_answer', 'feedback'] as const)('settles an open charge as delivered by %s', (via) => {
    const state = given([...funded, ...sent('otp_1', PRICE, 'balance')]).when(markDelivered('otp_1', via)).then([delivered('otp_1', via)]);
    expect(state.open.has('otp_1')).toBe(false);
  });

  it('a second delivery is a no-op', () => {
    given([...funded, ...sent('otp_1', PRICE, 'balance'), delivered('otp_1')]).when(markDelivered('otp_1', 'feedback')).then([]);
  });

  it('never refunds what was delivered', () => {
    given([...funded, ...sent('otp_1', PRICE, 'balance'), delivered('otp_1')]).when(refundOtp('otp_1', 'expired')).then([]);
  });

  it('never delivers what was refunded', () => {
    given([...funded, ...sent('otp_1', PRICE, 'balance'), refunded('otp_1', PRICE, 'balance')]).when(markDelivered('otp_1')).then([]);
  });

  it('a second refund is a no-op', () => {
    given([...funded, ...sent('otp_1', PRICE, 'balance'), refunded('otp_1', PRICE, 'balance')]).when(refundOtp('otp_1')).then([]);
  });

  it('ignores settlement of an otpId it never charged', () => {
    given(funded).when(markDelivered('otp_x')).then([]);
    given(funded).when(refundOtp('otp_x')).then([]);
  });

  it.each(['undelivered', 'expired', 'rejected'] as const)('a %s refund returns exactly the charge to the balance', (reason) => {
    const state = given([...funded, ...sent('otp_1', 31_337n, 'balance')])
      .when(refundOtp('otp_1', reason, at(HOUR)))
      .then([refunded('otp_1', 31_337n, 'balance', reason, at(HOUR))]);
    expect(state.balance).toBe(1_000_000n);
    expect(state.pending).toBe(0n);
  });

  it('a refund of a test-funded charge goes back to test credits, not to the balance', () => {
    const state = given([opened(1), credited({ tx: 1 }, 1_000_000n), ...sent('otp_1', PRICE, 'test_credit')])
      .when(refundOtp('otp_1'))
      .then([refunded('otp_1', PRICE, 'test_credit')]);
    expect(state.balance).toBe(1_000_000n);
    expect(state.testCreditsLeft).toBe(1);
  });

  it('refunds the price of the charge even when prices changed since', () => {
    given([...funded, ...sent('otp_1', 10_000n, 'balance'), ...sent('otp_2', 50_000n, 'balance')])
      .when(refundOtp('otp_1'))
      .then([refunded('otp_1', 10_000n, 'balance')]);
  });
});

describe('I3 a charge never takes the balance below zero; a negative balance refuses sends', () => {
  it('charges when the balance exactly covers the price', () => {
    const state = given([opened(), credited({ tx: 1 }, PRICE)]).when(sendOtp('otp_1', PRICE)).then(sent('otp_1', PRICE, 'balance'));
    expect(state.balance).toBe(0n);
  });

  it('refuses when the balance is one micro short', () => {
    given([opened(), credited({ tx: 1 }, PRICE - 1n)]).when(sendOtp('otp_1', PRICE)).then('insufficient_balance');
  });

  it('refuses on an empty account without test credits', () => {
    given([opened()]).when(sendOtp('otp_1', PRICE)).then('insufficient_balance');
  });

  it("pays from the balance, not the test credits, when the phone's free sends of the day are used up; refuses without a balance", () => {
    const noCredits: AccountCommand = { ...sendOtp('otp_1', PRICE), testCredits: false } as AccountCommand;
    const state = given([opened(5), credited({ tx: 1 }, PRICE)]).when(noCredits).then(sent('otp_1', PRICE, 'balance'));
    expect(state.testCreditsLeft).toBe(5);
    given([opened(5)]).when(noCredits).then('insufficient_balance');
  });

  it('refuses a negative price', () => {
    given([opened(), credited({ tx: 1 }, 1_000_000n)]).when(sendOtp('otp_1', -1n)).then('invalid_command');
  });

  it('lets a deposit reversal, and only it, take the balance below zero', () => {
    const state = given([opened(), credited({ tx: 1 }, 1_000_000n), ...sent('otp_1', 900_000n, 'balance')])
      .when(reverseDeposit({ tx: 1 }))
      .then([reversed({ tx: 1 })]);
    expect(state.balance).toBe(-900_000n);
  });

  const negative = [opened(3), credited({ tx: 1 }, 1_000_000n), ...sent('otp_1', 900_000n, 'balance'), reversed({ tx: 1 })];

  it('refuses every send while the balance is negative, even free or test-funded ones', () => {
    given(negative).when(sendOtp('otp_2', PRICE)).then('insufficient_balance');
    given(negative).when(sendOtp('otp_2', 0n)).then('insufficient_balance');
  });

  it('still settles open charges while negative (a refund helps pay the debt back)', () => {
    const state = given(negative).when(refundOtp('otp_1')).then([refunded('otp_1', 900_000n, 'balance')]);
    expect(state.balance).toBe(0n);
  });

  it('sends again once a top-up covers the debt', () => {
    const topUp = credited({ tx: 2 }, 900_000n);
    given([...negative, topUp]).when(sendOtp('otp_2', PRICE)).then(sent('otp_2', PRICE, 'test_credit'));
    given([...negative, credited({ tx: 2 }, 899_999n)]).when(sendOtp('otp_2', PRICE)).then('insufficient_balance');
  });
});

describe('I4 a deposit is credited at most once, reversed at most once and only after being credited', () => {
  const base = [opened()];

  it('credits a transfer with its truncated dust recorded', () => {
    const withDust = <T extends object>(x: T) => ({ ...x, truncatedUnits: '890123456789' });
    const event = credited({ tx: 1 }, 1_234_567n);
    const state = given(base)
      .when(withDust(creditDeposit({ tx: 1 }, 1_234_567n)) as AccountCommand)
      .then([{ ...event, data: withDust(event.data) } as AccountEvent]);
    expect(state.balance).toBe(1_234_567n);
  });

  it('a redelivered transfer credits nothing, whatever amount it now carries', () => {
    const first = credited({ tx: 1 }, 1_000_000n);
    given([...base, first]).when(creditDeposit({ tx: 1 }, 1_000_000n)).then([]);
    given([...base, first]).when(creditDeposit({ tx: 1 }, 5_000_000n, at(HOUR))).then([]);
  });

  it('recognises the same transfer whatever the case of its hash', () => {
    const upper = { ...creditDeposit({ tx: 0xabc }, 1_000_000n), txHash: txHash(0xabc).replace(/[a-f]/g, (c) => c.toUpperCase()) } as AccountCommand;
    given([...base, credited({ tx: 0xabc }, 1_000_000n)]).when(upper).then([]);
  });

  it('credits another log of the same transaction, or the same log on another chain', () => {
    const first = credited({ tx: 1 }, 1_000_000n);
    given([...base, first]).when(creditDeposit({ tx: 1, logIndex: 1 }, 2n)).then([credited({ tx: 1, logIndex: 1 }, 2n)]);
    given([...base, first]).when(creditDeposit({ tx: 1, chainId: 1 }, 2n)).then([credited({ tx: 1, chainId: 1 }, 2n)]);
  });

  it('never reverses a transfer it has not credited', () => {
    given(base).when(reverseDeposit({ tx: 1 })).then([]);
    given([...base, credited({ tx: 1 }, 1_000_000n)]).when(reverseDeposit({ tx: 1, logIndex: 1 })).then([]);
  });

  it('reverses a credited transfer once, removing exactly its amount', () => {
    const state = given([...base, credited({ tx: 1 }, 1_000_000n), credited({ tx: 2 }, 3n)])
      .when(reverseDeposit({ tx: 1 }))
      .then([reversed({ tx: 1 })]);
    expect(state.balance).toBe(3n);
    given([...base, credited({ tx: 1 }, 1_000_000n), reversed({ tx: 1 })]).when(reverseDeposit({ tx: 1 })).then([]);
  });

  it('does not credit a reversed transfer again', () => {
    given([...base, credited({ tx: 1 }, 1_000_000n), reversed({ tx: 1 })]).when(creditDeposit({ tx: 1 }, 1_000_000n)).then([]);
  });

  it('refuses a negative amount', () => {
    given(base).when(creditDeposit({ tx: 1 }, -1n)).then('invalid_command');
  });
});

describe('I5 an account spends at most its test credits on test-funded charges, net of refunds', () => {
  it('spends test credits first, leaving the balance untouched', () => {
    const state = given([opened(2), credited({ tx: 1 }, 1_000_000n)]).when(sendOtp('otp_1', PRICE)).then(sent('otp_1', PRICE, 'test_credit'));
    expect(state.balance).toBe(1_000_000n);
    expect(state.testCreditsLeft).toBe(1);
    expect(state.pending).toBe(0n);
  });

  it('falls back to the balance once the credits are spent', () => {
    const history = [opened(1), credited({ tx: 1 }, 1_000_000n), ...sent('otp_1', PRICE, 'test_credit')];
    given(history).when(sendOtp('otp_2', PRICE)).then(sent('otp_2', PRICE, 'balance'));
  });

  it('refuses once the credits are spent and there is no balance', () => {
    given([opened(1), ...sent('otp_1', PRICE, 'test_credit')]).when(sendOtp('otp_2', PRICE)).then('insufficient_balance');
  });

  it('delivery consumes the credit for good', () => {
    const state = given([opened(1), ...sent('otp_1', PRICE, 'test_credit')]).when(markDelivered('otp_1')).then([delivered('otp_1')]);
    expect(state.testCreditsLeft).toBe(0);
  });

  it('a refunded test send gives its credit back for the next send', () => {
    const history = [opened(1), ...sent('otp_1', PRICE, 'test_credit'), refunded('otp_1', PRICE, 'test_credit')];
    given(history).when(sendOtp('otp_2', PRICE)).then(sent('otp_2', PRICE, 'test_credit'));
  });

  it(`but test credits pay for at most ${TEST_ATTEMPTS_PER_CREDIT} sends each, refunded ones included: a free account whose sends keep failing cannot send for ever`, () => {
    const failed = (i: number) => [...sent(`otp_${i}`, PRICE, 'test_credit'), refunded(`otp_${i}`, PRICE, 'test_credit')];
    const history = [opened(1), ...Array.from({ length: TEST_ATTEMPTS_PER_CREDIT }, (_, i) => failed(i)).flat()];
    const e = given(history).when(sendOtp('otp_next', PRICE)).then('insufficient_balance');
    expect(e.message).toMatch(new RegExp(`at most ${TEST_ATTEMPTS_PER_CREDIT} sends`));
    // The credit is still there (I5, net of refunds): a top-up pays the next send from the balance.
    given([...history, credited({ tx: 1 }, 1_000_000n)]).when(sendOtp('otp_next', PRICE)).then(sent('otp_next', PRICE, 'balance'));
  });
});

describe('I7 an Idempotency-Key replay creates nothing; a conflicting one is refused', () => {
  const funded = [opened(), credited({ tx: 1 }, 1_000_000n)];
  const first = sent('otp_1', PRICE, 'balance', { idempotencyKey: 'key-1', requestHash: HASH_A, at: T0 });

  it('records the key with the first send', () => {
    const state = given(funded)
      .when(sendOtp('otp_1', PRICE, { idempotencyKey: 'key-1', requestHash: HASH_A }))
      .then(first);
    expect(state.idempotency.get('key-1')).toEqual({ requestHash: HASH_A, otpId: 'otp_1', atMs: Date.parse(T0) });
  });

  it.each([
    ['at once', 0],
    ['a second', 1_000],
    ['exactly the state\'s window', IDEMPOTENCY_MEMORY_MS],
  ])('a replay %s later creates nothing', (_label, later) => {
    given([...funded, ...first]).when(sendOtp('otp_2', PRICE, { idempotencyKey: 'key-1', requestHash: HASH_A, at: at(later) })).then([]);
  });

  it('past its window the state no longer answers for a key: the read model of send keys does, for 48 h (asked by the API first)', () => {
    const state = [...funded, ...first].reduce(accountDecider.evolve, accountDecider.initialState());
    expect(idempotencyMatch(state, 'key-1', HASH_A, Date.parse(at(IDEMPOTENCY_MEMORY_MS)))).toEqual({ kind: 'replay', otpId: 'otp_1' });
    expect(idempotencyMatch(state, 'key-1', HASH_A, Date.parse(at(IDEMPOTENCY_MEMORY_MS + 1)))).toEqual({ kind: 'fresh' });
    const rec = { requestHash: HASH_A, otpId: 'otp_1', atMs: Date.parse(T0) };
    for (const later of [IDEMPOTENCY_MEMORY_MS + 1, 24 * HOUR, IDEMPOTENCY_RETENTION_MS]) {
      expect(matchIdempotencyRecord(rec, HASH_A, Date.parse(at(later)))).toEqual({ kind: 'replay', otpId: 'otp_1' });
      expect(matchIdempotencyRecord(rec, HASH_B, Date.parse(at(later)))).toEqual({ kind: 'conflict', otpId: 'otp_1' });
    }
    expect(matchIdempotencyRecord(rec, HASH_A, Date.parse(at(IDEMPOTENCY_RETENTION_MS + 1)))).toEqual({ kind: 'fresh' });
    expect(matchIdempotencyRecord(undefined, HASH_A, Date.parse(T0))).toEqual({ kind: 'fresh' });
  });

  it('a replay creates nothing even after the first OTP settled', () => {
    given([...funded, ...first, delivered('otp_1')])
      .when(sendOtp('otp_2', PRICE, { idempotencyKey: 'key-1', requestHash: HASH_A, at: at(10_000) }))
      .then([]);
  });

  it('a replay answers as the first time even when the balance could no longer pay', () => {
    given([...funded, ...first, reversed({ tx: 1 })])
      .when(sendOtp('otp_2', PRICE, { idempotencyKey: 'key-1', requestHash: HASH_A, at: at(10_000) }))
      .then([]);
  });

  it('refuses the same key with a different request, naming the first OTP', () => {
    const error = given([...funded, ...first])
      .when(sendOtp('otp_2', PRICE, { idempotencyKey: 'key-1', requestHash: HASH_B, at: at(10_000) }))
      .then('idempotency_conflict');
    expect(error.details).toEqual({ otpId: 'otp_1' });
  });

  it('treats the key as new once it is past the retention', () => {
    const later = at(IDEMPOTENCY_RETENTION_MS + 1);
    const state = given([...funded, ...first])
      .when(sendOtp('otp_2', PRICE, { idempotencyKey: 'key-1', requestHash: HASH_B, at: later }))
      .then(sent('otp_2', PRICE, 'balance', { idempotencyKey: 'key-1', requestHash: HASH_B, at: later }));
    expect(state.idempotency.get('key-1')?.otpId).toBe('otp_2');
  });

  it('keys are independent, and sends without a key are never replays', () => {
    given([...funded, ...first])
      .when(sendOtp('otp_2', PRICE, { idempotencyKey: 'key-2', requestHash: HASH_A }))
      .then(sent('otp_2', PRICE, 'balance', { idempotencyKey: 'key-2', requestHash: HASH_A }));
    given([...funded, ...sent('otp_1', PRICE, 'balance')]).when(sendOtp('otp_2', PRICE)).then(sent('otp_2', PRICE, 'balance'));
  });

  it('a refused send records no key, so a retry after a top-up goes through', () => {
    const cmd = sendOtp('otp_1', PRICE, { idempotencyKey: 'key-1', requestHash: HASH_A });
    given([opened()]).when(cmd).then('insufficient_balance');
    given([opened(), credited({ tx: 1 }, PRICE)]).when(cmd).then(sent('otp_1', PRICE, 'balance', { idempotencyKey: 'key-1', requestHash: HASH_A }));
  });

  it('the state keeps the last 20 s of keys, however many sends carried one', () => {
    // Ten keyed sends a second for ten minutes: the state holds the last 20 s's, not 6,000.
    const history = [opened()];
    for (let i = 0; i < 6_000; i++) history.push(...sent(`otp_${i}`, 0n, 'balance', { idempotencyKey: `k-${i}`, requestHash: HASH_A, at: at(i * 100) }));
    const state = given(history).when(sendOtp('again', 0n, { idempotencyKey: 'k-5999', requestHash: HASH_A, at: at(600_000) })).then([]);
    expect(state.idempotency.size).toBe(IDEMPOTENCY_MEMORY_MS / 100 + 1);
    const oldest = 5_999 - IDEMPOTENCY_MEMORY_MS / 100;
    expect(state.idempotency.has(`k-${oldest - 1}`)).toBe(false);
    expect(state.idempotency.has(`k-${oldest}`)).toBe(true);
  });

});

describe("the state's window of send keys, swept oldest first", () => {
  const funded = [opened(), credited({ tx: 1 }, 1_000_000_000n)];
  /** One keyed send every `stepMs`, from T0. */
  const keyed = (from: number, count: number, stepMs: number): AccountEvent[] =>
    Array.from({ length: count }, (_, i) => sent(`otp_${from + i}`, PRICE, 'balance', { idempotencyKey: `key-${from + i}`, requestHash: HASH_A, at: at((from + i) * stepMs) })).flat();
  const fold = (events: AccountEvent[], from = accountDecider.initialState()) => events.reduce(accountDecider.evolve, from);

  it('keeps exactly the keys of the last IDEMPOTENCY_MEMORY_MS, also for a state read back from a snapshot and folded on', () => {
    const stepMs = 1_000;
    const early = keyed(0, 30, stepMs);
    const late = keyed(30, 30, stepMs);
    const full = fold([...funded, ...early, ...late]);
    const lastAt = 59 * stepMs;
    expect([...full.idempotency.keys()]).toEqual(Array.from({ length: 21 }, (_, i) => `key-${39 + i}`));
    for (const rec of full.idempotency.values()) expect(lastAt - rec.atMs).toBeLessThanOrEqual(IDEMPOTENCY_MEMORY_MS);
    // A state decoded from its snapshot has no sweep order yet: it is built from the keys' order on first use.
    const restored = fold(late, accountSnapshot.decode(JSON.parse(JSON.stringify(accountSnapshot.encode(fold([...funded, ...early]))))));
    expect(restored).toEqual(full);
  });

  it('stays cheap at steady state: 200,000 keyed sends at 5,000 a second on one account fold in well under a second', () => {
    const state = fold(funded);
    let i = 0;
    const t0 = Date.parse(T0);
    const started = performance.now();
    // 40 s of sends: the second half runs with keys leaving the window as fast as they come.
    for (; i < 200_000; i++) {
      accountDecider.evolve(state, { type: 'OtpRequested', data: otpData(`otp_${i}`, { idempotencyKey: `key-${i}`, requestHash: HASH_A, at: new Date(t0 + i / 5).toISOString() }) });
    }
    expect(state.idempotency.size).toBeGreaterThan(99_000);
    expect(state.idempotency.size).toBeLessThanOrEqual(100_006);
    // Sweeping the Map itself from the front took ~67 µs per send at this rate (~7 s here).
    expect(performance.now() - started).toBeLessThan(3_000);
  });
});
