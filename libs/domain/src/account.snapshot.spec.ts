/**
 * The account state written down and read back (what the command path's snapshots hold): it must be
 * the state folding gives, down to Map and Set order, and anything else must be refused. Random
 * histories are the property spec's (account.properties.spec.ts, "snapshots").
 */
import { accountDecider, type AccountState, IDEMPOTENCY_MEMORY_MS, SETTLED_WINDOW } from './account.decider.js';
import type { AccountEvent } from './account.events.js';
import { accountSnapshot } from './account.snapshot.js';
import { fold } from './decider.js';
import { at, credited, delivered, hex64, opened, refunded, reversed, sent, T0 } from './testing/account.fixtures.js';

/** Through JSON, as the snapshot store keeps it. */
const roundTrip = (s: AccountState): AccountState => accountSnapshot.decode(JSON.parse(JSON.stringify(accountSnapshot.encode(s))));

const entries = (s: AccountState) => ({
  keys: [...s.keys],
  depositAddresses: [...s.depositAddresses],
  deposits: [...s.deposits],
  open: [...s.open],
  settled: [...s.settled],
  idempotency: [...s.idempotency],
});

const everyField: AccountEvent[] = [
  opened(5),
  { type: 'ApiKeyIssued', data: { keyId: 'key_1', keyHash: hex64('1'), prefix: 'nx_live_ab', at: T0 } },
  { type: 'ApiKeyIssued', data: { keyId: 'key_2', keyHash: hex64('2'), prefix: 'nx_live_cd', at: T0 } },
  { type: 'ApiKeyRevoked', data: { keyId: 'key_1', at: T0 } },
  { type: 'WebhookConfigured', data: { url: 'https://hooks.example.com/otp', secret: 'k1:c2VjcmV0', at: T0 } },
  { type: 'MessageTemplateSet', data: { sms: 'Ma cua ban: {code}', at: T0 } },
  { type: 'DepositAddressAssigned', data: { chain: 'bsc', address: `0x${'a'.repeat(40)}`, index: 7, at: T0 } },
  credited({ tx: 1 }, 1_000_000n),
  credited({ tx: 2 }, 500_000n),
  reversed({ tx: 2 }),
  ...sent('otp_test', 22_000n, 'test_credit'),
  ...sent('otp_keyed', 22_000n, 'balance', { idempotencyKey: 'order-1', requestHash: hex64('e1') }),
  ...sent('otp_legacy_key', 22_000n, 'balance', { idempotencyKey: 'order-0' }),
  ...sent('otp_delivered', 22_000n, 'balance'),
  delivered('otp_delivered'),
  ...sent('otp_refunded', 22_000n, 'balance'),
  refunded('otp_refunded', 22_000n, 'balance'),
  // A charge recorded without its request in the same append (an older log): no carrier or channel.
  { type: 'Charged', data: { otpId: 'otp_bare', amount: '22000', fundedBy: 'balance', at: T0 } },
];

describe('account state snapshots', () => {
  it('give back the folded state, every field and every entry in order', () => {
    const state = fold(accountDecider, everyField);
    const back = roundTrip(state);
    expect(back).toEqual(state);
    expect(entries(back)).toEqual(entries(state));
    expect(back.open.get('otp_bare')).toStrictEqual({ amount: 22_000n, fundedBy: 'balance' });
    expect(back.idempotency.get('order-0')).toStrictEqual({ requestHash: undefined, otpId: 'otp_legacy_key', atMs: Date.parse(T0) });
  });

  it('hold an OtpRequested folded without its Charged yet (the request the next event completes)', () => {
    const [request, charge] = sent('otp_half', 22_000n, 'balance');
    const state = fold(accountDecider, [opened(), credited({ tx: 1 }, 1_000_000n), request]);
    expect(state.requesting).toBeDefined();
    const back = roundTrip(state);
    expect(back).toEqual(state);
    expect(accountDecider.evolve(back, charge)).toEqual(accountDecider.evolve(state, charge));
  });

  it('I2: a restored state forgets the same oldest settled ids as the original when the window moves', () => {
    const history: AccountEvent[] = [opened(), credited({ tx: 1 }, 1_000_000_000n)];
    for (let i = 0; i < SETTLED_WINDOW + 10; i++) history.push(...sent(`otp_${i}`, 1n, 'balance'), delivered(`otp_${i}`));
    const state = fold(accountDecider, history);
    const back = roundTrip(state);
    const more: AccountEvent[] = [];
    for (let i = 0; i < 5; i++) more.push(...sent(`otp_more_${i}`, 1n, 'balance'), delivered(`otp_more_${i}`));
    const a = more.reduce(accountDecider.evolve, state);
    const b = more.reduce(accountDecider.evolve, back);
    expect([...b.settled]).toEqual([...a.settled]);
    expect(b.settled.has('otp_14')).toBe(false);
    expect(b.settled.has('otp_15')).toBe(true);
  });

  it('I7: a restored state drops the same Idempotency-Keys, oldest first, as the window moves', () => {
    const history: AccountEvent[] = [opened(), credited({ tx: 1 }, 1_000_000n)];
    for (let i = 0; i < 5; i++) history.push(...sent(`otp_${i}`, 1n, 'balance', { at: at(i * 5_000), idempotencyKey: `k${i}`, requestHash: hex64(`${i + 1}`) }));
    const state = fold(accountDecider, history);
    const back = roundTrip(state);
    const later = sent('otp_late', 1n, 'balance', { at: at(4 * 5_000 + IDEMPOTENCY_MEMORY_MS - 1), idempotencyKey: 'k9', requestHash: hex64('9') });
    const a = later.reduce(accountDecider.evolve, state);
    const b = later.reduce(accountDecider.evolve, back);
    expect([...b.idempotency.keys()]).toEqual([...a.idempotency.keys()]);
    expect([...b.idempotency.keys()]).toEqual(['k4', 'k9']);
  });

  it('refuse anything but their own format: a missing or extra field, a wrong type, an amount that is not digits', () => {
    const good = accountSnapshot.encode(fold(accountDecider, everyField)) as Record<string, unknown>;
    expect(() => accountSnapshot.decode(JSON.parse(JSON.stringify(good)))).not.toThrow();
    const { balance: _, ...missing } = good;
    for (const bad of [
      missing,
      { ...good, extra: 1 },
      { ...good, balance: 1000 },
      { ...good, pending: '1e3' },
      { ...good, open: [['otp_x', '22000', 'gift', null, null, null]] },
      { ...good, settled: 'otp_1' },
      null,
      'not a snapshot',
    ]) {
      expect(() => accountSnapshot.decode(bad)).toThrow();
    }
  });
});
